//! What `vouch bench` measured: per-worker recorders (HDR histograms of latency per operation
//! and per second), their merge into a [`Report`], the report's JSON (its schema is in
//! `docs/benchmarks.md`) and the table people read.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::workloads::Op;

/// The `schema` field of the JSON report; it changes when a field changes meaning.
pub const SCHEMA: &str = "vouch-bench/1";

/// Percentiles of the latency distribution chart and the `distribution` field.
pub const DISTRIBUTION: [f64; 15] = [
    0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 97.5, 99.0, 99.5, 99.75, 99.9, 99.95, 99.99, 99.999, 100.0,
];

/// A latency histogram in microseconds with `sigfig` significant digits (1 to 5), growing as
/// needed.
fn histogram(sigfig: u8) -> Histogram<u64> {
    Histogram::new(sigfig).expect("1 to 5 significant digits are valid")
}

/// Microseconds, at least 1 (a histogram holds no zeros worth plotting).
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// What one operation saw.
#[derive(Debug, Clone)]
pub struct OpRecord {
    ok: u64,
    entries: u64,
    errors: BTreeMap<&'static str, u64>,
    latency: Histogram<u64>,
}

impl OpRecord {
    fn new() -> Self {
        Self {
            ok: 0,
            entries: 0,
            errors: BTreeMap::new(),
            latency: histogram(3),
        }
    }

    fn merge(&mut self, other: &OpRecord) {
        self.ok += other.ok;
        self.entries += other.entries;
        for (code, n) in &other.errors {
            *self.errors.entry(code).or_default() += n;
        }
        let _ = self.latency.add(&other.latency);
    }

    fn errors(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// What the calls completed in one second of the run saw.
#[derive(Debug, Clone)]
struct SecondRecord {
    completed: u64,
    latency: Histogram<u64>,
}

/// What one worker measured; workers record without sharing anything, and their recorders
/// are merged at the end.
#[derive(Debug, Clone)]
pub struct Recorder {
    ops: [Option<OpRecord>; 6],
    seconds: Vec<SecondRecord>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self {
            ops: Default::default(),
            seconds: Vec::new(),
        }
    }

    fn op(&mut self, op: Op) -> &mut OpRecord {
        self.ops[op.slot()].get_or_insert_with(OpRecord::new)
    }

    fn second(&mut self, at: Duration) -> &mut SecondRecord {
        let s = usize::try_from(at.as_secs())
            .unwrap_or(usize::MAX)
            .min(86_400);
        while self.seconds.len() <= s {
            self.seconds.push(SecondRecord {
                completed: 0,
                latency: histogram(2),
            });
        }
        &mut self.seconds[s]
    }

    /// A successful call of `op` that appended `entries`, completed `at` after the start of
    /// the run and took `latency`.
    pub fn ok(&mut self, op: Op, entries: u64, at: Duration, latency: Duration) {
        let us = micros(latency);
        let r = self.op(op);
        r.ok += 1;
        r.entries += entries;
        r.latency.record(us).unwrap_or_default();
        let s = self.second(at);
        s.completed += 1;
        s.latency.record(us).unwrap_or_default();
    }

    /// A failed call of `op` with gRPC code `code`, completed `at` after the start.
    pub fn error(&mut self, op: Op, code: tonic::Code, at: Duration) {
        *self.op(op).errors.entry(code_name(code)).or_default() += 1;
        self.second(at).completed += 1;
    }

    /// Adds another worker's measurements.
    pub fn merge(&mut self, other: &Recorder) {
        for (mine, theirs) in self.ops.iter_mut().zip(&other.ops) {
            if let Some(theirs) = theirs {
                mine.get_or_insert_with(OpRecord::new).merge(theirs);
            }
        }
        for (i, s) in other.seconds.iter().enumerate() {
            let mine = self.second(Duration::from_secs(i as u64));
            mine.completed += s.completed;
            let _ = mine.latency.add(&s.latency);
        }
    }
}

/// The canonical name of a gRPC status code (`UNAVAILABLE`, `DEADLINE_EXCEEDED`, ...).
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
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

/// Latency percentiles of successful calls, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    /// The fastest call.
    pub min_us: u64,
    /// The mean.
    pub mean_us: f64,
    /// The median.
    pub p50_us: u64,
    /// The 90th percentile.
    pub p90_us: u64,
    /// The 99th percentile.
    pub p99_us: u64,
    /// The 99.9th percentile.
    pub p99_9_us: u64,
    /// The slowest call.
    pub max_us: u64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            min_us: h.min(),
            mean_us: (h.mean() * 10.0).round() / 10.0,
            p50_us: h.value_at_quantile(0.5),
            p90_us: h.value_at_quantile(0.9),
            p99_us: h.value_at_quantile(0.99),
            p99_9_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// One operation's share of the run.
#[derive(Debug, Clone, Serialize)]
pub struct OpReport {
    /// The operation (`append`, `batch`, ...).
    pub op: &'static str,
    /// Completed calls, successful or not.
    pub requests: u64,
    /// Successful calls.
    pub ok: u64,
    /// Failed calls.
    pub errors: u64,
    /// Ledger entries the successful calls appended.
    pub entries: u64,
    /// Successful calls per second of the measured time.
    pub requests_per_second: f64,
    /// Appended entries per second of the measured time.
    pub entries_per_second: f64,
    /// Latency of the successful calls.
    pub latency_us: Latency,
    /// Failed calls by gRPC status code.
    pub errors_by_code: BTreeMap<&'static str, u64>,
}

/// One second of the run.
#[derive(Debug, Clone, Serialize)]
pub struct SecondReport {
    /// Seconds since the start of the measured run.
    pub second: u64,
    /// Calls completed in this second, successful or not.
    pub requests: u64,
    /// The median latency of the successful ones.
    pub p50_us: Option<u64>,
    /// Their 99th percentile.
    pub p99_us: Option<u64>,
}

/// A point of the latency distribution.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Point {
    /// The percentile, 0 to 100.
    pub percentile: f64,
    /// The latency at it, in microseconds.
    pub latency_us: u64,
}

