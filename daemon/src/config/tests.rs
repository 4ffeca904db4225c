use super::*;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn defaults_and_relative_paths() {
    let dir = tempfile::tempdir().unwrap();
    let main = write(
        dir.path(),
        "g.toml",
        "[daemon]\nsocket = \"run/g.sock\"\nstate_dir = \"state\"\n",
    );
    let c = load(&main).unwrap();
    assert_eq!(c.daemon.socket, dir.path().join("run/g.sock"));
    assert_eq!(c.daemon.socket_mode, 0o660);
    assert_eq!(
        c.store.url,
        StoreUrl::Sqlite(dir.path().join("state/gatehouse.db"))
    );
    assert_eq!(c.access.admin_uids, vec![0]);
    assert_eq!(c.lockout.max_failures, 5);
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let main = write(
        dir.path(),
        "g.toml",
        "[daemon]\nsocket = \"x\"\n\n[[authenticators]]\nname = \"L\"\ntype = \"local\"\nenabeld = true\n",
    );
    let e = load(&main).unwrap_err();
    assert_eq!(e.0.len(), 1);
    let e = &e.0[0];
    assert_eq!(e.line, Some(7));
    assert_eq!(e.key.as_deref(), Some("authenticators.enabeld"));
    assert!(e.message.contains("unknown field"), "{}", e.message);
    assert!(e.file.ends_with("g.toml"));
}

#[test]
fn includes_append_in_sorted_order_and_singletons_clash() {
    let dir = tempfile::tempdir().unwrap();
    let main = write(
        dir.path(),
        "g.toml",
        "[daemon]\ninclude = [\"conf.d/*.toml\"]\n[access]\nadmin_uids = [0]\n[[authenticators]]\nname = \"A\"\ntype = \"local\"\n",
    );
    write(
        dir.path(),
        "conf.d/20-b.toml",
        "[[authenticators]]\nname = \"C\"\ntype = \"local\"\n",
    );
    write(
        dir.path(),
        "conf.d/10-a.toml",
        "[[authenticators]]\nname = \"B\"\ntype = \"local\"\n",
    );
    let c = load(&main).unwrap();
    let names: Vec<_> = c.authenticators.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["A", "B", "C"]);
    assert_eq!(c.files.len(), 3);

    write(dir.path(), "conf.d/30-c.toml", "[access]\nadmin_uids = [1]\n");
    let e = load(&main).unwrap_err();
    assert!(e.0[0].message.contains("already set"), "{e}");
    assert!(e.0[0].file.ends_with("30-c.toml"));
}

#[test]
fn all_value_errors_are_reported_together() {
    let dir = tempfile::tempdir().unwrap();
    let main = write(
        dir.path(),
        "g.toml",
        "[daemon]\nsocket_mode = \"999\"\nshutdown_timeout = \"10\"\nworker_threads = 999\n[lockout]\nwindow = \"soon\"\n\
         [[authenticators]]\nname = \"A\"\ntype = \"local\"\n[[authenticators]]\nname = \"A\"\ntype = \"local\"\n",
    );
    let e = load(&main).unwrap_err();
    let keys: Vec<_> = e.0.iter().filter_map(|e| e.key.clone()).collect();
    assert!(keys.contains(&"daemon.socket_mode".to_owned()), "{keys:?}");
    assert!(keys.contains(&"daemon.shutdown_timeout".to_owned()), "{keys:?}");
    assert!(keys.contains(&"daemon.worker_threads".to_owned()), "{keys:?}");
    assert!(keys.contains(&"lockout.window".to_owned()), "{keys:?}");
    assert!(keys.iter().any(|k| k.ends_with(".name")), "{keys:?}");
    assert!(e.0.iter().all(|e| e.line.is_some()));
}

