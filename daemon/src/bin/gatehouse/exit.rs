//! Exit statuses of `gatehouse`, one per kind of failure, and messages that
//! say what to do. The table is in `docs/cli.md`; keep both in step.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::ExitCode;

use gatehouse_daemon::client::{Answer, ClientError};

// 0: everything went well (`ExitCode::SUCCESS`).
/// The daemon refused the request (an error answer not listed below).
pub(crate) const REFUSED: u8 = 1;
/// Usage error: bad arguments or input.
pub(crate) const USAGE: u8 = 2;
/// The daemon is unreachable: no socket, nobody listening, no answer.
pub(crate) const UNREACHABLE: u8 = 3;
/// Permission denied: the socket is not accessible to this user, belongs
/// to an unexpected user, or the daemon answered `forbidden`.
pub(crate) const PERMISSION: u8 = 4;
/// Wrong credentials: `invalid_credentials` or `login_denied`.
pub(crate) const WRONG_CREDENTIALS: u8 = 5;
/// `gatehouse status`: the daemon serves, but the last reload failed or
/// a backend is offline.
pub(crate) const DEGRADED: u8 = 6;

/// A failure: its exit status and what to tell the operator.
pub(crate) enum Failure {
    /// A usage error (exit 2).
    Usage(String),
    /// The daemon said no (exit 1).
    Denied(String),
    /// Any other status, with its message.
    With(u8, String),
}

impl Failure {
    /// A failure with an explicit status.
    pub(crate) fn with(code: u8, message: impl Into<String>) -> Self {
        Self::With(code, message.into())
    }

    /// Prints the message and gives the exit status.
    pub(crate) fn report(self) -> ExitCode {
        let (code, message) = match self {
            Self::Usage(m) => (USAGE, m),
            Self::Denied(m) => (REFUSED, m),
            Self::With(c, m) => (c, m),
        };
        if !message.is_empty() {
            eprintln!("gatehouse: {message}");
        }
        ExitCode::from(code)
    }
}

/// A client error while talking to the daemon at `socket`, with a hint.
pub(crate) fn client(socket: &Path, e: ClientError) -> Failure {
    match &e {
        ClientError::Connect { source, .. } => match source.kind() {
            std::io::ErrorKind::PermissionDenied => {
                Failure::with(PERMISSION, format!("{e}; {}", access_hint(socket)))
            }
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => Failure::with(
                UNREACHABLE,
                format!(
                    "{e}; is gatehoused running? (`systemctl status gatehouse`); \
                     give another socket with --socket or GATEHOUSE_SOCKET"
                ),
            ),
            _ => Failure::with(UNREACHABLE, e.to_string()),
        },
        ClientError::Untrusted { .. } => Failure::with(PERMISSION, e.to_string()),
        ClientError::Http(_) => Failure::with(
            UNREACHABLE,
            format!(
                "{e}; the daemon closed the connection (it may refuse this uid: [access]; see `journalctl -u gatehouse`)"
            ),
        ),
        ClientError::Request(_) | ClientError::Decode(_) => Failure::Usage(e.to_string()),
    }
}

/// What to do when the socket (or its directory) refuses this user:
/// "the socket is 0660 root:gatehouse: add your user to the gatehouse
/// group".
pub(crate) fn access_hint(socket: &Path) -> String {
    match blocking(socket) {
        Some((path, meta)) => {
            let group = group_name(meta.gid()).unwrap_or_else(|| meta.gid().to_string());
            let owner = user_name(meta.uid()).unwrap_or_else(|| meta.uid().to_string());
            format!(
                "{} is {:04o} {owner}:{group}: add your user to the {group} group \
                 (`usermod -aG {group} USER`, then log in again), or run as {owner}",
                path.display(),
                meta.permissions().mode() & 0o7777,
            )
        }
        None => "this user may not open the socket".into(),
    }
}

/// What refuses this user: the outermost directory on the way it may not
/// enter, else the socket file itself.
fn blocking(socket: &Path) -> Option<(std::path::PathBuf, std::fs::Metadata)> {
    let mut dirs: Vec<&Path> = socket.ancestors().skip(1).collect();
    dirs.reverse();
    let path = dirs
        .into_iter()
        .find(|d| rustix::fs::access(*d, rustix::fs::Access::EXEC_OK).is_err())
        .unwrap_or(socket)
        .to_owned();
    let meta = std::fs::metadata(&path).ok()?;
    Some((path, meta))
}

fn user_name(uid: u32) -> Option<String> {
    name_of("/etc/passwd", uid)
}

fn group_name(gid: u32) -> Option<String> {
    name_of("/etc/group", gid)
}

/// The name for an id in a passwd-format file (name:x:id:…).
fn name_of(file: &str, id: u32) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        (f.nth(1)?.parse::<u32>().ok()? == id).then(|| name.to_owned())
    })
}

/// An error answer: its status by the API's stable code, with a hint.
pub(crate) fn api(a: &Answer, message: String) -> Failure {
    match a.error().map(|e| e.error.code) {
        Some(code) if code == "forbidden" => Failure::with(
            PERMISSION,
            format!(
                "{message}; [access] in gatehouse.toml decides: client_uids / client_gids to use the socket, \
                 admin_uids / admin_gids for admin commands (root is an admin by default)"
            ),
        ),
        Some(code) if code == "invalid_credentials" || code == "login_denied" => {
            Failure::with(WRONG_CREDENTIALS, message)
        }
        _ => Failure::Denied(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct() {
        let mut all = [
            0,
            REFUSED,
            USAGE,
            UNREACHABLE,
            PERMISSION,
            WRONG_CREDENTIALS,
            DEGRADED,
        ];
        all.sort_unstable();
        let n = all.len();
        let mut d = all.to_vec();
        d.dedup();
        assert_eq!(d.len(), n);
    }
}
