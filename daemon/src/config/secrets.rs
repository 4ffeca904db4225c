//! Secrets in the configuration: every key `K` that holds a secret may
//! instead be given as `K_file` (a path, relative to the file that names
//! it) or `K_credential` (a name in systemd's `$CREDENTIALS_DIRECTORY`).
//! Plugin settings, the store password and every later secret go through
//! [`resolve_secrets`], so the rules are the same everywhere.

use std::path::PathBuf;

use gatehouse_sdk::proto::ConfigErrorEntry;

use super::Location;

/// Where `*_credential` secrets come from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Credentials {
    /// `$CREDENTIALS_DIRECTORY` as the daemon saw it at load (`None`:
    /// not set, so a `*_credential` setting is an error).
    #[default]
    FromEnvironment,
    /// A directory given explicitly (`--check-config --credentials-dir`).
    Directory(PathBuf),
    /// A check outside the unit without a directory: `*_credential`
    /// settings are left unchecked (never a false error), and the instances
    /// that use them are not built.
    Unchecked,
}

/// What `--check-config` says of a `*_credential` setting it cannot read
/// (outside the unit, without `--credentials-dir`).
pub const NOT_CHECKED: &str =
    "not checked outside the unit (a systemd credential): pass --credentials-dir DIR to check it";

/// Reads `K_file` and `K_credential` settings into `K` for the secret keys a
/// plugin declares; `*_credential` names a file in the credentials
/// directory (`credentials`). False when a credential was left unchecked
/// ([`Credentials::Unchecked`]): the settings are then incomplete.
pub fn resolve_secrets(
    settings: &mut serde_json::Value,
    secret_keys: &[impl AsRef<str>],
    loc: &Location,
    key_prefix: &str,
    credentials: &Credentials,
    read: &mut Vec<PathBuf>,
    errors: &mut Vec<ConfigErrorEntry>,
) -> bool {
    let Some(map) = settings.as_object_mut() else {
        return true;
    };
    let mut complete = true;
    for key in secret_keys {
        let key = key.as_ref();
        let file_key = format!("{key}_file");
        let cred_key = format!("{key}_credential");
        let given: Vec<&str> = [key.to_string(), file_key.clone(), cred_key.clone()]
            .iter()
            .filter(|k| map.contains_key(k.as_str()))
            .map(|k| {
                if k == &file_key {
                    "_file"
                } else if k == &cred_key {
                    "_credential"
                } else {
                    "inline"
                }
            })
            .collect();
        if given.len() > 1 {
            errors.push(loc.error(
                format!("{key_prefix}.{key}"),
                format!("give {key} only once (inline, {file_key} or {cred_key})"),
            ));
            continue;
        }
        let path = if let Some(v) = map.remove(&file_key) {
            match v.as_str() {
                Some(p) => {
                    let p = PathBuf::from(p);
                    if p.is_relative() {
                        loc.file.parent().map_or(p.clone(), |d| d.join(&p))
                    } else {
                        p
                    }
                }
                None => {
                    errors.push(loc.error(format!("{key_prefix}.{file_key}"), "must be a path string"));
                    continue;
                }
            }
        } else if let Some(v) = map.remove(&cred_key) {
            let Some(name) = v.as_str().filter(|n| !n.contains('/') && !n.is_empty()) else {
                errors.push(loc.error(format!("{key_prefix}.{cred_key}"), "must be a credential name"));
                continue;
            };
            let dir = match credentials {
                Credentials::FromEnvironment => std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from),
                Credentials::Directory(d) => Some(d.clone()),
                Credentials::Unchecked => {
                    complete = false;
                    continue;
                }
            };
            match dir {
                Some(dir) => dir.join(name),
                None => {
                    errors.push(loc.error(
                        format!("{key_prefix}.{cred_key}"),
                        "$CREDENTIALS_DIRECTORY is not set (use LoadCredential= in the unit)",
                    ));
                    continue;
                }
            }
        } else {
            continue;
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                read.push(path);
                let value = text.strip_suffix('\n').unwrap_or(&text);
                let value = value.strip_suffix('\r').unwrap_or(value);
                map.insert(key.to_owned(), serde_json::Value::String(value.to_owned()));
            }
            Err(e) => errors.push(loc.error(
                format!("{key_prefix}.{key}"),
                format!("cannot read secret file {}: {e}", path.display()),
            )),
        }
    }
    complete
}

/// The `*_credential` settings of a settings object (for the notes of a
/// check without a credentials directory).
pub fn credential_keys(settings: &serde_json::Value) -> Vec<String> {
    settings
        .as_object()
        .map(|m| m.keys().filter(|k| k.ends_with("_credential")).cloned().collect())
        .unwrap_or_default()
}
