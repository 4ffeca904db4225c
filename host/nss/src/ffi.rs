//! The C entry points glibc looks up in `libnss_gatehouse.so.2`
//! (`_nss_gatehouse_*`): pointer checks, `catch_unwind`, and copying what
//! the safe modules decided into the caller's structures. This is the only
//! module with `unsafe`; each block says why it holds.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use gatehouse_sdk::proto::{NssGroup, NssPasswd};
use libc::{c_char, c_int, c_long, gid_t, group, passwd, size_t, uid_t};

use crate::client::{Answer, Client, DEFAULT_SOCKET, Query, TIMEOUT, trusted_uids};
use crate::pack::{PackError, new_gids, pack_group, pack_passwd};
use crate::{Cursor, Status};

/// The `getpwent` cursor (the ABI keeps enumeration state in the module).
static PASSWD_CURSOR: Mutex<Cursor<NssPasswd>> = Mutex::new(Cursor::new());
/// The `getgrent` cursor.
static GROUP_CURSOR: Mutex<Cursor<NssGroup>> = Mutex::new(Cursor::new());

/// The socket: `GATEHOUSE_NSS_SOCKET` unless the process is setuid or
/// setgid (`AT_SECURE`, as `secure_getenv` decides), else the default.
fn socket() -> PathBuf {
    // SAFETY: getauxval only reads the auxiliary vector the kernel gave
    // the process; it has no preconditions.
    let secure = unsafe { libc::getauxval(libc::AT_SECURE) } != 0;
    match std::env::var_os("GATEHOUSE_NSS_SOCKET") {
        Some(p) if !secure && !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_SOCKET),
    }
}

/// Runs `f` with a client; a panic is `NSS_STATUS_UNAVAIL`.
fn guarded(errnop: *mut c_int, f: impl FnOnce(&Client<'_>) -> (Status, c_int)) -> c_int {
    let (status, errno) = catch_unwind(AssertUnwindSafe(|| {
        let path = socket();
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let client = Client::new(&path, trusted_uids(&passwd), TIMEOUT);
        f(&client)
    }))
    .unwrap_or((Status::Unavail, libc::EAGAIN));
    if errno != 0 && !errnop.is_null() {
        // SAFETY: glibc passes a pointer to the calling thread's errno.
        unsafe { *errnop = errno };
    }
    status as c_int
}

/// The name a caller passed, when it is non-NULL UTF-8.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string (glibc's contract).
unsafe fn name<'a>(name: *const c_char) -> Option<&'a str> {
    if name.is_null() {
        return None;
    }
    // SAFETY: non-NULL and NUL-terminated per this function's contract.
    unsafe { CStr::from_ptr(name) }
        .to_str()
        .ok()
        .filter(|s| !s.is_empty())
}

/// What a packing failure answers.
fn pack_failure(e: PackError) -> (Status, c_int) {
    match e {
        PackError::TooSmall => (Status::TryAgain, libc::ERANGE),
        PackError::Nul => (Status::NotFound, libc::ENOENT),
    }
}

/// Fills `out` with `p`, its strings in `buf`.
///
/// # Safety
/// `out` is NULL or a writable `struct passwd`; `buf` is NULL or
/// `buflen` writable bytes that stay valid as long as `out` is used.
unsafe fn fill_passwd(p: &NssPasswd, out: *mut passwd, buf: *mut c_char, buflen: size_t) -> (Status, c_int) {
    if out.is_null() || buf.is_null() {
        return (Status::Unavail, libc::EINVAL);
    }
    // SAFETY: `buf` is non-NULL with `buflen` writable bytes (contract),
    // and nothing else refers to them during this call.
    let bytes = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), buflen) };
    let l = match pack_passwd(bytes, p) {
        Ok(l) => l,
        Err(e) => return pack_failure(e),
    };
    // SAFETY: `out` is a writable struct passwd (contract); every offset
    // is within `buf` and starts a NUL-terminated string (pack_passwd).
    unsafe {
        (*out).pw_name = buf.add(l.name);
        (*out).pw_passwd = buf.add(l.passwd);
        (*out).pw_uid = p.uid as uid_t;
        (*out).pw_gid = p.gid as gid_t;
        (*out).pw_gecos = buf.add(l.gecos);
        (*out).pw_dir = buf.add(l.dir);
        (*out).pw_shell = buf.add(l.shell);
    }
    (Status::Success, 0)
}

