//! What `vouch bench` sends: the operations, the weighted mix, payloads that differ for every
//! request, and the policy bundle and generated release requests of the `decide` workload.

use std::fmt::Write as _;

use clap::ValueEnum;

/// A workload: one operation, or a weighted mix of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// `Append`: one entry per call.
    Append,
    /// `AppendBatch`: `--batch-size` entries per call.
    Batch,
    /// `Append` with `wait_for_checkpoint`: answered with a checkpoint and an inclusion proof.
    AppendWait,
    /// `GetInclusionProof` of a random index against the latest checkpoint.
    Inclusion,
    /// `GetConsistencyProof` from a random older size to the latest checkpoint.
    Consistency,
    /// `PolicyService.Decide`: evaluate a new request against a 50-policy bundle and record
    /// the decision.
    Decide,
    /// A weighted mix of the others (`--mix`).
    Mix,
}

impl Workload {
    /// The name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Mix => "mix",
            other => Op::from_workload(other).map_or("mix", Op::name),
        }
    }
}

/// One kind of call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// `Append`.
    Append,
    /// `AppendBatch`.
    Batch,
    /// `Append` with `wait_for_checkpoint`.
    AppendWait,
    /// `GetInclusionProof`.
    Inclusion,
    /// `GetConsistencyProof`.
    Consistency,
    /// `Decide`.
    Decide,
}

impl Op {
    /// Every operation, in report order.
    pub const ALL: [Op; 6] = [
        Op::Append,
        Op::Batch,
        Op::AppendWait,
        Op::Inclusion,
        Op::Consistency,
        Op::Decide,
    ];

    /// The operation a single-operation workload runs.
    pub fn from_workload(w: Workload) -> Option<Op> {
        Some(match w {
            Workload::Append => Op::Append,
            Workload::Batch => Op::Batch,
            Workload::AppendWait => Op::AppendWait,
            Workload::Inclusion => Op::Inclusion,
            Workload::Consistency => Op::Consistency,
            Workload::Decide => Op::Decide,
            Workload::Mix => return None,
        })
    }

    /// The name on the command line (`--mix`) and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Op::Append => "append",
            Op::Batch => "batch",
            Op::AppendWait => "append-wait",
            Op::Inclusion => "inclusion",
            Op::Consistency => "consistency",
            Op::Decide => "decide",
        }
    }

    /// The position in [`Op::ALL`].
    pub fn slot(self) -> usize {
        match self {
            Op::Append => 0,
            Op::Batch => 1,
            Op::AppendWait => 2,
            Op::Inclusion => 3,
            Op::Consistency => 4,
            Op::Decide => 5,
        }
    }

    /// Ledger entries one successful call appends.
    pub fn entries(self, batch_size: usize) -> u64 {
        match self {
            Op::Append | Op::AppendWait | Op::Decide => 1,
            Op::Batch => batch_size as u64,
            Op::Inclusion | Op::Consistency => 0,
        }
    }

    /// Whether the operation needs entries covered by a checkpoint before it starts.
    pub fn needs_entries(self) -> bool {
        match self {
            Op::Inclusion | Op::Consistency => true,
            Op::Append | Op::Batch | Op::AppendWait | Op::Decide => false,
        }
    }
}

/// The operations of a run with their weights; a single-operation workload has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    /// `(operation, weight)`, weights above zero, each operation at most once.
    parts: Vec<(Op, u32)>,
    total: u32,
}

/// The mix `mix` runs without `--mix`.
pub const DEFAULT_MIX: &str = "append=70,inclusion=20,decide=10";

impl Mix {
    /// The mix of one operation.
    pub fn single(op: Op) -> Self {
        Self {
            parts: vec![(op, 1)],
            total: 1,
        }
    }