#[test]
fn order_defaults_to_position_and_sorts() {
    let dir = tempfile::tempdir().unwrap();
    let main = write(
        dir.path(),
        "g.toml",
        "[[authenticators]]\nname = \"A\"\ntype = \"local\"\norder = 5\n[[authenticators]]\nname = \"B\"\ntype = \"local\"\n",
    );
    let c = load(&main).unwrap();
    let names: Vec<_> = c
        .authenticators
        .iter()
        .map(|a| (a.name.as_str(), a.order))
        .collect();
    assert_eq!(names, [("B", 2), ("A", 5)]);
}

#[test]
fn additional_overrides_settings() {
    let dir = tempfile::tempdir().unwrap();
    let main = write(
        dir.path(),
        "g.toml",
        "[[authenticators]]\nname = \"A\"\ntype = \"local\"\n[authenticators.settings]\nx = 1\ny = 2\n[authenticators.additional]\ny = 3\n",
    );
    let c = load(&main).unwrap();
    assert_eq!(c.authenticators[0].settings, serde_json::json!({"x": 1, "y": 3}));
}

#[test]
fn syntax_error_has_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let main = write(dir.path(), "g.toml", "[daemon]\nsocket = \n");
    let e = load(&main).unwrap_err();
    assert_eq!(e.0[0].line, Some(2));
}

#[test]
fn an_authenticator_with_an_empty_type_is_refused_with_its_key() {
    // The check used to read `ok = r.err(..).is_some()`: `err` always
    // returns `None`, so it only marked the entry invalid by accident.
    let dir = tempfile::tempdir().unwrap();
    let main = write(
        dir.path(),
        "g.toml",
        "[[authenticators]]\nname = \"A\"\ntype = \" \"\n[[authenticators]]\nname = \"B\"\ntype = \"local\"\n",
    );
    let e = load(&main).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].key.as_deref(), Some("authenticators[\"A\"].type"));
    assert_eq!(e.0[0].line, Some(3));
    assert_eq!(e.0[0].message, "must not be empty");
}

#[test]
fn verifier_subjects_name_configured_authenticators() {
    let dir = tempfile::tempdir().unwrap();
    let text = |auth: &str| {
        format!(
            "[[authenticators]]\nname = \"L\"\ntype = \"local\"\n[[verifiers]]\nname = \"v\"\ntype = \"jwt\"\n\
             [verifiers.subjects]\n\"https://idp.example.com/\" = {auth:?}\n"
        )
    };
    let main = write(dir.path(), "g.toml", &text("L"));
    let c = load(&main).unwrap();
    assert_eq!(
        c.verifiers[0].subjects,
        std::collections::BTreeMap::from([("https://idp.example.com".to_owned(), "L".to_owned())])
    );
    let main = write(dir.path(), "g.toml", &text("Nope"));
    let e = load(&main).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].key.as_deref(), Some("verifiers[\"v\"].subjects"));
    assert_eq!(e.0[0].line, Some(4));
    let main = write(dir.path(), "g.toml", &text(""));
    let e = load(&main).unwrap_err();
    assert_eq!(e.0[0].key.as_deref(), Some("verifiers[\"v\"].subjects"));
}

#[test]
fn debug_of_a_config_shows_no_setting_value() {
    let dir = tempfile::tempdir().unwrap();
    let main = write(
        dir.path(),
        "g.toml",
        "[[authenticators]]\nname = \"L\"\ntype = \"ldap\"\n[authenticators.settings]\nbind_password = \"hunter2-hunter2\"\n\
         [[verifiers]]\nname = \"S\"\ntype = \"static_object\"\n[verifiers.settings]\nstorage_token = \"storage-secret-123\"\n",
    );
    let c = load(&main).unwrap();
    let text = format!("{c:?}");
    assert!(
        text.contains("bind_password") && text.contains("storage_token"),
        "{text}"
    );
    assert!(
        !text.contains("hunter2") && !text.contains("storage-secret-123"),
        "{text}"
    );
}

