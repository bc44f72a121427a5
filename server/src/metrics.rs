//! Prometheus metrics: counters kept by the server, and each ledger's own statistics,
//! rendered in the Prometheus text exposition format on `GET /metrics` of a separate port.
//!
//! The exposition is written by hand: the ledger statistics are already fixed-bucket
//! histograms of atomics ([`vouch_storage::stats`]), the metric set is small and fixed, and a
//! registry crate would add a second copy of every value and a global registry. The HTTP
//! server is axum (already in tonic's dependency tree) with only HTTP/1 enabled.
//!
//! Labels have bounded values: `method` is one of the permission table's paths (or
//! `unknown`), `code` a gRPC code name, `ledger` a ledger name.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::Code;
use vouch_storage::stats::{HistogramSnapshot, LATENCY_BUCKETS_US, LatencyHistogram};

use crate::registry::Registry;

/// Upper bounds of the batch-size histogram, in entries.
const BATCH_BUCKETS: [u64; 10] = [1, 2, 5, 10, 50, 100, 500, 1_000, 5_000, 10_000];

/// A histogram of counts (batch sizes).
#[derive(Debug, Default)]
struct CountHistogram {
    buckets: [AtomicU64; BATCH_BUCKETS.len() + 1],
    sum: AtomicU64,
    count: AtomicU64,
}

impl CountHistogram {
    fn observe(&self, n: u64) {
        let i = BATCH_BUCKETS
            .iter()
            .position(|b| n <= *b)
            .unwrap_or(BATCH_BUCKETS.len());
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.sum.fetch_add(n, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

/// The server's own counters.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    latency: Mutex<BTreeMap<&'static str, Arc<LatencyHistogram>>>,
    batch_entries: CountHistogram,
    inclusion_proofs: LatencyHistogram,
    consistency_proofs: LatencyHistogram,
    open_streams: AtomicU64,
}

/// The label value of a method path: the path itself if the permission table knows it.
fn method_label(path: &str) -> &'static str {
    crate::auth::PERMISSIONS
        .iter()
        .find(|(p, _)| *p == path)
        .map_or("unknown", |(p, _)| p.trim_start_matches('/'))
}

impl Metrics {
    /// Records a finished call.
    pub fn record_rpc(&self, path: &str, code: Code, elapsed: Duration) {
        let method = method_label(path);
        *self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry((method, code_name(code)))
            .or_default() += 1;
        let h = self
            .latency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(method)
            .or_default()
            .clone();
        h.observe(elapsed);
    }

    /// Records the size of an append request.
    pub fn record_batch(&self, entries: usize) {
        self.batch_entries
            .observe(u64::try_from(entries).unwrap_or(u64::MAX));
    }

    /// Records how long an inclusion proof took.
    pub fn record_inclusion_proof(&self, elapsed: Duration) {
        self.inclusion_proofs.observe(elapsed);
    }

    /// Records how long a consistency proof took.
    pub fn record_consistency_proof(&self, elapsed: Duration) {
        self.consistency_proofs.observe(elapsed);
    }

    /// A stream opened (+1) or closed (-1).
    pub fn stream_opened(&self) {
        self.open_streams.fetch_add(1, Ordering::Relaxed);
    }

    /// See [`Metrics::stream_opened`].
    pub fn stream_closed(&self) {
        self.open_streams.fetch_sub(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of the server's and the ledgers' metrics.
    pub fn render(&self, registry: &Registry) -> String {
        let mut out = String::with_capacity(8192);
        header(
            &mut out,
            "vouch_rpc_requests_total",
            "counter",
            "Finished RPCs by method and gRPC status code.",
        );
        for ((method, code), n) in self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            let _ = writeln!(
                out,
                "vouch_rpc_requests_total{{method=\"{method}\",code=\"{code}\"}} {n}"
            );
        }
        header(
            &mut out,
            "vouch_rpc_errors_total",
            "counter",
            "Finished RPCs that did not return OK, by method and gRPC status code.",
        );
        for ((method, code), n) in self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|((_, c), _)| *c != "OK")
        {
            let _ = writeln!(
                out,
                "vouch_rpc_errors_total{{method=\"{method}\",code=\"{code}\"}} {n}"
            );
        }
        header(
            &mut out,
            "vouch_rpc_duration_seconds",
            "histogram",
            "Time from request to response headers (unary: the whole call), by method.",
        );
        let latency: Vec<_> = self
            .latency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(m, h)| (*m, h.snapshot()))
            .collect();
        for (method, snap) in latency {
            latency_histogram(
                &mut out,
                "vouch_rpc_duration_seconds",
                &format!("method=\"{method}\""),
                &snap,
            );
        }
        header(
            &mut out,
            "vouch_append_batch_entries",
            "histogram",
            "Entries per append request (Append counts 1).",
        );
        self.batch_histogram(&mut out);
        header(
            &mut out,
            "vouch_proof_duration_seconds",
            "histogram",
            "Time to build and self-check a proof, by kind.",
        );
        latency_histogram(
            &mut out,
            "vouch_proof_duration_seconds",
            "kind=\"inclusion\"",
            &self.inclusion_proofs.snapshot(),
        );
        latency_histogram(
            &mut out,
            "vouch_proof_duration_seconds",
            "kind=\"consistency\"",
            &self.consistency_proofs.snapshot(),
        );
        header(
            &mut out,
            "vouch_open_streams",
            "gauge",
            "StreamEntries and WatchCheckpoints calls open now.",
        );
        let _ = writeln!(
            out,
            "vouch_open_streams {}",
            self.open_streams.load(Ordering::Relaxed)
        );
        render_ledgers(&mut out, registry);
        out
    }