/// Fills `out` with `g`, its strings and member array in `buf`.
///
/// # Safety
/// As [`fill_passwd`], for a `struct group`.
unsafe fn fill_group(g: &NssGroup, out: *mut group, buf: *mut c_char, buflen: size_t) -> (Status, c_int) {
    if out.is_null() || buf.is_null() {
        return (Status::Unavail, libc::EINVAL);
    }
    // SAFETY: as in fill_passwd.
    let bytes = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), buflen) };
    let l = match pack_group(bytes, buf as usize, g) {
        Ok(l) => l,
        Err(e) => return pack_failure(e),
    };
    // SAFETY: `l.array` is pointer-aligned at `buf`'s address with room for
    // `members.len() + 1` pointers inside `buf` (pack_group); every string
    // offset is inside `buf`, NUL-terminated; `out` is writable (contract).
    unsafe {
        let array = buf.add(l.array).cast::<*mut c_char>();
        for (i, at) in l.members.iter().enumerate() {
            array.add(i).write(buf.add(*at));
        }
        array.add(l.members.len()).write(std::ptr::null_mut());
        (*out).gr_name = buf.add(l.name);
        (*out).gr_passwd = buf.add(l.passwd);
        (*out).gr_gid = g.gid as gid_t;
        (*out).gr_mem = array;
    }
    (Status::Success, 0)
}

/// `getpwnam_r`.
///
/// # Safety
/// glibc's NSS contract: `name` NUL-terminated, `result` a writable
/// `struct passwd`, `buffer` `buflen` writable bytes, `errnop` the
/// caller's errno.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _nss_gatehouse_getpwnam_r(
    name_: *const c_char,
    result: *mut passwd,
    buffer: *mut c_char,
    buflen: size_t,
    errnop: *mut c_int,
) -> c_int {
    guarded(errnop, |c| {
        // SAFETY: glibc's contract (above).
        let Some(n) = (unsafe { name(name_) }) else {
            return (Status::NotFound, libc::ENOENT);
        };
        match c.passwd(&Query::PasswdByName(n)) {
            // SAFETY: glibc's contract (above).
            Answer::Found(p) if p.name == n => unsafe { fill_passwd(&p, result, buffer, buflen) },
            Answer::Unavailable(_) => (Status::Unavail, libc::EAGAIN),
            _ => (Status::NotFound, libc::ENOENT),
        }
    })
}

/// `getpwuid_r`.
///
/// # Safety
/// As [`_nss_gatehouse_getpwnam_r`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _nss_gatehouse_getpwuid_r(
    uid: uid_t,
    result: *mut passwd,
    buffer: *mut c_char,
    buflen: size_t,
    errnop: *mut c_int,
) -> c_int {
    guarded(errnop, |c| match c.passwd(&Query::PasswdByUid(uid)) {
        // SAFETY: glibc's contract (above).
        Answer::Found(p) if p.uid == uid => unsafe { fill_passwd(&p, result, buffer, buflen) },
        Answer::Unavailable(_) => (Status::Unavail, libc::EAGAIN),
        _ => (Status::NotFound, libc::ENOENT),
    })
}

/// `setpwent`.
#[unsafe(no_mangle)]
pub extern "C" fn _nss_gatehouse_setpwent(_stayopen: c_int) -> c_int {
    let _ = catch_unwind(|| {
        PASSWD_CURSOR
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .reset()
    });
    Status::Success as c_int
}

/// `endpwent`.
#[unsafe(no_mangle)]
pub extern "C" fn _nss_gatehouse_endpwent() -> c_int {
    _nss_gatehouse_setpwent(0)
}

/// `getpwent_r`.
///
/// # Safety
/// As [`_nss_gatehouse_getpwnam_r`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _nss_gatehouse_getpwent_r(
    result: *mut passwd,
    buffer: *mut c_char,
    buflen: size_t,
    errnop: *mut c_int,
) -> c_int {
    guarded(errnop, |c| {
        let mut cursor = PASSWD_CURSOR.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let p = match cursor.current(|| c.all_passwd()) {
                Err(s) => return (s, libc::EAGAIN),
                Ok(None) => return (Status::NotFound, libc::ENOENT),
                Ok(Some(p)) => p.clone(),
            };
            // SAFETY: glibc's contract (above).
            match unsafe { fill_passwd(&p, result, buffer, buflen) } {
                // an unrepresentable entry is skipped
                (Status::NotFound, _) => cursor.advance(),
                (Status::Success, e) => {
                    cursor.advance();
                    return (Status::Success, e);
                }
                other => return other,
            }
        }
    })
}

