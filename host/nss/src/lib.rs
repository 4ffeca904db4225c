//! `libnss_gatehouse.so.2`: the host's `passwd` and `group` databases from
//! the gatehouse daemon, so `getent passwd alice`, `id alice`, `ls -l` and
//! sshd see the users and groups gatehouse knows.
//!
//! ```text
//! # /etc/nsswitch.conf
//! passwd: files gatehouse
//! group:  files gatehouse
//! ```
//!
//! Every lookup is one `GET` to the daemon's read-only `[host] nss_socket`
//! ([`client`]), default [`client::DEFAULT_SOCKET`], or the path in
//! `GATEHOUSE_NSS_SOCKET` (ignored in setuid and setgid programs, as
//! `secure_getenv` would). The socket file and its listener must belong to
//! root or the `gatehouse` user (from `/etc/passwd`, read directly), else
//! nothing is asked. A lookup takes at most [`client::TIMEOUT`]; a daemon
//! that is down, hung or untrusted is `NSS_STATUS_UNAVAIL`, so the next
//! source in `nsswitch.conf` decides.
//!
//! Entries are laid out in the caller's buffer by safe code ([`pack`]);
//! only the C entry points (`ffi.rs`) use `unsafe`, each block with its
//! reason. No panic crosses the boundary. The only state kept between
//! calls is the `setpwent`/`getpwent` and `setgrent`/`getgrent` cursors the
//! ABI requires, each behind a mutex.

pub mod client;
pub mod ffi;
pub mod pack;

/// `enum nss_status` of `<nss.h>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// `NSS_STATUS_TRYAGAIN`: a buffer too small (errno `ERANGE`) or no memory.
    TryAgain = -2,
    /// `NSS_STATUS_UNAVAIL`: the daemon is down, hung or untrusted.
    Unavail = -1,
    /// `NSS_STATUS_NOTFOUND`: no such entry (or the end of an enumeration).
    NotFound = 0,
    /// `NSS_STATUS_SUCCESS`.
    Success = 1,
}

impl<T> From<&client::Answer<T>> for Status {
    fn from(a: &client::Answer<T>) -> Self {
        match a {
            client::Answer::Found(_) => Self::Success,
            client::Answer::NotFound => Self::NotFound,
            client::Answer::Unavailable(_) => Self::Unavail,
        }
    }
}

/// An enumeration in progress (`setpwent` … `endpwent`): the entries,
/// fetched at the first `get…ent`, and the next one to hand out.
#[derive(Debug)]
pub struct Cursor<T> {
    entries: Option<Vec<T>>,
    next: usize,
}

impl<T> Cursor<T> {
    /// A cursor that fetches at its first use.
    pub const fn new() -> Self {
        Self {
            entries: None,
            next: 0,
        }
    }

    /// Starts over (`set…ent`, `end…ent`).
    pub fn reset(&mut self) {
        self.entries = None;
        self.next = 0;
    }

    /// The next entry, fetching the list first when needed: `Err` when it
    /// cannot be fetched, `Ok(None)` at the end. The entry is not consumed
    /// until [`Cursor::advance`] (a caller whose buffer is too small asks
    /// for the same entry again).
    pub fn current(&mut self, fetch: impl FnOnce() -> client::Answer<Vec<T>>) -> Result<Option<&T>, Status> {
        if self.entries.is_none() {
            match fetch() {
                client::Answer::Found(e) => self.entries = Some(e),
                client::Answer::NotFound => self.entries = Some(Vec::new()),
                client::Answer::Unavailable(_) => return Err(Status::Unavail),
            }
        }
        Ok(self.entries.as_ref().and_then(|e| e.get(self.next)))
    }

    /// Moves past the current entry.
    pub fn advance(&mut self) {
        self.next += 1;
    }
}

impl<T> Default for Cursor<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use client::Answer;

    #[test]
    fn a_cursor_fetches_once_and_holds_an_entry_until_advanced() {
        let mut c = Cursor::new();
        let mut fetched = 0;
        let mut fetch = || {
            fetched += 1;
            Answer::Found(vec![1, 2])
        };
        assert_eq!(c.current(&mut fetch), Ok(Some(&1)));
        assert_eq!(c.current(&mut fetch), Ok(Some(&1)));
        c.advance();
        assert_eq!(c.current(&mut fetch), Ok(Some(&2)));
        c.advance();
        assert_eq!(c.current(&mut fetch), Ok(None));
        assert_eq!(fetched, 1);
        c.reset();
        assert_eq!(
            c.current(|| Answer::Unavailable("down".into())),
            Err(Status::Unavail)
        );
        assert_eq!(c.current(|| Answer::<Vec<i32>>::NotFound), Ok(None));
    }
}
