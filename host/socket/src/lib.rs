//! How the host modules (`pam_gatehouse.so`, `libnss_gatehouse.so.2`)
//! reach the daemon: a Unix stream connection made by a deadline, only to
//! a socket whose file and whose listening process belong to a trusted
//! uid. Both modules run inside other programs (sshd, sudo, every process
//! that looks a user up): they must never hang on the daemon, and never
//! talk to an impostor.

use std::os::unix::fs::MetadataExt as _;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// Why no connection was made.
#[derive(Debug, PartialEq, Eq)]
pub enum ConnectError {
    /// The socket is missing, refuses, or accepts nothing before the
    /// deadline.
    Unavailable(String),
    /// The socket file or its listener belongs to an untrusted uid.
    Untrusted(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unavailable(m) | Self::Untrusted(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ConnectError {}

/// Connects to `socket` by `deadline` when the file and the process
/// listening on it belong to one of `trusted`. The connection is
/// blocking; callers bound each read and write by the same deadline.
pub fn connect_trusted(
    socket: &Path,
    trusted: &[u32],
    deadline: Instant,
) -> Result<UnixStream, ConnectError> {
    let unavailable =
        |e: &dyn std::fmt::Display| ConnectError::Unavailable(format!("{}: {e}", socket.display()));
    let owner = std::fs::metadata(socket).map_err(|e| unavailable(&e))?.uid();
    if !trusted.contains(&owner) {
        return Err(ConnectError::Untrusted(format!(
            "{} belongs to uid {owner}",
            socket.display()
        )));
    }
    let stream = connect_by(socket, deadline).map_err(|e| unavailable(&e))?;
    // The file may be swapped between the check and the connect; the
    // listener's credentials cannot.
    let peer = rustix::net::sockopt::socket_peercred(&stream)
        .map_err(|e| unavailable(&e))?
        .uid
        .as_raw();
    if !trusted.contains(&peer) {
        return Err(ConnectError::Untrusted(format!(
            "the process listening on {} runs as uid {peer}",
            socket.display()
        )));
    }
    Ok(stream)
}

/// Connects by `deadline`. A plain blocking `connect` waits for as long as
/// a hung daemon's listen backlog stays full; a non-blocking one answers
/// `EAGAIN` at once, and is tried again until the deadline.
fn connect_by(path: &Path, deadline: Instant) -> std::io::Result<UnixStream> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let addr = SocketAddrUnix::new(path)?;
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?;
    loop {
        match rustix::net::connect(&fd, &addr) {
            Ok(()) => break,
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(rustix::io::Errno::AGAIN) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the daemon accepts no connection",
                ));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let stream = UnixStream::from(fd);
    stream.set_nonblocking(false)?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::os::unix::net::UnixListener;

    fn me() -> u32 {
        rustix::process::geteuid().as_raw()
    }

    #[test]
    fn a_trusted_listener_is_reached() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let _l = UnixListener::bind(&path).unwrap();
        let deadline = Instant::now() + Duration::from_secs(1);
        assert!(connect_trusted(&path, &[me()], deadline).is_ok());
        // a file of another owner is not even connected to
        let e = connect_trusted(&path, &[me().wrapping_add(1)], deadline).unwrap_err();
        assert!(matches!(e, ConnectError::Untrusted(_)), "{e}");
        // and no socket at all is unavailable
        let e = connect_trusted(&dir.path().join("none"), &[me()], deadline).unwrap_err();
        assert!(matches!(e, ConnectError::Unavailable(_)), "{e}");
    }

    #[test]
    fn a_listener_that_accepts_nothing_is_given_up_by_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        // a listener with a tiny backlog that never accepts: fill it
        let l = rustix::net::socket(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            None,
        )
        .unwrap();
        rustix::net::bind(&l, &rustix::net::SocketAddrUnix::new(&path).unwrap()).unwrap();
        rustix::net::listen(&l, 0).unwrap();
        let mut held = Vec::new();
        for _ in 0..8 {
            match connect_by(&path, Instant::now() + Duration::from_millis(50)) {
                Ok(s) => held.push(s),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let e = connect_trusted(&path, &[me()], started + Duration::from_millis(300)).unwrap_err();
        assert!(matches!(e, ConnectError::Unavailable(_)), "{e}");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }
}
