//! The state directory holds the store (password hashes), the audit log
//! and plugin caches: only the daemon's user may read it, whatever the
//! umask, and the daemon refuses one that other users can write (they
//! could swap the database or plant files).

use std::fs::Permissions;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` (mode 0700) or checks it: refused when group or others
/// may write it; narrowed to 0700 when the daemon owns it and others may
/// read it.
pub fn secure(dir: &Path) -> Result<(), String> {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            // The umask may have taken bits away, never added any; say it
            // exactly anyway.
            std::fs::set_permissions(dir, Permissions::from_mode(0o700))
                .map_err(|e| format!("cannot set the mode of {}: {e}", dir.display()))
        }
        Err(e) => Err(format!("cannot read {}: {e}", dir.display())),
        Ok(meta) if !meta.is_dir() => Err(format!("{} is not a directory", dir.display())),
        Ok(meta) => {
            let mode = meta.mode() & 0o7777;
            if mode & 0o022 != 0 {
                return Err(format!(
                    "{} is writable by other users (mode {mode:04o}); make it 0700 and owned by the daemon's user",
                    dir.display()
                ));
            }
            if mode & 0o077 != 0 && meta.uid() == crate::state::current_uid() {
                tracing::warn!(
                    "state directory {} was readable by other users (mode {mode:04o}); narrowed to 0700",
                    dir.display()
                );
                std::fs::set_permissions(dir, Permissions::from_mode(0o700))
                    .map_err(|e| format!("cannot set the mode of {}: {e}", dir.display()))?;
            }
            Ok(())
        }
    }
}

/// What [`secure`] would decide about `dir`, without creating or changing
/// anything (`gatehoused --check-config`): an existing directory must not be
/// writable by group or others and must be usable by this user; a missing
/// one must be creatable under its nearest existing ancestor.
pub fn check(dir: &Path) -> Result<(), String> {
    use rustix::fs::Access;
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut ancestor = dir.parent();
            while let Some(a) = ancestor {
                match std::fs::metadata(a) {
                    Ok(meta) if meta.is_dir() => {
                        return rustix::fs::access(a, Access::WRITE_OK | Access::EXEC_OK).map_err(|e| {
                            format!(
                                "cannot create {}: {} is not writable: {e}",
                                dir.display(),
                                a.display()
                            )
                        });
                    }
                    Ok(_) => {
                        return Err(format!(
                            "cannot create {}: {} is not a directory",
                            dir.display(),
                            a.display()
                        ));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => ancestor = a.parent(),
                    Err(e) => return Err(format!("cannot create {}: {}: {e}", dir.display(), a.display())),
                }
            }
            Err(format!("cannot create {}", dir.display()))
        }
        Err(e) => Err(format!("cannot read {}: {e}", dir.display())),
        Ok(meta) if !meta.is_dir() => Err(format!("{} is not a directory", dir.display())),
        Ok(meta) => {
            let mode = meta.mode() & 0o7777;
            if mode & 0o022 != 0 {
                return Err(format!(
                    "{} is writable by other users (mode {mode:04o}); make it 0700 and owned by the daemon's user",
                    dir.display()
                ));
            }
            rustix::fs::access(dir, Access::READ_OK | Access::WRITE_OK | Access::EXEC_OK)
                .map_err(|e| format!("{} is not usable by this user: {e}", dir.display()))
        }
    }
}

/// Creates `file` readable and writable by the daemon's user only (or
/// narrows an existing one to that), whatever the umask.
pub fn private_file(file: &Path) -> std::io::Result<()> {
    match std::fs::metadata(file) {
        Ok(meta) if meta.mode() & 0o077 != 0 => std::fs::set_permissions(file, Permissions::from_mode(0o600)),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(file)
            .map(drop),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_state_directory_is_private_and_a_shared_one_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/state");
        secure(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        // readable by others: narrowed
        std::fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
        secure(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        // writable by others: refused, untouched
        std::fs::set_permissions(&dir, Permissions::from_mode(0o777)).unwrap();
        let e = secure(&dir).unwrap_err();
        assert!(e.contains("writable by other users"), "{e}");
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o777);
    }

    #[test]
    fn private_files_are_0600() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("g.db");
        private_file(&f).unwrap();
        assert_eq!(std::fs::metadata(&f).unwrap().mode() & 0o777, 0o600);
        std::fs::set_permissions(&f, Permissions::from_mode(0o644)).unwrap();
        private_file(&f).unwrap();
        assert_eq!(std::fs::metadata(&f).unwrap().mode() & 0o777, 0o600);
    }
}
