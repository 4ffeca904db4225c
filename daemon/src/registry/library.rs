//! Plugin libraries: the types the libraries in `[daemon] plugin_dirs`
//! provide, and libraries named by an entry's `library = "…"`.
//!
//! Every library's [manifest](gatehouse_sdk::abi::manifest) is read from
//! the file before it is loaded: in `plugin_dirs` a shared library without
//! one is not a gatehouse plugin and is skipped (listed by
//! `GET /v1/plugins`, logged at info); a library named by `library = "…"`
//! without one is refused; a manifest naming another ABI is refused before
//! any of the library's code runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use gatehouse_sdk::abi::host::{self, Library};
use gatehouse_sdk::abi::manifest::{self, Manifest, ManifestError};
use gatehouse_sdk::proto::ConfigErrorEntry;

use super::{Family, Spec, own_type};
use crate::config::{Config, Location};

/// A loaded plugin library and its manifest.
#[derive(Clone, Debug)]
pub struct LibraryInfo {
    /// The library.
    pub library: &'static Library,
    /// Its manifest, as read before loading it.
    pub manifest: Manifest,
}

/// A file of `plugin_dirs` that is not a gatehouse plugin.
#[derive(Clone, Debug)]
pub struct Skipped {
    /// The file.
    pub path: PathBuf,
    /// Why it was skipped.
    pub reason: ManifestError,
}

/// The types the plugin directories provide, per family.
#[derive(Default)]
pub struct Catalog {
    /// `(family noun, type) → library`.
    types: BTreeMap<(&'static str, String), &'static Library>,
    /// The libraries of `plugin_dirs`, in scan order.
    libraries: Vec<LibraryInfo>,
    /// Libraries named by `library = "…"` (recorded as entries resolve).
    explicit: Mutex<Vec<LibraryInfo>>,
    /// Files of `plugin_dirs` that are not plugins.
    skipped: Vec<Skipped>,
}

/// Reads a library's manifest, loads it, and checks the types the
/// manifest lists (if it lists them) against what the library provides.
/// The error is the text of a configuration error (without the path).
fn open(path: &Path, manifest: Manifest) -> Result<LibraryInfo, String> {
    let library = host::load(path).map_err(|e| e.to_string())?;
    manifest.check_types(&library.descriptor)?;
    Ok(LibraryInfo { library, manifest })
}

fn is_library(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "so") && p.is_file()
}

impl Catalog {
    /// Loads every plugin library in `plugin_dirs` (missing directories are
    /// skipped, and so are files without a plugin manifest). A library
    /// whose manifest is invalid or names another ABI, one that fails to
    /// load or provides other types than its manifest lists, a type two
    /// libraries provide, and a type the daemon provides itself are
    /// errors: a library never shadows a built-in or linked type.
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
                let manifest = match manifest::read(&file) {
                    Ok(m) => m,
                    Err(reason) if reason.is_not_a_plugin() => {
                        tracing::info!("{}: skipped: {reason}", file.display());
                        catalog.skipped.push(Skipped { path: file, reason });
                        continue;
                    }
                    Err(e) => {
                        errors.push(loc.error("daemon.plugin_dirs", format!("{}: {e}", file.display())));
                        continue;
                    }
                };
                let info = match open(&file, manifest) {
                    Ok(i) => i,
                    Err(e) => {
                        errors.push(loc.error("daemon.plugin_dirs", format!("{}: {e}", file.display())));
                        continue;
                    }
                };
                catalog.add::<super::Authenticators>(info.library, &loc, errors);
                catalog.add::<super::Verifiers>(info.library, &loc, errors);
                catalog.libraries.push(info);
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

    /// The plugin libraries: those of `plugin_dirs`, then those named by
    /// `library = "…"` that resolved (each once).
    pub fn libraries(&self) -> Vec<LibraryInfo> {
        let mut out = self.libraries.clone();
        if let Ok(explicit) = self.explicit.lock() {
            for info in explicit.iter() {
                if !out.iter().any(|o| std::ptr::eq(o.library, info.library)) {
                    out.push(info.clone());
                }
            }
        }
        out
    }

    /// The libraries named by `library = "…"` that resolved.
    pub fn explicit_libraries(&self) -> Vec<LibraryInfo> {
        self.explicit.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// The files of `plugin_dirs` that are not plugins, and why.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Loads the library an entry names with `library = "…"` (which must
    /// carry a manifest) and checks it provides the entry's type.
    pub fn load_explicit<F: Family>(
        &self,
        path: &Path,
        spec: &F::Spec,
        key: &str,
    ) -> Result<&'static Library, ConfigErrorEntry> {
        let info = load_explicit::<F>(path, spec, key)?;
        let lib = info.library;
        if let Ok(mut explicit) = self.explicit.lock()
            && !explicit.iter().any(|o| std::ptr::eq(o.library, lib))
        {
            explicit.push(info);
        }
        Ok(lib)
    }
}

/// As [`Catalog::load_explicit`], without recording the library.
fn load_explicit<F: Family>(path: &Path, spec: &F::Spec, key: &str) -> Result<LibraryInfo, ConfigErrorEntry> {
    let refuse = |e: String| {
        spec.location()
            .error(format!("{key}.library"), format!("{}: {e}", path.display()))
    };
    let manifest = manifest::read(path).map_err(|e| refuse(e.to_string()))?;
    let info = open(path, manifest).map_err(refuse)?;
    let lib = info.library;
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
    Ok(info)
}
