//! Taking input values out of parser messages.

/// Takes every input value out of a parser's error message, keeping its
/// structure: serde reports values as `string "…"`, ``integer `…` ``,
/// ``floating point `…` ``, ``boolean `…` `` or ``character `…` ``, and a
/// value in a settings table may be a password. Quoted and back-quoted
/// values after `invalid type:` / `invalid value:` / `unknown variant`
/// (up to `, expected`) and every double-quoted
/// string become `…`; key names (``unknown field `x`, expected one of …``)
/// stay, since they are what the reader needs.
///
/// ```
/// let m = gatehouse_sdk::redact_input_values(
///     "invalid type: integer `8675309123`, expected a string",
/// );
/// assert_eq!(m, "invalid type: integer `…`, expected a string");
/// let m = gatehouse_sdk::redact_input_values(r#"invalid type: string "hunter2", expected u16"#);
/// assert_eq!(m, r#"invalid type: string "…", expected u16"#);
/// ```
pub fn redact_input_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    // Back-quoted text is a value only inside an `invalid type/value:`
    // clause (up to its `, expected`); elsewhere it names a key.
    let mut in_value_clause = false;
    let mut quote: Option<char> = None;
    let mut rest = message;
    while let Some(c) = rest.chars().next() {
        if quote.is_none() {
            if rest.starts_with("invalid type: ")
                || rest.starts_with("invalid value: ")
                || rest.starts_with("unknown variant ")
            {
                in_value_clause = true;
            } else if rest.starts_with(", expected") {
                in_value_clause = false;
            }
        }
        match (quote, c) {
            (None, '"') => {
                quote = Some('"');
                out.push_str("\"…");
            }
            (None, '`') if in_value_clause => {
                quote = Some('`');
                out.push_str("`…");
            }
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (Some(_), '\\') => {
                // skip the escaped character too
                let mut it = rest.chars();
                it.next();
                it.next();
                rest = it.as_str();
                continue;
            }
            (Some(_), _) => {}
            (None, c) => out.push(c),
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// `Debug` of a settings document that shows its keys, never its values
/// (they may be secrets): `{"bind_dn", "bind_password"}`. Use it in a
/// hand-written `Debug` of anything that holds settings.
pub struct SettingNames<'a>(pub &'a serde_json::Value);

impl std::fmt::Debug for SettingNames<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            serde_json::Value::Object(map) => f.debug_set().entries(map.keys()).finish(),
            serde_json::Value::Null => f.write_str("null"),
            _ => f.write_str("<redacted>"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redact_input_values as r;

    #[test]
    fn values_go_and_key_names_stay() {
        assert_eq!(
            r("invalid type: floating point `3.14`, expected a string at line 1"),
            "invalid type: floating point `…`, expected a string at line 1"
        );
        assert_eq!(
            r("unknown field `bind_pasword`, expected one of `bind_dn`, `bind_password`"),
            "unknown field `bind_pasword`, expected one of `bind_dn`, `bind_password`"
        );
        assert_eq!(
            r(r#"invalid value: string "a\"b", expected x"#),
            r#"invalid value: string "…", expected x"#
        );
        assert_eq!(r("invalid type: boolean `true`"), "invalid type: boolean `…`");
        assert_eq!(r("missing field `audience`"), "missing field `audience`");
        assert_eq!(
            r("unknown variant `hunter2`, expected `a` or `b` at line 1 column 9"),
            "unknown variant `…`, expected `a` or `b` at line 1 column 9"
        );
        assert_eq!(r("bad uri \"ldap://secret@host\""), "bad uri \"…\"");
    }
}

#[cfg(test)]
mod debug_tests {
    use crate::PluginConfig;
    use crate::abi::CreateConfig;

    #[test]
    fn configs_show_setting_names_never_values() {
        let settings = serde_json::json!({"bind_password": "hunter2-hunter2", "port": 31415926535u64});
        let text = format!("{:?}", PluginConfig::new("x", settings.clone()));
        assert!(
            text.contains("bind_password") && !text.contains("hunter2") && !text.contains("31415"),
            "{text}"
        );
        let create = CreateConfig {
            name: "x".into(),
            settings,
            state_dir: None,
            config_dir: None,
            http: crate::HttpSettings::default(),
        };
        let text = format!("{create:?}");
        assert!(
            text.contains("bind_password") && !text.contains("hunter2") && !text.contains("31415"),
            "{text}"
        );
    }

    #[test]
    fn setting_names_show_keys_null_or_nothing() {
        use crate::SettingNames;
        let shown = |v: serde_json::Value| format!("{:?}", SettingNames(&v));
        assert_eq!(
            shown(serde_json::json!({"b": "hunter2", "a": 1})),
            r#"{"a", "b"}"#
        );
        assert_eq!(shown(serde_json::Value::Null), "null");
        for v in [
            serde_json::json!("hunter2"),
            serde_json::json!(["hunter2"]),
            serde_json::json!(31415),
        ] {
            assert_eq!(shown(v), "<redacted>");
        }
    }

    #[test]
    fn secrets_compare_equal_by_content() {
        assert_eq!(crate::Secret::new("a"), crate::Secret::new("a"));
        assert_ne!(crate::Secret::new("a"), crate::Secret::new("ab"));
    }
}
