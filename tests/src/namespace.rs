//! A private mount namespace (`unshare -m`) for tests that mount over
//! system paths (a tmpfs over `/run`, an overlay of `/`) without touching
//! the machine: a holder process keeps the namespace alive, and commands
//! enter it with `nsenter -m`. The mounts go away with the last process in
//! the namespace. Needs root.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};

/// A mount namespace held open by a waiting shell; dropped: the holder is
/// killed (the processes started in it are the caller's to stop).
pub struct MountNamespace {
    holder: Child,
}

impl MountNamespace {
    /// Runs the shell script `setup` (with `args` as `$1`…, under `set -e`)
    /// in a new private mount namespace and keeps the namespace. Panics
    /// with the script's error output when it fails.
    pub fn new<S: AsRef<OsStr>>(setup: &str, args: &[S]) -> Self {
        let script = format!("set -e\n{setup}\necho ready\nexec sleep infinity\n");
        let mut holder = Command::new("unshare")
            .args(["-m", "--propagation", "private", "--", "sh", "-c", &script, "sh"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn unshare");
        let mut line = String::new();
        let stdout = holder.stdout.take().expect("holder stdout");
        let _ = BufReader::new(stdout).read_line(&mut line);
        if line.trim() != "ready" {
            let _ = holder.kill();
            let _ = holder.wait();
            let mut err = String::new();
            if let Some(mut e) = holder.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("the mount namespace's setup failed: {err}");
        }
        Self { holder }
    }

    /// The holder's pid (`nsenter -t`).
    pub fn pid(&self) -> u32 {
        self.holder.id()
    }

    /// `program` to be run inside the namespace (`nsenter -m`; it execs,
    /// so the child's pid is the program's).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg("-t")
            .arg(self.pid().to_string())
            .arg("-m")
            .arg("--")
            .arg(program);
        cmd
    }
}

impl Drop for MountNamespace {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}