/// `getgrnam_r`.
///
/// # Safety
/// As [`_nss_gatehouse_getpwnam_r`], for a `struct group`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _nss_gatehouse_getgrnam_r(
    name_: *const c_char,
    result: *mut group,
    buffer: *mut c_char,
    buflen: size_t,
    errnop: *mut c_int,
) -> c_int {
    guarded(errnop, |c| {
        // SAFETY: glibc's contract (above).
        let Some(n) = (unsafe { name(name_) }) else {
            return (Status::NotFound, libc::ENOENT);
        };
        match c.group(&Query::GroupByName(n)) {
            // SAFETY: glibc's contract (above).
            Answer::Found(g) if g.name == n => unsafe { fill_group(&g, result, buffer, buflen) },
            Answer::Unavailable(_) => (Status::Unavail, libc::EAGAIN),
            _ => (Status::NotFound, libc::ENOENT),
        }
    })
}

/// `getgrgid_r`.
///
/// # Safety
/// As [`_nss_gatehouse_getgrnam_r`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _nss_gatehouse_getgrgid_r(
    gid: gid_t,
    result: *mut group,
    buffer: *mut c_char,
    buflen: size_t,
    errnop: *mut c_int,
) -> c_int {
    guarded(errnop, |c| match c.group(&Query::GroupByGid(gid)) {
        // SAFETY: glibc's contract (above).
        Answer::Found(g) if g.gid == gid => unsafe { fill_group(&g, result, buffer, buflen) },
        Answer::Unavailable(_) => (Status::Unavail, libc::EAGAIN),
        _ => (Status::NotFound, libc::ENOENT),
    })
}

/// `setgrent`.
#[unsafe(no_mangle)]
pub extern "C" fn _nss_gatehouse_setgrent(_stayopen: c_int) -> c_int {
    let _ = catch_unwind(|| {
        GROUP_CURSOR
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .reset()
    });
    Status::Success as c_int
}

/// `endgrent`.
#[unsafe(no_mangle)]
pub extern "C" fn _nss_gatehouse_endgrent() -> c_int {
    _nss_gatehouse_setgrent(0)
}

/// `getgrent_r`.
///
/// # Safety
/// As [`_nss_gatehouse_getgrnam_r`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _nss_gatehouse_getgrent_r(
    result: *mut group,
    buffer: *mut c_char,
    buflen: size_t,
    errnop: *mut c_int,
) -> c_int {
    guarded(errnop, |c| {
        let mut cursor = GROUP_CURSOR.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let g = match cursor.current(|| c.all_groups()) {
                Err(s) => return (s, libc::EAGAIN),
                Ok(None) => return (Status::NotFound, libc::ENOENT),
                Ok(Some(g)) => g.clone(),
            };
            // SAFETY: glibc's contract (above).
            match unsafe { fill_group(&g, result, buffer, buflen) } {
                (Status::NotFound, _) => cursor.advance(),
                (Status::Success, e) => {
                    cursor.advance();
                    return (Status::Success, e);
                }
                other => return other,
            }
        }
    })
}

