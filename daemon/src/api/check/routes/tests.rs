use super::*;
use crate::config::{ConfigErrors, load};

const VERIFIER: &str = "[[verifiers]]\nname = \"v\"\ntype = \"jwt\"\n";

/// Loads a main file made of `text` (after a verifier named `v`).
fn load_text(text: &str) -> Result<crate::config::Config, ConfigErrors> {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("g.toml");
    std::fs::write(&main, format!("{VERIFIER}{text}")).unwrap();
    load(&main)
}

fn keys(e: &ConfigErrors) -> Vec<(Option<u32>, String, String)> {
    e.0.iter()
        .map(|e| (e.line, e.key.clone().unwrap_or_default(), e.message.clone()))
        .collect()
}

#[test]
fn require_team_is_parsed_once_at_load() {
    let c = load_text(
        "[[routes]]\nname = \"t\"\npath_prefix = \"/t/\"\nverifier = \"v\"\nrequire_team = \"Engineering/Platform\"\n",
    )
    .unwrap();
    assert_eq!(
        c.routes[0].require_team,
        Some(RequiredTeam {
            organization: "Engineering".into(),
            team: "Platform".into(),
        })
    );
    assert_eq!(
        c.routes[0].require_team.as_ref().unwrap().to_string(),
        "Engineering/Platform"
    );
}

#[test]
fn malformed_require_team_names_file_line_and_key() {
    for bad in ["Engineering", "/Platform", "Engineering/", " / ", "a/b/c"] {
        let e = load_text(&format!(
            "\n[[routes]]\nname = \"t\"\npath_prefix = \"/t/\"\nverifier = \"v\"\nrequire_team = {bad:?}\n"
        ))
        .unwrap_err();
        assert_eq!(
            keys(&e),
            [(
                Some(5),
                "routes[\"t\"].require_team".to_owned(),
                "write it as \"Organization/Team\"".to_owned()
            )],
            "{bad:?}"
        );
        assert!(e.0[0].file.ends_with("g.toml"));
    }
}

#[test]
fn a_route_without_its_own_matcher_is_refused_not_widened() {
    // Neither key, both keys, a relative prefix, a bad regex: each is an
    // error, and no route is built that would match every path.
    for (route, key) in [
        ("", "routes[\"x\"]"),
        ("path_prefix = \"/a/\"\npath_regex = \"^/b/\"\n", "routes[\"x\"]"),
        ("path_prefix = \"a/\"\n", "routes[\"x\"].path_prefix"),
        ("path_regex = \"(\"\n", "routes[\"x\"].path_regex"),
    ] {
        let e = load_text(&format!("[[routes]]\nname = \"x\"\nverifier = \"v\"\n{route}")).unwrap_err();
        assert_eq!(e.0.len(), 1, "{route}: {e}");
        assert_eq!(e.0[0].key.as_deref(), Some(key), "{route}");
    }
    // With a valid route beside it, the broken one still refuses the whole
    // configuration (and the valid one matches only its own paths).
    let e = load_text(
        "[[routes]]\nname = \"ok\"\npath_prefix = \"/ok/\"\nverifier = \"v\"\n\
         [[routes]]\nname = \"x\"\nverifier = \"v\"\n",
    )
    .unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    let c = load_text("[[routes]]\nname = \"ok\"\npath_prefix = \"/ok/\"\nverifier = \"v\"\n").unwrap();
    assert!(c.routes[0].matches("GET", "/ok/x"));
    assert!(!c.routes[0].matches("GET", "/elsewhere"));
    assert!(!c.routes[0].matches("GET", "/"));
}

#[test]
fn every_bad_value_of_a_route_is_reported_and_the_route_dropped() {
    let e = load_text(
        "[[routes]]\nname = \"\"\npath_prefix = \"/a/\"\nverifier = \"v\"\nrequire_team = \"x\"\n\
         require_organization = \" \"\n[routes.headers]\n\"bad header\" = \"1\"\n",
    )
    .unwrap_err();
    let got: Vec<String> = keys(&e).into_iter().map(|(_, k, _)| k).collect();
    assert_eq!(
        got,
        [
            "routes[\"\"].name",
            "routes[\"\"].require_team",
            "routes[\"\"].require_organization",
            "routes[\"\"].headers",
        ],
        "{e}"
    );
}

#[test]
fn routes_name_configured_verifiers() {
    let e = load_text("[[routes]]\nname = \"x\"\npath_prefix = \"/a/\"\nverifier = \"nope\"\n").unwrap_err();
    assert_eq!(
        keys(&e),
        [(
            Some(4),
            "routes[\"x\"].verifier".to_owned(),
            "no verifier named \"nope\"".to_owned()
        )]
    );
}

#[test]
fn methods_and_regexes_restrict_a_route() {
    let c = load_text(
        "[[routes]]\nname = \"m\"\npath_prefix = \"/m/\"\nmethods = [\"get\", \"HEAD\"]\nverifier = \"v\"\n\
         [[routes]]\nname = \"r\"\npath_regex = \"^/api/v[0-9]+/\"\nverifier = \"v\"\n",
    )
    .unwrap();
    let (m, r) = (&c.routes[0], &c.routes[1]);
    assert_eq!(m.methods, ["GET", "HEAD"]);
    assert!(m.matches("GET", "/m/x") && m.matches("get", "/m/x") && m.matches("HEAD", "/m/"));
    assert!(!m.matches("POST", "/m/x"), "another method");
    assert!(!m.matches("GET", "/n/x"), "a listed method, another path");
    assert!(r.matches("POST", "/api/v4/projects"));
    assert!(!r.matches("GET", "/x/api/v4/"), "anchored");
    assert!(!r.matches("GET", "/api/vx/"));
}