/// One operation of the workload with its weight.
#[derive(Debug, Clone, Serialize)]
pub struct MixPart {
    /// The operation.
    pub op: &'static str,
    /// Its weight.
    pub weight: u32,
}

/// Where and how the run happened.
#[derive(Debug, Clone, Serialize)]
pub struct Environment {
    /// The `vouch` version.
    pub version: &'static str,
    /// Logical cores of the machine running `vouch bench`.
    pub cores: usize,
    /// Operating system and architecture.
    pub os: String,
    /// `embedded` (a server in this process) or `remote`.
    pub server: &'static str,
    /// The URL called.
    pub url: String,
    /// The ledger appended to and proved from.
    pub ledger: String,
    /// Its hash function.
    pub hash: String,
    /// Whether it indexes entries by leaf hash (a sled update per appended entry).
    pub leaf_hash_index: bool,
    /// Its durability mode as the server reports it (`fsync`, `interval (10 ms)`, `none ...`).
    pub durability: String,
    /// Whether acknowledged appends were synced to disk first (`fsync` durability).
    pub durable: bool,
    /// The workload.
    pub workload: &'static str,
    /// Its operations and weights.
    pub mix: Vec<MixPart>,
    /// Calls in flight at once (one task each).
    pub concurrency: usize,
    /// HTTP/2 connections the calls share.
    pub connections: usize,
    /// Payload bytes of every appended entry.
    pub payload_bytes: usize,
    /// Entries per `AppendBatch` call.
    pub batch_size: usize,
    /// The warm-up, not measured, in seconds.
    pub warmup_seconds: f64,
    /// The time bound, in seconds, if any.
    pub duration_seconds: Option<f64>,
    /// The bound on calls, if any.
    pub request_limit: Option<u64>,
    /// Entries in the ledger before the run (and before any pre-fill).
    pub ledger_size_before: u64,
    /// Entries appended to pre-fill the ledger for proofs.
    pub prefilled: u64,
    /// The checkpoint size proof targets were drawn below (0 without proof operations).
    pub proof_tree_size: u64,
    /// `/proc/loadavg` (1, 5, 15 minutes) before the run, where there is one.
    pub load_average_before: Option<[f64; 3]>,
    /// `/proc/loadavg` after the run.
    pub load_average_after: Option<[f64; 3]>,
}

/// What the embedded server's storage engine did during the measured run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Engine {
    /// Group commits (one segment write, and in `fsync` mode one `fdatasync`, each).
    pub group_commits: u64,
    /// Entries appended.
    pub entries_appended: u64,
    /// Mean entries per group commit.
    pub entries_per_group: f64,
    /// Mean `fdatasync` time, in microseconds.
    pub fsync_mean_us: f64,
    /// Mean group commit time (write, sync, acknowledgement), in microseconds.
    pub group_commit_mean_us: f64,
}