    /// Parses `append=70,inclusion=20,decide=10`.
    ///
    /// # Errors
    ///
    /// A message naming the bad part: an unknown operation, a weight that is not a positive
    /// integer, an operation named twice, or no part at all.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut parts: Vec<(Op, u32)> = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected OPERATION=WEIGHT"))?;
            let op = Op::ALL
                .into_iter()
                .find(|op| op.name() == name.trim())
                .ok_or_else(|| {
                    format!(
                        "{name:?}: not an operation; expected one of {}",
                        Op::ALL.map(Op::name).join(", ")
                    )
                })?;
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|_| format!("{part:?}: the weight must be a whole number"))?;
            if parts.iter().any(|(o, _)| *o == op) {
                return Err(format!("{:?} is named twice", op.name()));
            }
            if weight > 0 {
                parts.push((op, weight));
            }
        }
        let total = parts
            .iter()
            .try_fold(0u32, |sum, (_, w)| sum.checked_add(*w))
            .ok_or("the weights add up to more than 4294967295")?;
        if total == 0 {
            return Err("no operation has a weight above zero".to_owned());
        }
        Ok(Self { parts, total })
    }

    /// The operations and their weights.
    pub fn parts(&self) -> &[(Op, u32)] {
        &self.parts
    }

    /// Whether any operation of the mix needs existing entries.
    pub fn needs_entries(&self) -> bool {
        self.parts.iter().any(|(op, _)| op.needs_entries())
    }

    /// Whether the mix decides (and so needs the bundle published).
    pub fn decides(&self) -> bool {
        self.parts.iter().any(|(op, _)| *op == Op::Decide)
    }

    /// The operation for a uniform random `r`.
    pub fn pick(&self, r: u64) -> Op {
        let mut x = u32::try_from(r % u64::from(self.total)).unwrap_or(0);
        for (op, w) in &self.parts {
            if x < *w {
                return *op;
            }
            x -= w;
        }
        self.parts.last().map_or(Op::Append, |(op, _)| *op)
    }
}

/// A small fast pseudo-random generator (SplitMix64): choices and indexes, not secrets.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }
}

/// The content type of benchmark payloads.
pub const CONTENT_TYPE: &str = "text/plain";

/// Builds payloads of a fixed size that differ in every request: the run's nonce and a
/// sequence number in decimal, then filler letters.
#[derive(Debug, Clone)]
pub struct Payloads {
    filler: Vec<u8>,
    nonce: u64,
}

impl Payloads {
    /// Payloads of `size` bytes for the run with `nonce`.
    pub fn new(size: usize, nonce: u64) -> Self {
        let mut rng = Rng::new(nonce);
        let filler = (0..size)
            .map(|_| b'a' + u8::try_from(rng.below(26)).unwrap_or(0))
            .collect();
        Self { filler, nonce }
    }

    /// Payload number `seq`: `<nonce hex>-<seq>;` then filler, cut to the size.
    pub fn make(&self, seq: u64) -> Vec<u8> {
        let mut out = self.filler.clone();
        let head = format!("{:016x}-{seq};", self.nonce);
        let n = head.len().min(out.len());
        out[..n].copy_from_slice(&head.as_bytes()[..n]);
        out
    }
}

/// The name of the bundle the `decide` workload publishes.
pub const BUNDLE_NAME: &str = "bench-50";

