//! Counters a ledger keeps about its own work, for metrics.
//!
//! Plain atomics updated by the sequencer and read by anyone; the server exports them to
//! Prometheus. Latencies are kept as fixed-bucket histograms (cumulative counts per upper
//! bound), which is what Prometheus histograms need.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds, in microseconds, of the latency histogram buckets.
pub const LATENCY_BUCKETS_US: [u64; 12] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 1_000_000,
];

/// A fixed-bucket latency histogram.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Count per bucket of [`LATENCY_BUCKETS_US`], plus one for larger values.
    buckets: [AtomicU64; 13],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl LatencyHistogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = LATENCY_BUCKETS_US
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// A consistent-enough copy: per-bucket counts (not cumulative), sum and count.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            sum: Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed)),
            count: self.count.load(Ordering::Relaxed),
        }
    }
}

/// A copy of a [`LatencyHistogram`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Observations per bucket of [`LATENCY_BUCKETS_US`]; the last one counts larger values.
    pub buckets: [u64; 13],
    /// Sum of all observations.
    pub sum: Duration,
    /// Number of observations.
    pub count: u64,
}

/// What a ledger has done since it was opened.
#[derive(Debug, Default)]
pub struct LedgerStats {
    pub(crate) entries_appended: AtomicU64,
    pub(crate) duplicates: AtomicU64,
    pub(crate) group_commits: AtomicU64,
    pub(crate) append_errors: AtomicU64,
    pub(crate) checkpoints: AtomicU64,
    pub(crate) fsync: LatencyHistogram,
    pub(crate) group_commit: LatencyHistogram,
}

/// A copy of a ledger's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// New entries appended.
    pub entries_appended: u64,
    /// Appends answered with an existing entry (repeated idempotency key).
    pub duplicates: u64,
    /// Group commits (one segment write each).
    pub group_commits: u64,
    /// Append requests refused while committing.
    pub append_errors: u64,
    /// Checkpoints written.
    pub checkpoints: u64,
    /// Latency of the segment `fdatasync` calls.
    pub fsync: HistogramSnapshot,
    /// Latency of whole group commits, from the segment write to the acknowledgement.
    pub group_commit: HistogramSnapshot,
}

impl LedgerStats {
    /// A copy of the counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            entries_appended: self.entries_appended.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            group_commits: self.group_commits.load(Ordering::Relaxed),
            append_errors: self.append_errors.load(Ordering::Relaxed),
            checkpoints: self.checkpoints.load(Ordering::Relaxed),
            fsync: self.fsync.snapshot(),
            group_commit: self.group_commit.snapshot(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_by_upper_bound() {
        let h = LatencyHistogram::default();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_micros(51));
        h.observe(Duration::from_secs(5));
        let s = h.snapshot();
        assert_eq!(s.buckets[0], 1);
        assert_eq!(s.buckets[1], 1);
        assert_eq!(s.buckets[12], 1);
        assert_eq!(s.count, 3);
    }
}