#[test]
fn public_url_must_be_an_absolute_url() {
    let dir = tempfile::tempdir().unwrap();
    let main = write(
        dir.path(),
        "g.toml",
        "[daemon]\npublic_url = \"https://app.example.com/auth/\"\n",
    );
    assert_eq!(
        load(&main).unwrap().daemon.public_url.as_deref(),
        Some("https://app.example.com/auth")
    );
    for bad in ["app.example.com", "https://", "https://h/a?b=c", "ftp://h"] {
        let main = write(dir.path(), "g.toml", &format!("[daemon]\npublic_url = {bad:?}\n"));
        let e = load(&main).unwrap_err();
        assert_eq!(e.0[0].key.as_deref(), Some("daemon.public_url"), "{bad}: {e}");
        assert_eq!(e.0[0].line, Some(2));
    }
}

#[test]
fn lockout_keys_resolve_and_parse_errors_lose_values() {
    let dir = tempfile::tempdir().unwrap();
    let main = write(
        dir.path(),
        "g.toml",
        "[lockout]\nmax_failures_per_address = 7\nmax_delay = \"750ms\"\n",
    );
    let c = load(&main).unwrap();
    assert_eq!(c.lockout.max_failures_per_address, 7);
    assert_eq!(c.lockout.max_delay, Duration::from_millis(750));
    assert_eq!(c.lockout.max_failures_per_peer, 50);

    let main = write(
        dir.path(),
        "h.toml",
        "[lockout]\nmax_delay = \"2m\"\nmax_failures_per_address = 0\n",
    );
    let e = load(&main).unwrap_err();
    let keys: Vec<_> = e.0.iter().filter_map(|e| e.key.clone()).collect();
    assert!(keys.contains(&"lockout.max_delay".to_owned()), "{keys:?}");
    assert!(
        keys.contains(&"lockout.max_failures_per_address".to_owned()),
        "{keys:?}"
    );

    // a wrongly typed value: named by its key, never shown
    let main = write(dir.path(), "i.toml", "[lockout]\nwindow = 8675309123\n");
    let e = load(&main).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("lockout.window") && !text.contains("8675309123"),
        "{text}"
    );
}

#[test]
fn postgres_store_keys() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "secrets/pg", "s3cret-pw\n");
    write(dir.path(), "ca.pem", "-----BEGIN CERTIFICATE-----\n");
    let main = write(
        dir.path(),
        "g.toml",
        "[store]\nurl = \"postgres://gh@db.example:5432/gh?sslmode=require\"\npassword_file = \"secrets/pg\"\nca_file = \"ca.pem\"\npool_size = 3\nconnect_timeout = \"750ms\"\n",
    );
    let c = load(&main).unwrap();
    let StoreUrl::Postgres(p) = &c.store.url else {
        panic!("{:?}", c.store.url)
    };
    assert_eq!(
        p.password.as_ref().map(gatehouse_sdk::Secret::expose),
        Some("s3cret-pw")
    );
    assert_eq!(p.ca_file.as_deref(), Some(dir.path().join("ca.pem").as_path()));
    assert_eq!((p.pool_size, p.connect_timeout), (3, Duration::from_millis(750)));
    // Debug never shows the password, from the file or the URL
    assert!(!format!("{c:?}").contains("s3cret"));

    // bad values: each named by its key; a password in the URL never shown
    let main = write(
        dir.path(),
        "h.toml",
        "[store]\nurl = \"postgres://gh:s3cret@db/gh?sslmode=bogus\"\npool_size = 0\nconnect_timeout = \"1h\"\nca_file = \"missing.pem\"\npassword = \"x\"\npassword_file = \"secrets/pg\"\n",
    );
    let e = load(&main).unwrap_err();
    let keys: Vec<_> = e.0.iter().filter_map(|e| e.key.clone()).collect();
    for k in [
        "store.url",
        "store.pool_size",
        "store.connect_timeout",
        "store.ca_file",
        "store.password",
    ] {
        assert!(keys.contains(&k.to_owned()), "{k}: {keys:?}");
    }
    assert!(!e.to_string().contains("s3cret"), "{e}");

    // PostgreSQL keys on an SQLite store are refused, not ignored
    let main = write(
        dir.path(),
        "i.toml",
        "[store]\nurl = \"sqlite://g.db\"\npool_size = 4\n",
    );
    let e = load(&main).unwrap_err();
    assert!(e.to_string().contains("only a postgres:// store"), "{e}");
}