/// The 50-policy bundle of the policy benchmarks (`benches/benches/policy.rs`): exact and glob
/// `when` matchers on environment, service, repository and risk; approvals with role
/// minimums; separation of duties; evidence and checks; artifact promotion; change windows
/// with a freeze; CEL conditions; a parameter with an overlay.
pub fn bundle_yaml() -> String {
    let mut y = String::from(
        "version: 1\nname: bench-50\nroles: [Developer, Security, EngineeringManager, ReleaseManager, QA]\n\
         vocabulary:\n  environment: [dev, staging, production]\n  risk: [low, medium, high, critical]\n\
         parameters:\n  min_approvals: {type: integer, default: 2, minimum: 1, stricter: higher}\n\
         calendars:\n  office:\n    timezone: Europe/Berlin\n    weekly:\n      - {days: [mon, tue, wed, thu], start: \"08:00\", end: \"18:00\"}\n\
         \x20 freeze:\n    timezone: Europe/Berlin\n    dates:\n      - {start: 2025-12-19T17:00, end: 2026-01-05T09:00}\n\
         overlays:\n  - id: team-3-stricter\n    when: {repository: {glob: \"acme/team-3/*\"}}\n    tighten: {min_approvals: 2}\n\
         policies:\n",
    );
    for i in 0..20 {
        let _ = write!(
            y,
            "  - id: prod-svc-{i}\n    when: {{environment: production, service: svc-{i}}}\n    require:\n\
             \x20     approvals: {{min: {{param: min_approvals}}, roles: {{Security: 1, EngineeringManager: 1}}}}\n\
             \x20     separation_of_duties: [author_cannot_approve, requester_cannot_approve]\n\
             \x20     evidence: [ticket, rollback_plan, test_evidence]\n\
             \x20     checks: [lint, unit-test, {{name: dast, allow_na: true}}]\n"
        );
    }
    for i in 0..10 {
        let _ = write!(
            y,
            "  - id: staging-group-{i}\n    when: {{environment: staging, service: {{glob: \"svc-{i}*\"}}}}\n    require:\n\
             \x20     checks: [unit-test]\n      artifact: {{same_digest_in: [dev], immutable_version: true}}\n"
        );
    }
    for i in 0..10 {
        let _ = write!(
            y,
            "  - id: risk-team-{i}\n    when: {{risk: [high, critical], repository: {{glob: \"acme/team-{i}/*\"}}}}\n    require:\n\
             \x20     approvals: {{min: 1, kind: production, require_rationale: true, roles: {{ReleaseManager: 1}}}}\n\
             \x20     separation_of_duties: [production_approver_not_sole_pr_approver]\n"
        );
    }
    for i in 0..5 {
        let _ = write!(
            y,
            "  - id: window-{i}\n    when: {{environment: production, repository: {{glob: \"acme/team-{}/*\"}}}}\n    require:\n\
             \x20     window: {{calendar: office, freeze: [freeze]}}\n      artifact: {{same_digest_in: [staging], immutable_version: true}}\n",
            i + 2
        );
    }
    for i in 0..5 {
        let _ = write!(
            y,
            "  - id: cel-{i}\n    when: {{environment: production, service: {{glob: \"svc-{}\"}}}}\n    require:\n\
             \x20     conditions:\n        - id: security-approved\n          cel: 'approvals.exists(a, \"Security\" in a.roles && a.approver != author)'\n\
             \x20       - id: no-critical\n          cel: '!(\"critical_findings\" in evidence) || evidence.critical_findings == 0'\n",
            i + 3
        );
    }
    y
}

