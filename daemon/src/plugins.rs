//! Plugin libraries: scanning `[daemon] plugin_dirs`, honouring an explicit
//! `library = "…"`, and resolving a `type` to the library that provides it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gatehouse_sdk::abi::host::{self, Library};
use gatehouse_sdk::proto::ConfigErrorEntry;

use crate::authn;
use crate::config::{AuthenticatorSpec, Config, Location, VerifierSpec};

/// Every authenticator type the plugin directories provide.
pub struct Catalog {
    authenticators: BTreeMap<String, &'static Library>,
    verifiers: BTreeMap<String, &'static Library>,
}

fn is_library(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "so") && p.is_file()
}

impl Catalog {
    /// Loads every library in `plugin_dirs` (missing directories are
    /// skipped). A library that fails to load, a type two libraries provide,
    /// and a type that clashes with a built-in one are errors.
    pub fn scan(config: &Config, errors: &mut Vec<ConfigErrorEntry>) -> Self {
        let loc = Location::file(&config.main_file);
        let mut authenticators: BTreeMap<String, &'static Library> = BTreeMap::new();
        let mut verifiers: BTreeMap<String, &'static Library> = BTreeMap::new();
        for dir in &config.daemon.plugin_dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                tracing::debug!("plugin directory {} does not exist; skipped", dir.display());
                continue;
            };
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| is_library(p))
                .collect();
            files.sort();
            for file in files {
                let lib = match host::load(&file) {
                    Ok(l) => l,
                    Err(e) => {
                        errors.push(loc.error("daemon.plugin_dirs", format!("{}: {e}", file.display())));
                        continue;
                    }
                };
                for t in &lib.descriptor.authenticators {
                    if authn::is_builtin(&t.type_name) {
                        errors.push(loc.error(
                            "daemon.plugin_dirs",
                            format!(
                                "{}: authenticator type {:?} clashes with the built-in type of that name",
                                file.display(),
                                t.type_name
                            ),
                        ));
                    } else if let Some(other) = authenticators.get(&t.type_name)
                        && other.path != lib.path
                    {
                        errors.push(loc.error(
                            "daemon.plugin_dirs",
                            format!(
                                "authenticator type {:?} is provided by both {} and {}",
                                t.type_name,
                                other.path.display(),
                                lib.path.display()
                            ),
                        ));
                    } else {
                        authenticators.insert(t.type_name.clone(), lib);
                    }
                }
                for t in &lib.descriptor.verifiers {
                    if authn::linked_verifier(&t.type_name).is_some() {
                        errors.push(loc.error(
                            "daemon.plugin_dirs",
                            format!(
                                "{}: verifier type {:?} clashes with the built-in type of that name",
                                file.display(),
                                t.type_name
                            ),
                        ));
                    } else if let Some(other) = verifiers.get(&t.type_name)
                        && other.path != lib.path
                    {
                        errors.push(loc.error(
                            "daemon.plugin_dirs",
                            format!(
                                "verifier type {:?} is provided by both {} and {}",
                                t.type_name,
                                other.path.display(),
                                lib.path.display()
                            ),
                        ));
                    } else {
                        verifiers.insert(t.type_name.clone(), lib);
                    }
                }
            }
        }
        Self {
            authenticators,
            verifiers,
        }
    }

    /// The library for a verifier entry.
    pub fn verifier_library(&self, spec: &VerifierSpec) -> Result<&'static Library, ConfigErrorEntry> {
        let key = format!("verifiers[{:?}]", spec.name);
        if let Some(path) = &spec.library {
            let lib = host::load(path).map_err(|e| {
                spec.location
                    .error(format!("{key}.library"), format!("{}: {e}", path.display()))
            })?;
            if lib.descriptor.verifier(&spec.kind).is_none() {
                return Err(spec.location.error(
                    format!("{key}.type"),
                    format!("{} provides no verifier type {:?}", path.display(), spec.kind),
                ));
            }
            return Ok(lib);
        }
        self.verifiers.get(&spec.kind).copied().ok_or_else(|| {
            let mut known: Vec<&str> = authn::linked_verifiers().iter().map(|f| f.type_name()).collect();
            known.extend(self.verifiers.keys().map(String::as_str));
            spec.location.error(
                format!("{key}.type"),
                format!(
                    "unknown verifier type {:?} (available: {})",
                    spec.kind,
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            )
        })
    }

    /// The library for an authenticator entry: its `library`, else the one
    /// from `plugin_dirs` providing its type.
    pub fn authenticator_library(
        &self,
        spec: &AuthenticatorSpec,
    ) -> Result<&'static Library, ConfigErrorEntry> {
        let key = format!("authenticators[{:?}]", spec.name);
        if let Some(path) = &spec.library {
            let lib = host::load(path).map_err(|e| {
                spec.location
                    .error(format!("{key}.library"), format!("{}: {e}", path.display()))
            })?;
            if lib.descriptor.authenticator(&spec.kind).is_none() {
                let provided: Vec<_> = lib
                    .descriptor
                    .authenticators
                    .iter()
                    .map(|t| t.type_name.as_str())
                    .collect();
                return Err(spec.location.error(
                    format!("{key}.type"),
                    format!(
                        "{} provides no authenticator type {:?} (it provides: {})",
                        path.display(),
                        spec.kind,
                        provided.join(", ")
                    ),
                ));
            }
            return Ok(lib);
        }
        self.authenticators.get(&spec.kind).copied().ok_or_else(|| {
            let mut known: Vec<&str> = authn::builtin_names();
            known.extend(self.authenticators.keys().map(String::as_str));
            spec.location.error(
                format!("{key}.type"),
                format!(
                    "unknown authenticator type {:?} (available: {})",
                    spec.kind,
                    known.join(", ")
                ),
            )
        })
    }
}