/// Stage one stopped at the first type error or unknown key of a file:
/// every one is reported now, each at its own key and line, with the value
/// errors of stage two, in a main file and a drop-in alike.
#[test]
fn every_type_error_and_unknown_key_is_reported_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let main = write(
        dir.path(),
        "g.toml",
        "[daemon]\nworker_threads = \"four\"\ninclude = [\"conf.d/*.toml\"]\nbogus = 1\nsocket_mode = 660\nshutdown_timeout = \"10\"\n\
         [lockout]\nmax_failures = \"five\"\n\
         [[authenticators]]\ntype = \"local\"\n\
         [[authenticators]]\nname = \"x\"\ntype = \"local\"\nenabeld = true\n",
    );
    write(
        dir.path(),
        "conf.d/10-a.toml",
        "[[verifiers]]\nname = \"v\"\ntype = \"jwt\"\nisolation = 3\nsubjects = 4\n",
    );
    let e = load(&main).unwrap_err();
    let found: Vec<(String, Option<u32>)> =
        e.0.iter()
            .map(|e| (e.key.clone().unwrap_or_default(), e.line))
            .collect();
    for (key, line) in [
        ("daemon.worker_threads", 2),
        ("daemon.bogus", 4),
        ("daemon.socket_mode", 5),
        ("daemon.shutdown_timeout", 6),
        ("lockout.max_failures", 8),
        ("authenticators", 9),
        ("authenticators.enabeld", 14),
        ("verifiers.isolation", 4),
        ("verifiers.subjects", 5),
    ] {
        assert!(
            found.contains(&(key.to_owned(), Some(line))),
            "{key} at line {line} missing from {found:?}"
        );
    }
    assert_eq!(found.len(), 9, "{found:?}");
    // the key, never the value
    assert!(!e.to_string().contains("four"), "{e}");
}

/// An `include` that matched nothing was silently ignored: a literal path
/// that does not exist is an error, a pattern that matches nothing (an
/// empty conf.d) a warning.
#[test]
fn an_include_that_matches_nothing_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let main = write(
        dir.path(),
        "g.toml",
        "[daemon]\ninclude = [\"conf.d/*.toml\", \"ldap.toml\"]\n",
    );
    let e = load(&main).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].key.as_deref(), Some("daemon.include"));
    assert!(e.0[0].message.contains("\"ldap.toml\": no such file"), "{e}");
    write(dir.path(), "ldap.toml", "");
    let c = load(&main).unwrap();
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(
        c.warnings[0].message.contains("matches no file"),
        "{:?}",
        c.warnings
    );
    write(dir.path(), "conf.d/a.toml", "");
    assert_eq!(load(&main).unwrap().warnings, []);
}