/// Release request number `i` of the run with `nonce`.
///
/// Requests come in threes, one artifact each: `3g`, `3g + 1` and `3g + 2` promote artifact
/// `g` (its own version and digest) to dev, staging and production, so that the promotion
/// history the server looks up for a request holds at most the artifact's earlier stages,
/// as in a real pipeline where every release has a new version. Repository, service, risk
/// and approvals vary with `g` so that different policies match and the outcomes mix. The
/// subject and ticket carry the nonce and `i`, so no two requests are equal and every call
/// records a new decision, in this run and the next.
pub fn decide_request(nonce: u64, i: u64) -> String {
    let g = usize::try_from((i / 3) % 1_000_000).unwrap_or(0);
    let environment = ["dev", "staging", "production"][usize::try_from(i % 3).unwrap_or(0)];
    let risk = ["low", "medium", "high", "critical"][g % 4];
    let approvals = match (g / 4) % 4 {
        0 => "",
        1 => {
            r#"{"approver": "sam", "roles": ["Security"], "kind": "production", "at": "2025-06-03T08:00:00Z", "rationale": "ok"}"#
        }
        _ => {
            r#"{"approver": "sam", "roles": ["Security"], "kind": "production", "at": "2025-06-03T08:00:00Z", "rationale": "ok"},
               {"approver": "erin", "roles": ["EngineeringManager"], "kind": "production", "at": "2025-06-03T08:10:00Z", "rationale": "ok"},
               {"approver": "rm", "roles": ["ReleaseManager"], "kind": "production", "at": "2025-06-03T08:20:00Z", "rationale": "go"}"#
        }
    };
    let g = i / 3;
    format!(
        r#"{{"subject": "CHG-{nonce:016x}-{i}", "environment": "{environment}", "transition": "staging->production",
  "repository": "acme/team-{}/api", "branch": "main", "service": "svc-{}", "risk": "{risk}",
  "change_type": "code", "author": "alice", "requester": "rita", "releaser": "bot",
  "approvals": [{approvals}],
  "evidence": {{"ticket": "ABC-{i}", "rollback_plan": "revert", "test_evidence": "https://ci/{i}", "critical_findings": 0}},
  "checks": {{"lint": {{"status": "passed"}}, "unit-test": {{"status": "passed"}}, "dast": {{"status": "na", "rationale": "internal"}}}},
  "artifact": {{"version": "{}.{g}.0", "commit": "c{g:x}", "digest": "sha256:{nonce:016x}{g:016x}"}},
  "now": "2025-06-03T10:00:00Z"}}"#,
        g % 10,
        g % 25,
        nonce % 100_000
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse_and_pick_by_weight() {
        let mix = Mix::parse("append=70, inclusion=20,decide=10").unwrap();
        assert_eq!(
            mix.parts(),
            &[(Op::Append, 70), (Op::Inclusion, 20), (Op::Decide, 10)]
        );
        assert!(mix.needs_entries() && mix.decides());
        let mut counts = [0u32; 6];
        for r in 0..100 {
            counts[mix.pick(r).slot()] += 1;
        }
        assert_eq!(counts, [70, 0, 0, 20, 0, 10]);
        let single = Mix::single(Op::Batch);
        assert!(!single.needs_entries() && !single.decides());
        assert_eq!(single.pick(12345), Op::Batch);
        assert_eq!(
            Mix::parse("batch=1,consistency=0").unwrap().parts(),
            &[(Op::Batch, 1)]
        );
    }

    #[test]
    fn bad_mixes_are_refused() {
        for (spec, needle) in [
            ("", "no operation"),
            ("append=0", "no operation"),
            ("append", "OPERATION=WEIGHT"),
            ("appends=3", "not an operation"),
            ("mix=3", "not an operation"),
            ("append=-1", "whole number"),
            ("append=1,append=2", "twice"),
            ("append=4294967295,decide=1", "more than"),
        ] {
            let err = Mix::parse(spec).unwrap_err();
            assert!(err.contains(needle), "{spec:?}: {err}");
        }
    }

    #[test]
    fn payloads_have_the_size_and_differ() {
        let p = Payloads::new(256, 7);
        let (a, b) = (p.make(1), p.make(2));
        assert_eq!((a.len(), b.len()), (256, 256));
        assert_ne!(a, b);
        assert_ne!(
            Payloads::new(256, 8).make(1),
            a,
            "another run, other payloads"
        );
        assert_eq!(Payloads::new(4, 7).make(1).len(), 4);
        assert!(Payloads::new(0, 7).make(1).is_empty());
    }

    #[test]
    fn decide_requests_parse_and_differ() {
        let a: serde_json::Value = serde_json::from_str(&decide_request(1, 0)).unwrap();
        let b: serde_json::Value = serde_json::from_str(&decide_request(1, 1)).unwrap();
        let c: serde_json::Value = serde_json::from_str(&decide_request(2, 0)).unwrap();
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a["environment"], "dev");
        assert_eq!(b["environment"], "staging");
        assert_eq!(
            a["artifact"], b["artifact"],
            "one artifact per three requests"
        );
        let d: serde_json::Value = serde_json::from_str(&decide_request(1, 3)).unwrap();
        assert_ne!(a["artifact"]["version"], d["artifact"]["version"]);
        assert_ne!(
            c["artifact"]["digest"], a["artifact"]["digest"],
            "another run"
        );
    }

    #[test]
    fn the_bundle_compiles_with_fifty_policies() {
        let source =
            vouch_query::SourceBundle::parse(&bundle_yaml(), vouch_query::Format::Yaml).unwrap();
        let compiled = vouch_query::compile(&source).unwrap();
        let mut outcomes = std::collections::BTreeSet::new();
        for i in 0..60 {
            let request = vouch_query::Request::from_json(decide_request(3, i).as_bytes()).unwrap();
            let evaluation = vouch_query::evaluate(&compiled, &request);
            outcomes.insert(format!("{:?}", evaluation.outcome));
        }
        assert!(
            outcomes.len() >= 2,
            "the requests do not mix outcomes: {outcomes:?}"
        );
        let ids = bundle_yaml()
            .lines()
            .filter(|l| l.starts_with("  - id: "))
            .count();
        assert_eq!(ids, 51, "50 policies and 1 overlay");
    }
}