impl Engine {
    /// The difference between two snapshots of a ledger's counters.
    pub fn between(
        before: &vouch_storage::StatsSnapshot,
        after: &vouch_storage::StatsSnapshot,
    ) -> Self {
        #[allow(clippy::cast_precision_loss, reason = "counts stay far below 2^52")]
        let mean = |sum: Duration, count: u64| {
            (sum.as_secs_f64() * 1e6 / count.max(1) as f64 * 10.0).round() / 10.0
        };
        let groups = after.group_commits.saturating_sub(before.group_commits);
        let entries = after
            .entries_appended
            .saturating_sub(before.entries_appended);
        #[allow(clippy::cast_precision_loss, reason = "counts stay far below 2^52")]
        let per_group = (entries as f64 / groups.max(1) as f64 * 10.0).round() / 10.0;
        Self {
            group_commits: groups,
            entries_appended: entries,
            entries_per_group: per_group,
            fsync_mean_us: mean(
                after.fsync.sum.saturating_sub(before.fsync.sum),
                after.fsync.count.saturating_sub(before.fsync.count),
            ),
            group_commit_mean_us: mean(
                after
                    .group_commit
                    .sum
                    .saturating_sub(before.group_commit.sum),
                after
                    .group_commit
                    .count
                    .saturating_sub(before.group_commit.count),
            ),
        }
    }
}

/// The whole result: `vouch bench --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// Where and how.
    pub environment: Environment,
    /// The measured time, from the start until the last call completed, in seconds.
    pub elapsed_seconds: f64,
    /// Completed calls, successful or not.
    pub requests: u64,
    /// Successful calls.
    pub ok: u64,
    /// Failed calls.
    pub errors: u64,
    /// Ledger entries the successful calls appended.
    pub entries: u64,
    /// Successful calls per second.
    pub requests_per_second: f64,
    /// Appended entries per second.
    pub entries_per_second: f64,
    /// Latency of all successful calls.
    pub latency_us: Latency,
    /// Failed calls by gRPC status code.
    pub errors_by_code: BTreeMap<&'static str, u64>,
    /// Each operation's share.
    pub operations: Vec<OpReport>,
    /// Calls and latency per second.
    pub timeline: Vec<SecondReport>,
    /// The latency distribution of all successful calls at [`DISTRIBUTION`].
    pub distribution: Vec<Point>,
    /// The embedded server's storage engine during the run (`null` for a remote server).
    pub engine: Option<Engine>,
}

fn rate(n: u64, secs: f64) -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "counts stay far below 2^52")]
    let n = n as f64;
    if secs > 0.0 {
        (n / secs * 10.0).round() / 10.0
    } else {
        0.0
    }
}

