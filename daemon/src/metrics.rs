//! Prometheus metrics, written in the text exposition format by hand: a few
//! counters and histograms need no metrics framework.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Latency histogram bucket bounds, in seconds.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += secs;
    }
}

/// Counters by (instance name, outcome). Nested so the hot path looks the
/// name up by `&str` and allocates only the first time it sees it.
type Labelled = BTreeMap<String, BTreeMap<&'static str, u64>>;

fn bump(m: &mut Labelled, name: &str, outcome: &'static str) {
    match m.get_mut(name) {
        Some(inner) => *inner.entry(outcome).or_default() += 1,
        None => {
            m.entry(name.to_owned()).or_default().insert(outcome, 1);
        }
    }
}

/// Requests by (route, status), and latency by route: one lock per request.
#[derive(Default)]
struct Requests {
    counts: BTreeMap<(&'static str, u16), u64>,
    latency: BTreeMap<&'static str, Histogram>,
}

/// Token checks by (verifier, outcome), and valid tokens by cache result:
/// one lock per check.
#[derive(Default)]
struct Tokens {
    outcomes: Labelled,
    cache: Labelled,
}

/// The daemon's metrics.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<Requests>,
    logins: Mutex<Labelled>,
    tokens: Mutex<Tokens>,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    generation: AtomicU64,
    /// Unix seconds of the last successful load (start or reload).
    last_load_ok: AtomicU64,
    connections: AtomicU64,
    refused: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    /// Counts a served request.
    pub fn request(&self, route: &'static str, status: u16, elapsed: Duration) {
        if let Ok(mut m) = self.requests.lock() {
            *m.counts.entry((route, status)).or_default() += 1;
            m.latency.entry(route).or_default().observe(elapsed.as_secs_f64());
        }
    }

    /// Counts a login decision.
    pub fn login(&self, authenticator: &str, outcome: &'static str) {
        if let Ok(mut m) = self.logins.lock() {
            bump(&mut m, authenticator, outcome);
        }
    }

    /// Counts a refused or unchecked token by verifier and outcome (a
    /// reason, `missing`, `denied` or `unavailable`).
    pub fn token(&self, verifier: &str, outcome: &'static str) {
        if let Ok(mut m) = self.tokens.lock() {
            bump(&mut m.outcomes, verifier, outcome);
        }
    }

    /// Counts a valid token, served from (`hit`) or put into (`miss`) the
    /// verifier's cache.
    pub fn token_valid(&self, verifier: &str, cached: bool) {
        if let Ok(mut m) = self.tokens.lock() {
            bump(&mut m.outcomes, verifier, "valid");
            bump(&mut m.cache, verifier, if cached { "hit" } else { "miss" });
        }
    }

    /// Records the first generation: a load, not a reload.
    pub fn started(&self, generation: u64) {
        self.generation.store(generation, Ordering::Relaxed);
        self.last_load_ok.store(unix_now(), Ordering::Relaxed);
    }

    /// Counts a reload.
    pub fn reload(&self, ok: bool, generation: u64) {
        if ok {
            self.reloads_ok.fetch_add(1, Ordering::Relaxed);
            self.last_load_ok.store(unix_now(), Ordering::Relaxed);
        } else {
            self.reloads_failed.fetch_add(1, Ordering::Relaxed);
        }
        self.generation.store(generation, Ordering::Relaxed);
    }

