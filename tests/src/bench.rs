//! Benchmark helpers: a lean load generator connection, latency
//! percentiles, per-process CPU accounting, and `openssl` for keys.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::process::run_with_stdin;

/// `openssl ARGS` fed `input` (a PEM text, or nothing): its output; panics
/// when openssl fails. For the benches' keys: `openssl(&["genpkey", …], "")`,
/// `openssl(&["pkey", "-pubout"], &private_pem)`.
pub fn openssl(args: &[&str], input: &str) -> Vec<u8> {
    let out = run_with_stdin(Command::new("openssl").args(args), input);
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `$BENCH_DAEMON_EXTRA`: lines a bench adds to its daemons' `[daemon]`
/// section (e.g. `worker_threads = 1`), to measure a setting without
/// editing the bench; empty when unset.
pub fn daemon_extra() -> String {
    std::env::var("BENCH_DAEMON_EXTRA").unwrap_or_default()
}

/// Whether a bench runs the row or case `name`: `$BENCH_ONLY` is unset,
/// or `name` contains one of its comma-separated parts (`"miss RS256"`,
/// `"daemon,gatehoused"`), for measuring one change quickly.
pub fn bench_only(name: &str) -> bool {
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    only.is_empty() || only.split(',').any(|part| name.contains(part.trim()))
}

/// The `p` quantile (0..=1) of sorted latencies; zero for none.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// CPU time (ns) the threads of process `pid` have run, from the
/// scheduler's own accounting (finer than the 10 ms ticks of
/// /proc/PID/stat). Threads that have exited are not counted.
pub fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// User and kernel CPU ticks (1/100 s) of process `pid`, from
/// /proc/PID/stat: coarse, for the user/kernel split of a long run.
pub fn cpu_ticks(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (field(11), field(12))
}

/// A load generator's connection: writes prepared HTTP/1.1 requests on one
/// keep-alive connection and reads each answer, with none of a full
/// client's per-request work (so a benchmark measures the daemon, not its
/// client).
///
/// It waits for readability only. A tokio socket also registers for
/// writability, and Linux then wakes the client's thread each time the
/// daemon reads a request off the socket (the freed space is a "writable"
/// event): a wake-up per request that a lean client such as `radclient`
/// does not cause, measured at 6% of the daemon's CPU per RADIUS login.
pub struct RawConnection {
    stream: AsyncFd<std::os::unix::net::UnixStream>,
    buf: Vec<u8>,
}

impl RawConnection {
    /// Connects to the socket at `path`.
    pub async fn connect(path: &Path) -> std::io::Result<Self> {
        // `into_std` leaves the socket non-blocking and out of tokio's poller
        let stream = tokio::net::UnixStream::connect(path).await?.into_std()?;
        // The safe constructor is deprecated because a type's `AsRawFd`
        // may hand out a descriptor it does not own; `UnixStream` owns its
        // descriptor, and the `unsafe` replacement has no place outside the
        // plugin ABI.
        #[allow(deprecated)]
        let stream = AsyncFd::with_interest(stream, Interest::READABLE)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(8192),
        })
    }

    /// `POST path` of a JSON body, as request bytes to send with
    /// [`RawConnection::roundtrip`].
    pub fn post_json(path: &str, body: &[u8]) -> Vec<u8> {
        let mut r = format!(
            "POST {path} HTTP/1.1\r\nhost: gatehouse\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        r
    }

    /// `GET path`, as request bytes.
    pub fn get(path: &str) -> Vec<u8> {
        format!("GET {path} HTTP/1.1\r\nhost: gatehouse\r\n\r\n").into_bytes()
    }

    /// Sends one request and reads its answer (a `Content-Length` body);
    /// returns the status.
    pub async fn roundtrip(&mut self, request: &[u8]) -> std::io::Result<u16> {
        let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
        self.send(request).await?;
        self.buf.clear();
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buf[..end]).map_err(|_| bad("head is not UTF-8"))?;
                let status: u16 = head
                    .get(9..12)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| bad("no status"))?;
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())
                            .flatten()
                    })
                    .ok_or_else(|| bad("no content-length"))?;
                let total = end + 4 + length;
                while self.buf.len() < total {
                    self.read_more().await?;
                }
                return Ok(status);
            }
            self.read_more().await?;
        }
    }

    /// Writes all of `request`. A request fits the socket's buffer; should
    /// it be full, the task yields and tries again (no writability wait).
    async fn send(&mut self, mut request: &[u8]) -> std::io::Result<()> {
        use std::io::Write as _;
        while !request.is_empty() {
            match self.stream.get_ref().write(request) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => request = &request[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => tokio::task::yield_now().await,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn read_more(&mut self) -> std::io::Result<()> {
        use std::io::Read as _;
        let mut chunk = [0u8; 8192];
        loop {
            let mut ready = self.stream.readable().await?;
            match ready.try_io(|s| s.get_ref().read(&mut chunk)) {
                Ok(Ok(0)) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(Ok(n)) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}