/// docs/config.schema.json names exactly the keys the loader accepts, in
/// every table (the accepted keys are what it lists for an unknown one).
#[test]
fn the_config_schema_matches_the_loader() {
    let schema: serde_json::Value = serde_json::from_str(include_str!("../../../docs/config.schema.json"))
        .expect("docs/config.schema.json");
    let entry = "[[authenticators]]\nname = \"a\"\ntype = \"local\"\n";
    let map = format!("{entry}[[authenticators.maps]]\nmap_type = \"allow\"\n");
    let cases: Vec<(String, &serde_json::Value)> = vec![
        ("zz_probe = 1\n".into(), &schema),
        ("[daemon]\nzz_probe = 1\n".into(), &schema["$defs"]["RawDaemon"]),
        ("[access]\nzz_probe = 1\n".into(), &schema["$defs"]["RawAccess"]),
        ("[store]\nzz_probe = 1\n".into(), &schema["$defs"]["RawStore"]),
        ("[lockout]\nzz_probe = 1\n".into(), &schema["$defs"]["RawLockout"]),
        ("[http]\nzz_probe = 1\n".into(), &schema["$defs"]["RawHttp"]),
        ("[log]\nzz_probe = 1\n".into(), &schema["$defs"]["RawLog"]),
        (
            "[forward_auth]\nzz_probe = 1\n".into(),
            &schema["$defs"]["RawForwardAuth"],
        ),
        ("[issuer]\nzz_probe = 1\n".into(), &schema["$defs"]["RawIssuer"]),
        ("[host]\nzz_probe = 1\n".into(), &schema["$defs"]["RawHost"]),
        (
            "[[authenticators]]\nzz_probe = 1\n".into(),
            &schema["$defs"]["RawAuthenticator"],
        ),
        (format!("{map}zz_probe = 1\n"), &schema["$defs"]["RawMap"]),
        (
            format!("{map}[authenticators.maps.triggers]\nzz_probe = 1\n"),
            &schema["$defs"]["RawTriggers"],
        ),
        (
            "[[verifiers]]\nzz_probe = 1\n".into(),
            &schema["$defs"]["RawVerifier"],
        ),
        ("[[routes]]\nzz_probe = 1\n".into(), &schema["$defs"]["RawRoute"]),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (text, def) in cases {
        let main = write(dir.path(), "g.toml", &text);
        let errors = load(&main).unwrap_err();
        let message = errors
            .0
            .iter()
            .find(|e| e.message.contains("unknown field `zz_probe`"))
            .unwrap_or_else(|| panic!("{text}: {errors}"))
            .message
            .clone();
        let list = message.split("expected ").nth(1).unwrap_or_default();
        let list = list.strip_prefix("one of ").unwrap_or(list);
        // serde: "`a`", "`a` or `b`", "one of `a`, `b`, `c`"
        let mut accepted: Vec<String> = list
            .split(['`', ',', ' '])
            .filter(|k| !k.is_empty() && *k != "or")
            .map(str::to_owned)
            .collect();
        accepted.sort();
        let mut documented: Vec<String> = def["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .cloned()
            .collect();
        documented.sort();
        assert_eq!(accepted, documented, "{text}");
        assert_eq!(def["additionalProperties"], false, "{text}");
        // and says what each key is for
        for (k, p) in def["properties"].as_object().expect("properties") {
            assert!(
                p["description"].as_str().is_some_and(|d| !d.trim().is_empty()),
                "{text}: `{k}` has no description in docs/config.schema.json"
            );
        }
    }
}

#[test]
fn offline_max_age_is_a_bounded_duration_and_not_for_local() {
    let dir = tempfile::tempdir().unwrap();
    let entry = |name: &str, kind: &str, age: &str| {
        format!("[[authenticators]]\nname = \"{name}\"\ntype = \"{kind}\"\noffline_max_age = \"{age}\"\n")
    };
    let main = write(dir.path(), "ok.toml", &entry("L", "ldap", "7d"));
    let c = load(&main).unwrap();
    assert_eq!(
        c.authenticators[0].offline_max_age,
        Some(Duration::from_secs(7 * 86_400))
    );
    let text = [
        entry("zero", "ldap", "0s"),
        entry("long", "ldap", "400d"),
        entry("typo", "ldap", "a week"),
        entry("local", "local", "1d"),
    ]
    .concat();
    let main = write(dir.path(), "bad.toml", &text);
    let e = load(&main).unwrap_err();
    let keys: Vec<_> = e.0.iter().filter_map(|e| e.key.clone()).collect();
    assert_eq!(
        keys,
        [
            "authenticators[\"zero\"].offline_max_age",
            "authenticators[\"long\"].offline_max_age",
            "authenticators[\"typo\"].offline_max_age",
            "authenticators[\"local\"].offline_max_age",
        ],
        "{e}"
    );
    assert!(e.0[3].message.contains("local authenticator"), "{e}");
    // absent: off
    let main = write(
        dir.path(),
        "off.toml",
        "[[authenticators]]\nname = \"L\"\ntype = \"ldap\"\n",
    );
    assert_eq!(load(&main).unwrap().authenticators[0].offline_max_age, None);
}

#[test]
fn host_table_resolves_and_bad_values_name_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let main = write(
        dir.path(),
        "g.toml",
        "[host]\nuid_range = [70000, 79999]\ngid_range = [80000, 89999]\nnss_socket = \"run/nss.sock\"\ngroups = [\"teams\"]\n",
    );
    let c = load(&main).unwrap();
    let h = c.host.expect("[host]");
    assert_eq!((h.uid_range.start, h.uid_range.end), (70000, 79999));
    assert_eq!(h.home, "/home/{username}");
    assert_eq!(h.shell, "/bin/sh");
    assert!(h.groups.teams && !h.groups.organizations);
    assert_eq!(h.nss_socket, Some(dir.path().join("run/nss.sock")));
    assert!(load(&write(dir.path(), "none.toml", "")).unwrap().host.is_none());

    for (text, key, says) in [
        ("gid_range = [1, 2]\n", "host.uid_range", "required"),
        (
            "uid_range = [0, 10]\ngid_range = [20, 30]\n",
            "host.uid_range",
            "1 <= first",
        ),
        (
            "uid_range = [10, 5]\ngid_range = [20, 30]\n",
            "host.uid_range",
            "first <= last",
        ),
        (
            "uid_range = [10, 4294967295]\ngid_range = [1, 5]\n",
            "host.uid_range",
            "4294967294",
        ),
        (
            "uid_range = [10, 20]\ngid_range = [20, 30]\n",
            "host.gid_range",
            "overlap",
        ),
        (
            "uid_range = [10, 20]\ngid_range = [30, 40, 50]\n",
            "host.gid_range",
            "[first, last]",
        ),
        (
            "uid_range = [10, 20]\ngid_range = [30, 40]\nhome = \"home/{username}\"\n",
            "host.home",
            "absolute",
        ),
        (
            "uid_range = [10, 20]\ngid_range = [30, 40]\nhome = \"/home/{user}\"\n",
            "host.home",
            "placeholder",
        ),
        (
            "uid_range = [10, 20]\ngid_range = [30, 40]\nshell = \"/bin/{username}\"\n",
            "host.shell",
            "no placeholders",
        ),
        (
            "uid_range = [10, 20]\ngid_range = [30, 40]\ngroups = [\"roles\"]\n",
            "host.groups",
            "unknown kind",
        ),
        (
            "uid_range = [10, 20]\ngid_range = [30, 40]\nnss_socket = \" \"\n",
            "host.nss_socket",
            "empty",
        ),
    ] {
        let main = write(dir.path(), "bad.toml", &format!("[host]\n{text}"));
        let e = load(&main).unwrap_err();
        assert!(
            e.0.iter()
                .any(|x| x.key.as_deref() == Some(key) && x.message.contains(says) && x.line.is_some()),
            "{text}: {e}"
        );
    }
}

#[test]
fn keyring_keys_are_read_from_files_checked_and_never_shown() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "catalog.yml", "services: {}\n");
    let key = |b: u8| base64::engine::general_purpose::STANDARD.encode([b; 32]);
    write(dir.path(), "keys/current", &format!("{}\n", key(1)));
    write(dir.path(), "keys/old", &key(2));
    let issuer = |extra: &str| {
        format!("[issuer]\nurl = \"https://issuer.example.test\"\ncatalog = \"catalog.yml\"\n{extra}")
    };
    // relative files, read and parsed; the ids tell the keys apart
    let main = write(
        dir.path(),
        "a.toml",
        &issuer("keyring_key_file = \"keys/current\"\nkeyring_previous_key_file = \"keys/old\"\n"),
    );
    let c = load(&main).unwrap();
    let sealing = &c.issuer.as_ref().unwrap().sealing;
    let (current, previous) = (
        sealing.current.as_ref().unwrap().id(),
        sealing.previous.as_ref().unwrap().id(),
    );
    assert_ne!(current, previous);
    assert!(!format!("{c:?}").contains(&key(1)));
    // no key: in the clear
    let main = write(dir.path(), "b.toml", &issuer(""));
    assert!(!load(&main).unwrap().issuer.unwrap().sealing.seals());

    // refused, by key, the value never repeated
    for (extra, wanted_key, wanted) in [
        (
            "keyring_key = \"c2hvcnQ=\"\n",
            "issuer.keyring_key",
            "32 random bytes",
        ),
        (
            "keyring_key = \"not base64 at all, 8675309\"\n",
            "issuer.keyring_key",
            "32 random bytes",
        ),
        (
            "keyring_previous_key_file = \"keys/old\"\n",
            "issuer.keyring_previous_key",
            "beside a current keyring_key",
        ),
        (
            "keyring_key_file = \"keys/old\"\nkeyring_previous_key_file = \"keys/old\"\n",
            "issuer.keyring_previous_key",
            "same key",
        ),
        (
            "keyring_key_file = \"keys/missing\"\n",
            "issuer.keyring_key",
            "cannot read secret file",
        ),
        (
            "keyring_key = \"x\"\nkeyring_key_file = \"keys/old\"\n",
            "issuer.keyring_key",
            "only once",
        ),
    ] {
        let main = write(dir.path(), "c.toml", &issuer(extra));
        let e = load(&main).unwrap_err();
        let entry =
            e.0.iter()
                .find(|x| x.key.as_deref() == Some(wanted_key))
                .unwrap_or_else(|| panic!("{extra}: {e}"));
        assert!(entry.message.contains(wanted), "{extra}: {}", entry.message);
        for secret in ["c2hvcnQ=", "8675309", key(2).as_str()] {
            assert!(!e.to_string().contains(secret), "{extra}: {e}");
        }
    }
}

