//! Reload on file change: every file the configuration read (main file,
//! drop-ins, secret files) and every include pattern is watched through its
//! directory, so atomic editor saves (write a temp file, rename over) are
//! seen. Changes are debounced into one reload.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

use crate::state::{Daemon, Trigger};

struct WatchSet {
    files: BTreeSet<PathBuf>,
    patterns: Vec<glob::Pattern>,
    dirs: BTreeSet<PathBuf>,
}

fn watch_set(daemon: &Daemon) -> WatchSet {
    let rt = daemon.runtime();
    let files: BTreeSet<PathBuf> = rt.watched_files.iter().cloned().collect();
    let patterns: Vec<glob::Pattern> = rt
        .config
        .include_patterns
        .iter()
        .filter_map(|p| glob::Pattern::new(p).ok())
        .collect();
    let mut dirs: BTreeSet<PathBuf> = files
        .iter()
        .filter_map(|f| f.parent().map(Path::to_owned))
        .collect();
    for p in &rt.config.include_patterns {
        // the directory part before the first wildcard
        let fixed: PathBuf = Path::new(p)
            .components()
            .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
            .collect();
        if fixed.is_dir() {
            dirs.insert(fixed);
        }
    }
    WatchSet {
        files,
        patterns,
        dirs,
    }
}

impl WatchSet {
    fn relevant(&self, path: &Path) -> bool {
        self.files.contains(path) || self.patterns.iter().any(|p| p.matches_path(path))
    }
}

/// Starts watching; runs until the daemon is dropped. Returns an error when
/// the platform watcher cannot start (reload by SIGHUP and API still work).
pub fn spawn(daemon: Arc<Daemon>) -> notify::Result<tokio::task::JoinHandle<()>> {
    let (tx, mut rx) = mpsc::unbounded_channel::<notify::Event>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            let _ = tx.send(ev);
        }
    })?;
    let mut generations = daemon.subscribe();
    let mut set = watch_set(&daemon);
    let mut watching: BTreeSet<PathBuf> = BTreeSet::new();
    // The first watches are in place before this returns, so before the
    // socket answers: a change made right after the first answer is seen.
    rewatch(&mut watcher, &set, &mut watching);
    let handle = tokio::spawn(async move {
        loop {
            rewatch(&mut watcher, &set, &mut watching);
            tokio::select! {
                ev = rx.recv() => {
                    let Some(ev) = ev else { return };
                    if !is_change(&ev) || !ev.paths.iter().any(|p| set.relevant(p)) {
                        continue;
                    }
                    // Debounce: wait until no relevant change for a while.
                    let debounce = daemon.runtime().config.daemon.reload_debounce;
                    loop {
                        match tokio::time::timeout(debounce, rx.recv()).await {
                            Ok(Some(_)) => continue,
                            Ok(None) => return,
                            Err(_) => break,
                        }
                    }
                    let _ = daemon.reload(Trigger::FileChange).await;
                    set = watch_set(&daemon);
                }
                changed = generations.changed() => {
                    if changed.is_err() { return; }
                    set = watch_set(&daemon);
                }
            }
        }
    });
    Ok(handle)
}

/// Watches the directories of the current generation that are not watched
/// yet and drops the ones it no longer reads.
fn rewatch(watcher: &mut notify::RecommendedWatcher, set: &WatchSet, watching: &mut BTreeSet<PathBuf>) {
    for d in set.dirs.difference(&watching.clone()) {
        match watcher.watch(d, RecursiveMode::NonRecursive) {
            Ok(()) => {
                watching.insert(d.clone());
            }
            Err(e) => tracing::warn!("cannot watch {}: {e}", d.display()),
        }
    }
    for d in watching.clone().difference(&set.dirs) {
        let _ = watcher.unwatch(d);
        watching.remove(d);
    }
}

fn is_change(ev: &notify::Event) -> bool {
    !matches!(ev.kind, EventKind::Access(_))
}