impl Report {
    /// The report of a run that took `elapsed`, from the merged recorder.
    pub fn new(environment: Environment, elapsed: Duration, total: &Recorder) -> Self {
        let secs = elapsed.as_secs_f64();
        let mut all = histogram(3);
        let mut errors_by_code = BTreeMap::new();
        let mut operations = Vec::new();
        for op in Op::ALL {
            let Some(r) = &total.ops[op.slot()] else {
                continue;
            };
            let _ = all.add(&r.latency);
            for (code, n) in &r.errors {
                *errors_by_code.entry(*code).or_default() += n;
            }
            operations.push(OpReport {
                op: op.name(),
                requests: r.ok + r.errors(),
                ok: r.ok,
                errors: r.errors(),
                entries: r.entries,
                requests_per_second: rate(r.ok, secs),
                entries_per_second: rate(r.entries, secs),
                latency_us: Latency::of(&r.latency),
                errors_by_code: r.errors.clone(),
            });
        }
        let ok: u64 = operations.iter().map(|o| o.ok).sum();
        let errors: u64 = operations.iter().map(|o| o.errors).sum();
        let entries: u64 = operations.iter().map(|o| o.entries).sum();
        let timeline = total
            .seconds
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let some = !s.latency.is_empty();
                SecondReport {
                    second: i as u64,
                    requests: s.completed,
                    p50_us: some.then(|| s.latency.value_at_quantile(0.5)),
                    p99_us: some.then(|| s.latency.value_at_quantile(0.99)),
                }
            })
            .collect();
        let distribution = if all.is_empty() {
            Vec::new()
        } else {
            DISTRIBUTION
                .iter()
                .map(|&p| Point {
                    percentile: p,
                    latency_us: all.value_at_quantile(p / 100.0),
                })
                .collect()
        };
        Self {
            schema: SCHEMA,
            environment,
            elapsed_seconds: (secs * 1e4).round() / 1e4,
            requests: ok + errors,
            ok,
            errors,
            entries,
            requests_per_second: rate(ok, secs),
            entries_per_second: rate(entries, secs),
            latency_us: Latency::of(&all),
            errors_by_code,
            operations,
            timeline,
            distribution,
            engine: None,
        }
    }

    /// The warning that `none` durability prints above and below the table.
    pub fn durability_warning(&self) -> Option<String> {
        let d = &self.environment.durability;
        (!self.environment.durable).then(|| {
            format!(
                "WARNING: durability {d}: acknowledged appends were NOT synced to disk; \
                 these are not durable-append figures"
            )
        })
    }

    /// The table people read.
    pub fn render(&self) -> String {
        let e = &self.environment;
        let mut out = String::new();
        if let Some(w) = self.durability_warning() {
            let _ = writeln!(out, "{w}\n");
        }
        let bound = match (e.duration_seconds, e.request_limit) {
            (Some(d), Some(n)) => format!("{d} s or {n} requests, whichever came first"),
            (Some(d), None) => format!("{d} s"),
            (None, Some(n)) => format!("{n} requests"),
            (None, None) => "unbounded".to_owned(),
        };
        let mix = e
            .mix
            .iter()
            .map(|m| format!("{}={}", m.op, m.weight))
            .collect::<Vec<_>>()
            .join(",");
        let _ = writeln!(
            out,
            "vouch bench {}: workload {}{}, {} concurrent over {} connection{}, {bound} (warm-up {} s)",
            e.version,
            e.workload,
            if e.workload == "mix" {
                format!(" ({mix})")
            } else {
                String::new()
            },
            e.concurrency,
            e.connections,
            if e.connections == 1 { "" } else { "s" },
            e.warmup_seconds
        );
        let _ = writeln!(
            out,
            "  server:     {} {} ledger {:?} ({}, durability {}{})",
            e.server,
            e.url,
            e.ledger,
            e.hash,
            e.durability,
            if e.leaf_hash_index {
                ""
            } else {
                ", no leaf-hash index"
            }
        );
        let _ = writeln!(
            out,
            "  entries:    {}-byte payloads{}; ledger held {} entries before{}",
            e.payload_bytes,
            if self.operations.iter().any(|o| o.op == "batch") {
                format!(", {} per batch", e.batch_size)
            } else {
                String::new()
            },
            e.ledger_size_before,
            if e.prefilled > 0 {
                format!(", {} pre-filled", e.prefilled)
            } else {
                String::new()
            }
        );
        let load = |l: Option<[f64; 3]>| {
            l.map_or_else(|| "unknown".to_owned(), |l| format!("{:.2}", l[0]))
        };
        let _ = writeln!(
            out,
            "  machine:    {} cores, {}; load average {} before, {} after",
            e.cores,
            e.os,
            load(e.load_average_before),
            load(e.load_average_after)
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<12} {:>9} {:>7} {:>10} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "operation",
            "requests",
            "errors",
            "req/s",
            "entries/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms"
        );
        let ms = |us: u64| {
            #[allow(
                clippy::cast_precision_loss,
                reason = "latencies are far below 2^52 µs"
            )]
            let v = us as f64 / 1000.0;
            format!("{v:.3}")
        };
        let row = |out: &mut String, name: &str, r: &OpReport| {
            let _ = writeln!(
                out,
                "{name:<12} {:>9} {:>7} {:>10.0} {:>11.0} {:>9} {:>9} {:>9} {:>9} {:>9}",
                r.requests,
                r.errors,
                r.requests_per_second,
                r.entries_per_second,
                ms(r.latency_us.p50_us),
                ms(r.latency_us.p90_us),
                ms(r.latency_us.p99_us),
                ms(r.latency_us.p99_9_us),
                ms(r.latency_us.max_us)
            );
        };
        for o in &self.operations {
            row(&mut out, o.op, o);
        }
        if self.operations.len() > 1 {
            let total = OpReport {
                op: "total",
                requests: self.requests,
                ok: self.ok,
                errors: self.errors,
                entries: self.entries,
                requests_per_second: self.requests_per_second,
                entries_per_second: self.entries_per_second,
                latency_us: self.latency_us,
                errors_by_code: self.errors_by_code.clone(),
            };
            row(&mut out, "total", &total);
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{} requests in {:.2} s: {:.0} requests/s, {:.0} entries/s, {} error{}",
            self.requests,
            self.elapsed_seconds,
            self.requests_per_second,
            self.entries_per_second,
            self.errors,
            if self.errors == 1 { "" } else { "s" }
        );
        if let Some(g) = &self.engine {
            let _ = writeln!(
                out,
                "storage engine: {} group commits, {:.1} entries per group, fsync mean {:.0} µs, group commit mean {:.0} µs",
                g.group_commits, g.entries_per_group, g.fsync_mean_us, g.group_commit_mean_us
            );
        }
        if !self.errors_by_code.is_empty() {
            let codes = self
                .errors_by_code
                .iter()
                .map(|(c, n)| format!("{c} {n}"))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(out, "errors by code: {codes}");
        }
        if let Some(w) = self.durability_warning() {
            let _ = writeln!(out, "\n{w}");
        }
        out
    }
}

