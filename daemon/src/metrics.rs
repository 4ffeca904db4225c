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

fn bump(m: &Mutex<Labelled>, name: &str, outcome: &'static str) {
    if let Ok(mut m) = m.lock() {
        match m.get_mut(name) {
            Some(inner) => *inner.entry(outcome).or_default() += 1,
            None => {
                m.entry(name.to_owned()).or_default().insert(outcome, 1);
            }
        }
    }
}

/// The daemon's metrics.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
    logins: Mutex<Labelled>,
    tokens: Mutex<Labelled>,
    token_cache: Mutex<Labelled>,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    generation: AtomicU64,
    connections: AtomicU64,
}

impl Metrics {
    /// Counts a served request.
    pub fn request(&self, route: &'static str, status: u16, elapsed: Duration) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((route, status)).or_default() += 1;
        }
        if let Ok(mut m) = self.latency.lock() {
            m.entry(route).or_default().observe(elapsed.as_secs_f64());
        }
    }

    /// Counts a login decision.
    pub fn login(&self, authenticator: &str, outcome: &'static str) {
        bump(&self.logins, authenticator, outcome);
    }

    /// Counts a token check by verifier and outcome (`valid` or a reason).
    pub fn token(&self, verifier: &str, outcome: &'static str) {
        bump(&self.tokens, verifier, outcome);
    }

    /// Counts a verified token served from (`hit`) or put into (`miss`)
    /// the verifier's cache.
    pub fn token_cache(&self, verifier: &str, hit: bool) {
        bump(&self.token_cache, verifier, if hit { "hit" } else { "miss" });
    }

    /// Counts a reload.
    pub fn reload(&self, ok: bool, generation: u64) {
        if ok {
            self.reloads_ok.fetch_add(1, Ordering::Relaxed);
        } else {
            self.reloads_failed.fetch_add(1, Ordering::Relaxed);
        }
        self.generation.store(generation, Ordering::Relaxed);
    }

    /// Counts an accepted connection.
    pub fn connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP gatehouse_requests_total Requests served, by route and status.\n");
        out.push_str("# TYPE gatehouse_requests_total counter\n");
        if let Ok(m) = self.requests.lock() {
            for ((route, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "gatehouse_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP gatehouse_request_duration_seconds Request latency, by route.\n");
        out.push_str("# TYPE gatehouse_request_duration_seconds histogram\n");
        if let Ok(m) = self.latency.lock() {
            for (route, h) in m.iter() {
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
        if let Ok(m) = self.tokens.lock() {
            for (verifier, outcome, n) in m.iter().flat_map(|(v, i)| i.iter().map(move |(o, n)| (v, o, n))) {
                let _ = writeln!(
                    out,
                    "gatehouse_token_checks_total{{verifier=\"{}\",outcome=\"{outcome}\"}} {n}",
                    escape_label(verifier)
                );
            }
        }
        out.push_str("# HELP gatehouse_token_cache_total Valid tokens by verifier cache result.\n");
        out.push_str("# TYPE gatehouse_token_cache_total counter\n");
        if let Ok(m) = self.token_cache.lock() {
            for (verifier, result, n) in m.iter().flat_map(|(v, i)| i.iter().map(move |(o, n)| (v, o, n))) {
                let _ = writeln!(
                    out,
                    "gatehouse_token_cache_total{{verifier=\"{}\",result=\"{result}\"}} {n}",
                    escape_label(verifier)
                );
            }
        }
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
        out
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
}
