//! The `gatehouse` CLI against a daemon of the process tier.

use std::process::{Command, Output};

use crate::process::{Daemon, bin, run_with_stdin};

impl Daemon {
    /// Runs the CLI against this daemon with `stdin` as its input.
    pub fn cli(&self, args: &[&str], stdin: &str) -> Output {
        run_with_stdin(
            Command::new(bin("gatehouse"))
                .arg("--socket")
                .arg(&self.socket)
                .args(args),
            stdin,
        )
    }

    /// Runs the CLI as another user (with runuser, as root).
    pub fn cli_as(&self, user: &str, args: &[&str], stdin: &str) -> Output {
        run_with_stdin(
            Command::new("runuser")
                .arg("-u")
                .arg(user)
                .arg("--")
                .arg(bin("gatehouse"))
                .arg("--socket")
                .arg(&self.socket)
                .args(args),
            stdin,
        )
    }
}