/// `initgroups_dyn`: appends the gids of the user's groups (but `group`,
/// its primary group, and gids already there) to `*groupsp[*start..]`,
/// growing the array with `realloc` up to `limit` (≤ 0: no limit).
///
/// # Safety
/// glibc's contract: `user` NUL-terminated; `*groupsp` a `malloc`ed array
/// of `*size` gids of which `*start` are used; `errnop` the caller's errno.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _nss_gatehouse_initgroups_dyn(
    user: *const c_char,
    group: gid_t,
    start: *mut c_long,
    size: *mut c_long,
    groupsp: *mut *mut gid_t,
    limit: c_long,
    errnop: *mut c_int,
) -> c_int {
    guarded(errnop, |c| {
        if start.is_null() || size.is_null() || groupsp.is_null() {
            return (Status::Unavail, libc::EINVAL);
        }
        // SAFETY: glibc's contract (above).
        let Some(n) = (unsafe { name(user) }) else {
            return (Status::NotFound, libc::ENOENT);
        };
        let found = match c.groups_of(n) {
            Answer::Found(g) => g,
            Answer::NotFound => return (Status::NotFound, libc::ENOENT),
            Answer::Unavailable(_) => return (Status::Unavail, libc::EAGAIN),
        };
        // SAFETY: the three pointers are non-NULL (checked) and point to
        // glibc's counters and array: `*groupsp` holds `*size` gids, the
        // first `*start` in use; `realloc` gets the pointer malloc gave.
        unsafe {
            let used = usize::try_from(*start).unwrap_or(0);
            let have: &[gid_t] = if (*groupsp).is_null() || used == 0 {
                &[]
            } else {
                std::slice::from_raw_parts(*groupsp, used)
            };
            for gid in new_gids(have, group, &found) {
                if *start >= *size {
                    if limit > 0 && *size >= limit {
                        break;
                    }
                    let mut grown = (*size).max(1).saturating_mul(2);
                    if limit > 0 {
                        grown = grown.min(limit);
                    }
                    let bytes = usize::try_from(grown).unwrap_or(0) * std::mem::size_of::<gid_t>();
                    let p = libc::realloc((*groupsp).cast(), bytes).cast::<gid_t>();
                    if p.is_null() {
                        return (Status::TryAgain, libc::ENOMEM);
                    }
                    *groupsp = p;
                    *size = grown;
                }
                (*groupsp).add(usize::try_from(*start).unwrap_or(0)).write(gid);
                *start += 1;
            }
        }
        (Status::Success, 0)
    })
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixListener;

    use super::*;

    /// A daemon stand-in answering every request with `body` (200).
    fn stand_in(body: &'static str) -> tempfile_dir::Dir {
        let dir = tempfile_dir::Dir::new();
        let listener = UnixListener::bind(dir.0.join("nss.sock")).expect("bind");
        std::thread::spawn(move || {
            for mut s in listener.incoming().flatten() {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        // SAFETY: nextest runs each test in a process of its own; no other
        // thread reads the environment now.
        unsafe { std::env::set_var("GATEHOUSE_NSS_SOCKET", dir.0.join("nss.sock")) };
        dir
    }

    /// A directory removed on drop (no tempfile dependency for one test).
    mod tempfile_dir {
        pub(super) struct Dir(pub(super) std::path::PathBuf);
        impl Dir {
            pub(super) fn new() -> Self {
                let p = std::env::temp_dir().join(format!("nss-gh-ffi-{}", std::process::id()));
                let _ = std::fs::remove_dir_all(&p);
                std::fs::create_dir_all(&p).expect("dir");
                Self(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    const ALICE: &str =
        r#"{"name":"alice","uid":70001,"gid":70001,"gecos":"Alice","dir":"/home/alice","shell":"/bin/bash"}"#;

    fn lookup(name: &CStr, buflen: usize) -> (c_int, c_int, Option<(String, uid_t, String)>) {
        let mut pw: passwd = unsafe_zeroed_passwd();
        let mut buf = vec![0 as c_char; buflen.max(1)];
        let mut errno = 0;
        // SAFETY: a NUL-terminated name, a writable passwd, `buflen` bytes.
        let s = unsafe {
            _nss_gatehouse_getpwnam_r(name.as_ptr(), &mut pw, buf.as_mut_ptr(), buflen, &mut errno)
        };
        let got = (s == Status::Success as c_int).then(|| {
            // SAFETY: on success every field points into `buf`, NUL-terminated.
            unsafe {
                (
                    CStr::from_ptr(pw.pw_name).to_string_lossy().into_owned(),
                    pw.pw_uid,
                    CStr::from_ptr(pw.pw_dir).to_string_lossy().into_owned(),
                )
            }
        });
        (s, errno, got)
    }

    fn unsafe_zeroed_passwd() -> passwd {
        // SAFETY: struct passwd is plain data; all-zero is a valid value
        // (null pointers, zero ids).
        unsafe { std::mem::zeroed() }
    }

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    #[test]
    fn entries_land_in_the_callers_buffer_and_a_small_one_is_erange() {
        if !is_root() {
            eprintln!("SKIPPED: the stand-in's socket must belong to root to be trusted");
            return;
        }
        let _dir = stand_in(ALICE);
        let (s, _, got) = lookup(c"alice", 1024);
        assert_eq!(s, Status::Success as c_int);
        assert_eq!(got, Some(("alice".into(), 70001, "/home/alice".into())));
        // too small: TRYAGAIN + ERANGE, so glibc retries with more
        let (s, errno, _) = lookup(c"alice", 16);
        assert_eq!((s, errno), (Status::TryAgain as c_int, libc::ERANGE));
        // an answer about someone else is not taken for alice
        let (s, _, got) = lookup(c"bob", 1024);
        assert_eq!((s, got), (Status::NotFound as c_int, None));
        // nor is a NULL buffer written to
        let mut pw = unsafe_zeroed_passwd();
        let mut errno = 0;
        // SAFETY: glibc never passes NULL; the module must not write through it.
        let s = unsafe {
            _nss_gatehouse_getpwnam_r(c"alice".as_ptr(), &mut pw, std::ptr::null_mut(), 0, &mut errno)
        };
        assert_eq!(s, Status::Unavail as c_int);
    }

    #[test]
    fn garbage_from_the_daemon_is_unavailable_not_a_crash() {
        if !is_root() {
            eprintln!("SKIPPED: the stand-in's socket must belong to root to be trusted");
            return;
        }
        let _dir = stand_in(r#"{"name":"alice","uid":"zero"}"#);
        let (s, _, got) = lookup(c"alice", 1024);
        assert_eq!((s, got), (Status::Unavail as c_int, None));
    }
}