    fn batch_histogram(&self, out: &mut String) {
        let h = &self.batch_entries;
        let mut cumulative = 0u64;
        for (i, bound) in BATCH_BUCKETS.iter().enumerate() {
            cumulative += h.buckets.get(i).map_or(0, |b| b.load(Ordering::Relaxed));
            let _ = writeln!(
                out,
                "vouch_append_batch_entries_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = h.count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "vouch_append_batch_entries_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "vouch_append_batch_entries_sum {}",
            h.sum.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "vouch_append_batch_entries_count {count}");
    }
}

fn render_ledgers(out: &mut String, registry: &Registry) {
    type Counter = (
        &'static str,
        &'static str,
        fn(&vouch_storage::StatsSnapshot) -> u64,
    );
    let ledgers = registry.list();
    let stats: Vec<_> = ledgers
        .iter()
        .map(|l| (l.name().to_owned(), l.stats(), l))
        .collect();
    let counters: [Counter; 5] = [
        (
            "vouch_appends_total",
            "Entries appended since the server started.",
            |s| s.entries_appended,
        ),
        (
            "vouch_append_duplicates_total",
            "Appends answered with an existing entry (repeated idempotency key).",
            |s| s.duplicates,
        ),
        (
            "vouch_group_commits_total",
            "Group commits (one segment write and sync each).",
            |s| s.group_commits,
        ),
        (
            "vouch_append_errors_total",
            "Append requests refused while committing.",
            |s| s.append_errors,
        ),
        (
            "vouch_checkpoints_signed_total",
            "Checkpoints signed since the server started.",
            |s| s.checkpoints,
        ),
    ];
    for (name, help, get) in counters {
        header(out, name, "counter", help);
        for (ledger, s, _) in &stats {
            let _ = writeln!(out, "{name}{{ledger=\"{ledger}\"}} {}", get(s));
        }
    }
    header(
        out,
        "vouch_fsync_duration_seconds",
        "histogram",
        "Latency of the segment fdatasync calls.",
    );
    for (ledger, s, _) in &stats {
        latency_histogram(
            out,
            "vouch_fsync_duration_seconds",
            &format!("ledger=\"{ledger}\""),
            &s.fsync,
        );
    }
    header(
        out,
        "vouch_group_commit_duration_seconds",
        "histogram",
        "Latency of whole group commits, from the segment write to the acknowledgement.",
    );
    for (ledger, s, _) in &stats {
        latency_histogram(
            out,
            "vouch_group_commit_duration_seconds",
            &format!("ledger=\"{ledger}\""),
            &s.group_commit,
        );
    }
    header(
        out,
        "vouch_ledger_entries",
        "gauge",
        "Entries in the ledger (its tree size).",
    );
    for (ledger, _, l) in &stats {
        let _ = writeln!(
            out,
            "vouch_ledger_entries{{ledger=\"{ledger}\"}} {}",
            l.size().0
        );
    }
    header(
        out,
        "vouch_ledger_checkpoints",
        "gauge",
        "Signed checkpoints stored for the ledger.",
    );
    for (ledger, _, l) in &stats {
        let _ = writeln!(
            out,
            "vouch_ledger_checkpoints{{ledger=\"{ledger}\"}} {}",
            l.checkpoint_count()
        );
    }
    header(
        out,
        "vouch_ledger_latest_checkpoint_size",
        "gauge",
        "Tree size of the latest signed checkpoint.",
    );
    for (ledger, _, l) in &stats {
        let size = l.latest_checkpoint().map_or(0, |c| c.size().0);
        let _ = writeln!(
            out,
            "vouch_ledger_latest_checkpoint_size{{ledger=\"{ledger}\"}} {size}"
        );
    }
    header(
        out,
        "vouch_ledger_poisoned",
        "gauge",
        "1 if the ledger refuses appends after a failed write or sync (restart needed), else 0.",
    );
    for (ledger, _, l) in &stats {
        let _ = writeln!(
            out,
            "vouch_ledger_poisoned{{ledger=\"{ledger}\"}} {}",
            u8::from(l.poisoned().is_some())
        );
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn latency_histogram(out: &mut String, name: &str, labels: &str, h: &HistogramSnapshot) {
    let mut cumulative = 0u64;
    for (i, bound_us) in LATENCY_BUCKETS_US.iter().enumerate() {
        cumulative += h.buckets.get(i).copied().unwrap_or(0);
        let le = Duration::from_micros(*bound_us).as_secs_f64();
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum.as_secs_f64());
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
}

/// The canonical upper-case name of a gRPC code.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` resolves.
///
/// # Errors
///
/// The HTTP server's I/O error.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    registry: Arc<Registry>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            let registry = registry.clone();
            async move {
                let body = metrics.render(&registry);
                (
                    [(
                        http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    body,
                )
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// The URL of the metrics endpoint at `addr`.
pub fn url(addr: SocketAddr) -> String {
    format!("http://{addr}/metrics")
}
