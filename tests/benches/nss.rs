//! The host's name service: lookups/s through `libnss_gatehouse`'s own
//! entry points (`_nss_gatehouse_getpwnam_r` and friends, called in this
//! process as glibc calls them: connect, owner and peer checks, one `GET`,
//! packing into the caller's buffer) against a daemon whose `BENCH_USERS`
//! users (default 1000) are all in organization `eng` and team `eng.all`.
//! One caller at a time, as a process's NSS lookups are.
//!
//! Run with `scripts/bench.sh`, or `cargo build --release --bins && cargo
//! bench -p gatehouse-e2e --bench nss`. `BENCH_SECONDS` (default 2) per row.

#![allow(clippy::unwrap_used)]
// the bench calls the C entry points directly, as glibc would
#![allow(unsafe_code)]

use std::time::{Duration, Instant};

use gatehouse_e2e::{Daemon, Setup};
use nss_gatehouse::ffi;

const BODY: &str = r#"
[lockout]
max_failures = 1000000
max_failures_per_peer = 1000000
[host]
uid_range = [70000, 899999]
gid_range = [900000, 999999]
nss_socket = "nss.sock"
[[authenticators]]
name = "Local Database"
type = "local"
[authenticators.settings]
min_password_length = 8
argon2_memory_kib = 64
argon2_iterations = 1
argon2_parallelism = 1
[[authenticators.maps]]
map_type = "team"
organization = "eng"
team = "all"
triggers.always = {}
[[authenticators.maps]]
map_type = "organization"
organization = "eng"
triggers.always = {}
"#;

/// Runs `f` for `seconds`; (calls/s, p50, p99).
fn measure(seconds: u64, mut f: impl FnMut()) -> (f64, Duration, Duration) {
    let mut lat = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(seconds) {
        let t = Instant::now();
        f();
        lat.push(t.elapsed());
    }
    lat.sort();
    let rate = lat.len() as f64 / start.elapsed().as_secs_f64();
    (rate, lat[lat.len() / 2], lat[lat.len() * 99 / 100])
}

fn main() {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let users: usize = std::env::var("BENCH_USERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let d = Daemon::start(Setup::with_body(BODY));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = d.client().await;
        for i in 0..users {
            let name = format!("user{i:05}");
            assert_eq!(
                gatehouse_e2e::add_user(&mut c, &name, "password1").await.status,
                201
            );
            assert_eq!(gatehouse_e2e::login(&mut c, &name, "password1").await.status, 200);
        }
    });
    let socket = d.dir().join("nss.sock");
    while !socket.exists() {
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: single-threaded here; nothing else reads the environment.
    unsafe { std::env::set_var("GATEHOUSE_NSS_SOCKET", &socket) };

    let mut buf = vec![0 as libc::c_char; 4 << 20];
    let mut errno = 0;
    // SAFETY (all calls below): glibc's contract — NUL-terminated names,
    // a zeroed struct, a buffer of buf.len() bytes, a valid errno slot.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut gr: libc::group = unsafe { std::mem::zeroed() };
    let middle = users / 2;
    let name = std::ffi::CString::new(format!("user{middle:05}")).unwrap();
    // store ids count from 1, in creation order
    let uid = 70000 + u32::try_from(middle).unwrap() + 1;
    println!("NSS lookups, {users} users in one organization and one team, one caller, {seconds} s per row:");
    println!("| lookup | calls/s | p50 | p99 |\n|---|---|---|---|");
    let row = |what: &str, f: &mut dyn FnMut()| {
        let (rate, p50, p99) = measure(seconds, f);
        println!("| {what} | {rate:.0} | {p50:.1?} | {p99:.1?} |");
    };
    row("getpwnam", &mut || {
        let s = unsafe {
            ffi::_nss_gatehouse_getpwnam_r(name.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut errno)
        };
        assert_eq!(s, 1);
    });
    row("getpwuid", &mut || {
        let s =
            unsafe { ffi::_nss_gatehouse_getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut errno) };
        assert_eq!(s, 1);
    });
    row(&format!("getgrnam (a team of {users})"), &mut || {
        let s = unsafe {
            ffi::_nss_gatehouse_getgrnam_r(
                c"eng.all".as_ptr(),
                &mut gr,
                buf.as_mut_ptr(),
                buf.len(),
                &mut errno,
            )
        };
        assert_eq!(s, 1);
    });
    row("initgroups", &mut || {
        let mut start: libc::c_long = 0;
        let mut size: libc::c_long = 4;
        let mut groups =
            unsafe { libc::malloc(4 * std::mem::size_of::<libc::gid_t>()) }.cast::<libc::gid_t>();
        let s = unsafe {
            ffi::_nss_gatehouse_initgroups_dyn(
                name.as_ptr(),
                uid,
                &mut start,
                &mut size,
                &mut groups,
                0,
                &mut errno,
            )
        };
        assert_eq!((s, start), (1, 2));
        unsafe { libc::free(groups.cast()) };
    });
    row(&format!("getpwent (all {users})"), &mut || {
        ffi::_nss_gatehouse_setpwent(0);
        let mut n = 0;
        while unsafe { ffi::_nss_gatehouse_getpwent_r(&mut pw, buf.as_mut_ptr(), buf.len(), &mut errno) } == 1
        {
            n += 1;
        }
        ffi::_nss_gatehouse_endpwent();
        assert_eq!(n, users);
    });
}
