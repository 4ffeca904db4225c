//! The settings reference (`docs/settings.md`): every built-in and linked
//! type's settings, generated from the JSON Schemas the types publish
//! (`config_schema`), with the secret keys that also take `_file` and
//! `_credential`. A test keeps the document current and every accepted key
//! in its type's schema.

use serde_json::{Value, json};

use super::linked;

/// One documented type.
pub struct TypeDoc {
    /// `authenticator` or `verifier`.
    pub family: &'static str,
    /// `type = "…"`.
    pub type_name: String,
    /// Its settings' JSON Schema.
    pub schema: Value,
    /// Its secret settings.
    pub secrets: Vec<String>,
}

/// The schema of the built-in `local` authenticator's settings.
pub fn local_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "min_password_length": {"type": "integer", "description": "shortest new password (characters); default 8"},
            "argon2_memory_kib": {"type": "integer", "description": "Argon2id memory cost of new hashes (KiB)"},
            "argon2_iterations": {"type": "integer", "description": "Argon2id time cost of new hashes"},
            "argon2_parallelism": {"type": "integer", "description": "Argon2id lanes of new hashes"}
        }
    })
}

/// The schema of the built-in `static_object` verifier's settings.
pub fn static_object_schema() -> Value {
    json!({
        "type": "object",
        "required": ["storage_token"],
        "properties": {
            "storage_token": {"type": ["string", "array"], "description": "the external storage token(s) the proxy must present (16+ characters; several: a list, or one per line in storage_token_file)"},
            "paths": {"type": "array", "items": {"type": "string"}, "description": "path markers of static-object requests; default [\"/raw/\", \"/-/archive/\"]"}
        }
    })
}

/// Every built-in and linked type, authenticators first, by name.
pub fn types() -> Vec<TypeDoc> {
    let mut out = vec![
        TypeDoc {
            family: "authenticator",
            type_name: "local".into(),
            schema: local_schema(),
            secrets: Vec::new(),
        },
        TypeDoc {
            family: "verifier",
            type_name: "static_object".into(),
            schema: static_object_schema(),
            secrets: vec!["storage_token".into()],
        },
    ];
    for f in linked::authenticators() {
        out.push(TypeDoc {
            family: "authenticator",
            type_name: f.type_name().to_owned(),
            schema: f.config_schema(),
            secrets: f.secret_settings().iter().map(|s| (*s).to_owned()).collect(),
        });
    }
    for f in linked::verifiers() {
        out.push(TypeDoc {
            family: "verifier",
            type_name: f.type_name().to_owned(),
            schema: f.config_schema(),
            secrets: f.secret_settings().iter().map(|s| (*s).to_owned()).collect(),
        });
    }
    out.sort_by(|a, b| (a.family, &a.type_name).cmp(&(b.family, &b.type_name)));
    out
}

fn type_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "any".into(),
    }
}

/// `docs/settings.md`.
pub fn markdown() -> String {
    let mut out = String::from(
        "# Settings reference\n\n\
         Generated from the JSON Schemas of the built-in and linked types \
         (`cargo nextest run -p gatehouse-daemon settings_reference` checks it; \
         `GATEHOUSE_BLESS=1` rewrites it). These keys go in `[authenticators.settings]` \
         or `[verifiers.settings]`; unknown keys are errors. A secret key `K` may also be \
         given as `K_file` (a path) or `K_credential` (a systemd credential name); give one \
         of the three. Plugin libraries (`plugin_dirs`) document their own.\n",
    );
    for t in types() {
        out.push_str(&format!("\n## `{}` ({})\n\n", t.type_name, t.family));
        let required: Vec<&str> = t.schema["required"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let Some(props) = t.schema["properties"].as_object() else {
            out.push_str("No settings.\n");
            continue;
        };
        out.push_str("| key | type | required | notes |\n|---|---|---|---|\n");
        let mut keys: Vec<&String> = props.keys().collect();
        keys.sort();
        for k in keys {
            let p = &props[k];
            let mut notes = p["description"].as_str().unwrap_or("").to_owned();
            if t.secrets.iter().any(|s| s == k) {
                if !notes.is_empty() {
                    notes.push_str("; ");
                }
                notes.push_str(&format!("secret: also `{k}_file`, `{k}_credential`"));
            }
            out.push_str(&format!(
                "| `{k}` | {} | {} | {} |\n",
                type_text(&p["type"]),
                if required.contains(&k.as_str()) { "yes" } else { "" },
                notes.replace('|', "\\|")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The LDAP keys appeared in no document, `danger_allow_http_issuers`
    /// only in an error message.
    #[test]
    fn settings_reference_is_current() {
        // every key says what it is for: most had a type and nothing else
        let mut undescribed = Vec::new();
        for t in types() {
            for (k, p) in t.schema["properties"].as_object().into_iter().flatten() {
                if p["description"].as_str().is_none_or(|d| d.trim().is_empty()) {
                    undescribed.push(format!("{}.{k}", t.type_name));
                }
            }
        }
        assert!(
            undescribed.is_empty(),
            "settings without a description in their type's config_schema: {undescribed:?}"
        );
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/settings.md");
        let want = markdown();
        if std::env::var_os("GATEHOUSE_BLESS").is_some() {
            std::fs::write(path, &want).expect("write docs/settings.md");
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            have == want,
            "docs/settings.md is not current: run with GATEHOUSE_BLESS=1 to rewrite it"
        );
    }

    /// Every key a linked type accepts is in its schema (so in the
    /// reference): the accepted keys are what serde lists for an unknown one.
    #[test]
    fn every_accepted_setting_is_in_its_schema() {
        let probe = json!({"zz_not_a_setting": true});
        let accepted = |e: gatehouse_sdk::PluginError| -> Vec<String> {
            let m = e.to_string();
            let list = m.split("expected one of ").nth(1).unwrap_or_default();
            list.split(", ")
                .map(|k| k.trim().trim_matches('`').to_owned())
                .filter(|k| !k.is_empty() && *k == k.to_lowercase())
                .collect()
        };
        let mut checked = 0;
        let mut missing = Vec::new();
        let mut check = |type_name: &str, schema: &Value, keys: Vec<String>| {
            assert!(
                !keys.is_empty(),
                "{type_name}: no key list in its unknown-field error"
            );
            for k in keys {
                if schema["properties"].get(&k).is_none() {
                    missing.push(format!("{type_name}.{k}"));
                }
            }
        };
        for f in linked::authenticators() {
            if let Err(e) = f.build(gatehouse_sdk::PluginConfig::new("probe", probe.clone())) {
                check(f.type_name(), &f.config_schema(), accepted(e));
                checked += 1;
            }
        }
        for f in linked::verifiers() {
            if let Err(e) = f.build(gatehouse_sdk::PluginConfig::new("probe", probe.clone())) {
                check(f.type_name(), &f.config_schema(), accepted(e));
                checked += 1;
            }
        }
        assert!(checked >= 5, "every linked type was probed");
        // the built-ins
        let local = serde_json::from_value::<crate::authn::local::LocalSettings>(probe.clone())
            .expect_err("unknown key");
        check(
            "local",
            &local_schema(),
            accepted(gatehouse_sdk::PluginError::Misconfigured(local.to_string())),
        );
        assert!(
            missing.is_empty(),
            "accepted but not in the schema (nor in docs/settings.md): {missing:?}"
        );
    }
}