    /// Counts an accepted connection.
    pub fn connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection refused right after `accept`, by reason.
    pub fn connection_refused(&self, reason: &'static str) {
        if let Ok(mut m) = self.refused.lock() {
            *m.entry(reason).or_default() += 1;
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP gatehouse_requests_total Requests served, by route and status.\n");
        out.push_str("# TYPE gatehouse_requests_total counter\n");
        let requests = self.requests.lock();
        if let Ok(m) = &requests {
            for ((route, status), n) in &m.counts {
                let _ = writeln!(
                    out,
                    "gatehouse_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP gatehouse_request_duration_seconds Request latency, by route.\n");
        out.push_str("# TYPE gatehouse_request_duration_seconds histogram\n");
        if let Ok(m) = &requests {
            for (route, h) in &m.latency {
                for (bound, n) in BUCKETS.iter().zip(h.counts.iter()) {
                    let _ = writeln!(
                        out,
                        "gatehouse_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {n}"
                    );
                }
                let _ = writeln!(
                    out,
                    "gatehouse_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(
                    out,
                    "gatehouse_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                    h.sum
                );
                let _ = writeln!(
                    out,
                    "gatehouse_request_duration_seconds_count{{route=\"{route}\"}} {}",
                    h.count
                );
            }
        }
        drop(requests);
        out.push_str("# HELP gatehouse_logins_total Login decisions, by authenticator and outcome.\n");
        out.push_str("# TYPE gatehouse_logins_total counter\n");
        if let Ok(m) = self.logins.lock() {
            for (auth, outcome, n) in m.iter().flat_map(|(a, i)| i.iter().map(move |(o, n)| (a, o, n))) {
                let _ = writeln!(
                    out,
                    "gatehouse_logins_total{{authenticator=\"{}\",outcome=\"{outcome}\"}} {n}",
                    escape_label(auth)
                );
            }
        }
        out.push_str("# HELP gatehouse_token_checks_total Token checks, by verifier and outcome.\n");
        out.push_str("# TYPE gatehouse_token_checks_total counter\n");
        let tokens = self.tokens.lock();
        if let Ok(m) = &tokens {
            for (verifier, outcome, n) in m
                .outcomes
                .iter()
                .flat_map(|(v, i)| i.iter().map(move |(o, n)| (v, o, n)))
            {
                let _ = writeln!(
                    out,
                    "gatehouse_token_checks_total{{verifier=\"{}\",outcome=\"{outcome}\"}} {n}",
                    escape_label(verifier)
                );
            }
        }
        out.push_str("# HELP gatehouse_token_cache_total Valid tokens by verifier cache result.\n");
        out.push_str("# TYPE gatehouse_token_cache_total counter\n");
        if let Ok(m) = &tokens {
            for (verifier, result, n) in m
                .cache
                .iter()
                .flat_map(|(v, i)| i.iter().map(move |(o, n)| (v, o, n)))
            {
                let _ = writeln!(
                    out,
                    "gatehouse_token_cache_total{{verifier=\"{}\",result=\"{result}\"}} {n}",
                    escape_label(verifier)
                );
            }
        }
        drop(tokens);
        out.push_str("# HELP gatehouse_reloads_total Configuration reloads, by result.\n");
        out.push_str("# TYPE gatehouse_reloads_total counter\n");
        let _ = writeln!(
            out,
            "gatehouse_reloads_total{{result=\"ok\"}} {}",
            self.reloads_ok.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "gatehouse_reloads_total{{result=\"error\"}} {}",
            self.reloads_failed.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP gatehouse_last_reload_success_timestamp_seconds When the serving configuration was loaded (start or reload).\n",
        );
        out.push_str("# TYPE gatehouse_last_reload_success_timestamp_seconds gauge\n");
        let _ = writeln!(
            out,
            "gatehouse_last_reload_success_timestamp_seconds {}",
            self.last_load_ok.load(Ordering::Relaxed)
        );
        out.push_str("# HELP gatehouse_config_generation The configuration generation being served.\n");
        out.push_str("# TYPE gatehouse_config_generation gauge\n");
        let _ = writeln!(
            out,
            "gatehouse_config_generation {}",
            self.generation.load(Ordering::Relaxed)
        );
        out.push_str("# HELP gatehouse_connections_total Socket connections accepted.\n");
        out.push_str("# TYPE gatehouse_connections_total counter\n");
        let _ = writeln!(
            out,
            "gatehouse_connections_total {}",
            self.connections.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP gatehouse_connections_refused_total Connections closed right after accept, by reason.\n",
        );
        out.push_str("# TYPE gatehouse_connections_refused_total counter\n");
        if let Ok(m) = self.refused.lock() {
            for (reason, n) in m.iter() {
                let _ = writeln!(
                    out,
                    "gatehouse_connections_refused_total{{reason=\"{reason}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP gatehouse_build_info The running build; the value is always 1.\n");
        out.push_str("# TYPE gatehouse_build_info gauge\n");
        let _ = writeln!(
            out,
            "gatehouse_build_info{{version=\"{}\",plugin_abi=\"{}.{}\"}} 1",
            env!("CARGO_PKG_VERSION"),
            gatehouse_sdk::abi::ABI_MAJOR,
            gatehouse_sdk::abi::ABI_MINOR
        );
        process_metrics(&mut out);
        out
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The usual `process_*` metrics, from `/proc/self` (Linux).
fn process_metrics(out: &mut String) {
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    // /proc/self/stat: fields after the command name (which may hold
    // spaces and parentheses), counted from 3 (`state`).
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat")
        && let Some((_, rest)) = stat.rsplit_once(')')
    {
        let f: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        if let (Some(utime), Some(stime)) = (field(14), field(15)) {
            out.push_str("# HELP process_cpu_seconds_total User and system CPU time spent, in seconds.\n");
            out.push_str("# TYPE process_cpu_seconds_total counter\n");
            let _ = writeln!(
                out,
                "process_cpu_seconds_total {}",
                (utime + stime) as f64 / ticks
            );
        }
        if let (Some(start), Ok(uptime)) = (field(22), std::fs::read_to_string("/proc/uptime")) {
            let up: f64 = uptime
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            let started = unix_now() as f64 - up + start as f64 / ticks;
            out.push_str("# HELP process_start_time_seconds Start time of the process since the Unix epoch, in seconds.\n");
            out.push_str("# TYPE process_start_time_seconds gauge\n");
            let _ = writeln!(out, "process_start_time_seconds {}", started.round());
        }
    }
    if let Ok(statm) = std::fs::read_to_string("/proc/self/statm")
        && let Some(pages) = statm
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse::<u64>().ok())
    {
        out.push_str("# HELP process_resident_memory_bytes Resident memory size, in bytes.\n");
        out.push_str("# TYPE process_resident_memory_bytes gauge\n");
        let _ = writeln!(
            out,
            "process_resident_memory_bytes {}",
            pages * rustix::param::page_size() as u64
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        out.push_str("# HELP process_open_fds Open file descriptors.\n");
        out.push_str("# TYPE process_open_fds gauge\n");
        let _ = writeln!(out, "process_open_fds {}", fds.count());
    }
    if let Ok(rlimit) = std::fs::read_to_string("/proc/self/limits")
        && let Some(max) = rlimit
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|v| v.parse::<u64>().ok())
    {
        out.push_str("# HELP process_max_fds The soft limit on open file descriptors.\n");
        out.push_str("# TYPE process_max_fds gauge\n");
        let _ = writeln!(out, "process_max_fds {max}");
    }
}

/// Escapes a Prometheus label value.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.request("/v1/health", 200, Duration::from_micros(300));
        m.request("/v1/health", 200, Duration::from_millis(30));
        m.login("Local \"DB\"", "ok");
        m.reload(true, 2);
        let text = m.render();
        assert!(text.contains("gatehouse_requests_total{route=\"/v1/health\",status=\"200\"} 2"));
        assert!(
            text.contains("gatehouse_request_duration_seconds_bucket{route=\"/v1/health\",le=\"0.0005\"} 1")
        );
        assert!(
            text.contains("gatehouse_request_duration_seconds_bucket{route=\"/v1/health\",le=\"0.05\"} 2")
        );
        assert!(text.contains("gatehouse_logins_total{authenticator=\"Local \\\"DB\\\"\",outcome=\"ok\"} 1"));
        assert!(text.contains("gatehouse_config_generation 2"));
    }

    /// The start counted as a reload; there was no build, process or
    /// last-reload metric.
    #[test]
    fn the_start_is_not_a_reload_and_build_and_process_metrics_are_there() {
        let m = Metrics::default();
        m.started(1);
        let text = m.render();
        assert!(
            text.contains("gatehouse_reloads_total{result=\"ok\"} 0"),
            "{text}"
        );
        assert!(text.contains(&format!(
            "gatehouse_build_info{{version=\"{}\",",
            env!("CARGO_PKG_VERSION")
        )));
        let gauge = |name: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} missing: {text}"))
        };
        assert!(gauge("process_resident_memory_bytes") > 1_000_000.0);
        assert!(gauge("process_open_fds") >= 3.0);
        assert!(gauge("process_cpu_seconds_total") >= 0.0);
        let now = unix_now() as f64;
        assert!((gauge("gatehouse_last_reload_success_timestamp_seconds") - now).abs() < 5.0);
        assert!((gauge("process_start_time_seconds") - now).abs() < 3600.0);
        m.reload(true, 2);
        assert!(m.render().contains("gatehouse_reloads_total{result=\"ok\"} 1"));
    }
}