/// `/proc/loadavg`'s three load averages, on Linux.
pub fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn environment() -> Environment {
        Environment {
            version: "0",
            cores: 2,
            os: "linux x86_64".into(),
            server: "embedded",
            url: "http://127.0.0.1:1".into(),
            ledger: "bench".into(),
            hash: "blake3".into(),
            leaf_hash_index: true,
            durability: "none (UNSAFE)".into(),
            durable: false,
            workload: "mix",
            mix: vec![],
            concurrency: 2,
            connections: 1,
            payload_bytes: 256,
            batch_size: 10,
            warmup_seconds: 0.0,
            duration_seconds: None,
            request_limit: Some(5),
            ledger_size_before: 0,
            prefilled: 0,
            proof_tree_size: 0,
            load_average_before: None,
            load_average_after: None,
        }
    }

    #[test]
    fn recorders_merge_into_a_report() {
        let mut a = Recorder::new();
        let mut b = Recorder::new();
        let ms = Duration::from_millis;
        a.ok(Op::Append, 1, ms(100), ms(2));
        a.ok(Op::Batch, 10, ms(1500), ms(4));
        b.ok(Op::Append, 1, ms(2100), ms(1));
        b.error(Op::Append, tonic::Code::Unavailable, ms(2200));
        b.error(Op::Decide, tonic::Code::NotFound, ms(10));
        a.merge(&b);
        let r = Report::new(environment(), Duration::from_secs(2), &a);
        assert_eq!((r.requests, r.ok, r.errors, r.entries), (5, 3, 2, 12));
        assert!((r.entries_per_second - 6.0).abs() < 1e-9);
        assert_eq!(r.errors_by_code.get("UNAVAILABLE"), Some(&1));
        assert_eq!(r.errors_by_code.get("NOT_FOUND"), Some(&1));
        let ops: Vec<_> = r.operations.iter().map(|o| (o.op, o.requests)).collect();
        assert_eq!(ops, [("append", 3), ("batch", 1), ("decide", 1)]);
        let seconds: Vec<_> = r.timeline.iter().map(|s| s.requests).collect();
        assert_eq!(seconds, [2, 1, 2]);
        let p50 = r.timeline[0].p50_us.unwrap();
        assert!((1990..=2010).contains(&p50), "{p50}");
        assert!((4000..=4004).contains(&r.latency_us.max_us));
        assert!(r.latency_us.p50_us <= r.latency_us.p99_us);
        let mut last = 0;
        for p in &r.distribution {
            assert!(p.latency_us >= last, "{:?}", r.distribution);
            last = p.latency_us;
        }
        let text = r.render();
        assert!(text.starts_with("WARNING: durability none"), "{text}");
        assert!(text.contains("UNAVAILABLE 1"), "{text}");
        assert!(text.contains("\ntotal "), "{text}");
    }

    #[test]
    fn an_empty_run_reports_zeros() {
        let r = Report::new(environment(), Duration::ZERO, &Recorder::new());
        assert_eq!((r.requests, r.requests_per_second), (0, 0.0));
        assert!(r.distribution.is_empty() && r.timeline.is_empty());
        assert_eq!(r.latency_us, Latency::default());
    }
}