#[test]
fn daemon_credentials_are_noted_when_unchecked_and_read_from_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let main = write(
        dir.path(),
        "g.toml",
        "[store]\nurl = \"postgres://gh@db.example/gh\"\npassword_credential = \"pg\"\n",
    );
    // a check outside the unit: a note, no error, no password
    let c = load_with(&main, &secrets::Credentials::Unchecked).unwrap();
    let StoreUrl::Postgres(p) = &c.store.url else {
        panic!("{:?}", c.store.url)
    };
    assert!(p.password.is_none());
    assert!(
        c.warnings
            .iter()
            .any(|w| w.key.as_deref() == Some("store.password_credential")
                && w.message.contains("not checked outside the unit")),
        "{:?}",
        c.warnings
    );
    // the unit's directory: read
    write(dir.path(), "creds/pg", "from-the-unit\n");
    let c = load_with(&main, &secrets::Credentials::Directory(dir.path().join("creds"))).unwrap();
    let StoreUrl::Postgres(p) = &c.store.url else {
        panic!("{:?}", c.store.url)
    };
    assert_eq!(
        p.password.as_ref().map(gatehouse_sdk::Secret::expose),
        Some("from-the-unit")
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // a directory without it: an error naming the key
    let e = load_with(&main, &secrets::Credentials::Directory(dir.path().to_owned())).unwrap_err();
    assert!(e.to_string().contains("store.password"), "{e}");
}
