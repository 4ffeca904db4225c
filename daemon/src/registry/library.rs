//! Plugin libraries: the types the libraries in `[daemon] plugin_dirs`
//! provide, and libraries named by an entry's `library = "…"`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gatehouse_sdk::abi::host::{self, Library};
use gatehouse_sdk::proto::ConfigErrorEntry;

use super::{Family, Spec, own_type};
use crate::config::{Config, Location};

/// The types the plugin directories provide, per family.
#[derive(Default)]
pub struct Catalog {
    /// `(family noun, type) → library`.
    types: BTreeMap<(&'static str, String), &'static Library>,
}

fn is_library(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "so") && p.is_file()
}

impl Catalog {
    /// Loads every library in `plugin_dirs` (missing directories are
    /// skipped). A library that fails to load, a type two libraries
    /// provide, and a type the daemon provides itself are errors: a library
    /// never shadows a built-in or linked type.
    pub fn scan(config: &Config, errors: &mut Vec<ConfigErrorEntry>) -> Self {
        let loc = Location::file(&config.main_file);
        let mut catalog = Self::default();
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
                catalog.add::<super::Authenticators>(lib, &loc, errors);
                catalog.add::<super::Verifiers>(lib, &loc, errors);
            }
        }
        catalog
    }

    fn add<F: Family>(&mut self, lib: &'static Library, loc: &Location, errors: &mut Vec<ConfigErrorEntry>) {
        for type_name in F::library_types(lib) {
            if own_type::<F>(&type_name).is_some() {
                errors.push(loc.error(
                    "daemon.plugin_dirs",
                    format!(
                        "{}: {} type {type_name:?} clashes with the built-in type of that name \
                         (a library cannot replace a type the daemon provides)",
                        lib.path.display(),
                        F::NOUN,
                    ),
                ));
                continue;
            }
            match self.types.get(&(F::NOUN, type_name.clone())) {
                Some(other) if other.path != lib.path => errors.push(loc.error(
                    "daemon.plugin_dirs",
                    format!(
                        "{} type {type_name:?} is provided by both {} and {}",
                        F::NOUN,
                        other.path.display(),
                        lib.path.display()
                    ),
                )),
                _ => {
                    self.types.insert((F::NOUN, type_name), lib);
                }
            }
        }
    }

    /// The library providing a type of family `F`.
    pub fn get<F: Family>(&self, type_name: &str) -> Option<&'static Library> {
        self.types.get(&(F::NOUN, type_name.to_owned())).copied()
    }

    /// Every type of family `F`, with its library.
    pub fn entries<F: Family>(&self) -> impl Iterator<Item = (&str, &'static Library)> {
        self.types
            .iter()
            .filter(|((noun, _), _)| *noun == F::NOUN)
            .map(|((_, t), lib)| (t.as_str(), *lib))
    }

    /// Every type name of family `F`.
    pub fn types<F: Family>(&self) -> impl Iterator<Item = &str> {
        self.entries::<F>().map(|(t, _)| t)
    }
}

/// Loads the library an entry names with `library = "…"` and checks it
/// provides the entry's type.
pub fn load_explicit<F: Family>(
    path: &Path,
    spec: &F::Spec,
    key: &str,
) -> Result<&'static Library, ConfigErrorEntry> {
    let lib = host::load(path).map_err(|e| {
        spec.location()
            .error(format!("{key}.library"), format!("{}: {e}", path.display()))
    })?;
    if F::library_type(lib, spec.type_name()).is_none() {
        let provided = F::library_types(lib);
        return Err(spec.location().error(
            format!("{key}.type"),
            format!(
                "{} provides no {} type {:?} (it provides: {})",
                path.display(),
                F::NOUN,
                spec.type_name(),
                if provided.is_empty() {
                    "none".to_owned()
                } else {
                    provided.join(", ")
                }
            ),
        ));
    }
    Ok(lib)
}
