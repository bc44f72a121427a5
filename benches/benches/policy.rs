//! Criterion benchmarks of policy evaluation (`vouch-query`): one decision against a
//! 50-policy bundle.
//!
//! The bundle mixes what real packs contain: exact and glob `when` matchers on environment,
//! service, repository and risk; approvals with role minimums; separation of duties; evidence
//! and checks; artifact promotion history; change windows with a freeze; CEL conditions;
//! parameters with an overlay. The request matches four of the fifty policies (one with a
//! window, one with CEL) and is allowed, so every requirement of those six runs to the end.
//!
//! Groups: `evaluate` (the decision alone), `evaluate+canonical_json` (the decision and its
//! recorded bytes), and `evaluate/no-cel` (the same bundle without CEL conditions).
//!
//! `policy-simulation/simulate/100k-decisions/…` evaluates a candidate (the same bundle with a
//! stricter parameter default) over 100 000 decisions recorded in a real ledger: `cold` with
//! a new `Governance` handle each time (the decisions are found through the index, read and
//! parsed; the handle and its cache are dropped after the measured time), `warm` with one
//! that simulated before (the parsed decisions are cached), and
//! `warm/1-thread` on one core. The ledger is
//! built once per run in a temporary directory, with durability `none` while it is built
//! (benchmarks only: nothing here survives a power failure, and nothing needs to); the
//! decisions are the records `Governance::decide` writes, made from generated requests that
//! vary environment, service, repository, risk and approvals, appended in batches.
//!
//! `policy-server/decide/…` decides and records requests through the real gRPC server
//! (`vouch_server::server::start` on `127.0.0.1:0`, a temporary data directory), with the
//! generated client: one client at a time (latency), and 64 concurrent calls (throughput,
//! one group commit serving many decisions). Every request is new, so every call appends a
//! decision. The requests model a release pipeline (`pipeline_request`): each artifact
//! version is decided for dev, then staging, then production, so each look-up of prior
//! promotions finds a short history. It runs with the default durability (`fsync`) and,
//! labelled, with `none`.
//!
//! Run with `cargo bench -p vouch-benches --bench policy`; results are in
//! `docs/benchmarks.md` (Policy evaluation).

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Duration;

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use vouch_ledger_core::HashAlg;
use vouch_ledger_core::entry::{EntryDraft, EntryKind};
use vouch_ledger_core::note::Signer;
use vouch_query::governance::{DecisionEntry, record};
use vouch_query::{
    CompiledBundle, DecisionRecord, Format, Governance, GovernanceTerms, Outcome, Request,
    SimulationOptions, SimulationScope, SourceBundle, compile, evaluate,
};
use vouch_storage::{CheckpointCadence, DataDir, Durability, LedgerConfig, LedgerOptions};

/// The allocator the `vouch` binary uses, so that what is measured is what runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Number of policies in the bundle.
const POLICIES: usize = 50;

/// Builds the 50-policy bundle; `with_cel` keeps or drops the CEL conditions.
fn bundle_yaml(with_cel: bool) -> String {
    let mut y = String::from(
        "version: 1\nname: bench-50\nroles: [Developer, Security, EngineeringManager, ReleaseManager, QA]\n\
         vocabulary:\n  environment: [dev, staging, production]\n  risk: [low, medium, high, critical]\n\
         parameters:\n  min_approvals: {type: integer, default: 2, minimum: 1, stricter: higher}\n\
         calendars:\n  office:\n    timezone: Europe/Berlin\n    weekly:\n      - {days: [mon, tue, wed, thu], start: \"08:00\", end: \"18:00\"}\n\
         \x20 freeze:\n    timezone: Europe/Berlin\n    dates:\n      - {start: 2025-12-19T17:00, end: 2026-01-05T09:00}\n\
         overlays:\n  - id: team-3-stricter\n    when: {repository: {glob: \"acme/team-3/*\"}}\n    tighten: {min_approvals: 2}\n\
         policies:\n",
    );
    let mut count = 0;
    // 20 production policies, one per service.
    for i in 0..20 {
        let _ = write!(
            y,
            "  - id: prod-svc-{i}\n    when: {{environment: production, service: svc-{i}}}\n    require:\n\
             \x20     approvals: {{min: {{param: min_approvals}}, roles: {{Security: 1, EngineeringManager: 1}}}}\n\
             \x20     separation_of_duties: [author_cannot_approve, requester_cannot_approve]\n\
             \x20     evidence: [ticket, rollback_plan, test_evidence]\n\
             \x20     checks: [lint, unit-test, {{name: dast, allow_na: true}}]\n"
        );
        count += 1;
    }
    // 10 staging policies over service globs.
    for i in 0..10 {
        let _ = write!(
            y,
            "  - id: staging-group-{i}\n    when: {{environment: staging, service: {{glob: \"svc-{i}*\"}}}}\n    require:\n\
             \x20     checks: [unit-test]\n      artifact: {{same_digest_in: [dev], immutable_version: true}}\n"
        );
        count += 1;
    }
    // 10 risk policies per team repository.
    for i in 0..10 {
        let _ = write!(
            y,
            "  - id: risk-team-{i}\n    when: {{risk: [high, critical], repository: {{glob: \"acme/team-{i}/*\"}}}}\n    require:\n\
             \x20     approvals: {{min: 1, kind: production, require_rationale: true, roles: {{ReleaseManager: 1}}}}\n\
             \x20     separation_of_duties: [production_approver_not_sole_pr_approver]\n"
        );
        count += 1;
    }
    // 5 window policies.
    for i in 0..5 {
        let _ = write!(
            y,
            "  - id: window-{i}\n    when: {{environment: production, repository: {{glob: \"acme/team-{}/*\"}}}}\n    require:\n\
             \x20     window: {{calendar: office, freeze: [freeze]}}\n      artifact: {{same_digest_in: [staging], immutable_version: true}}\n",
            i + 2
        );
        count += 1;
    }
    // 5 CEL policies.
    for i in 0..5 {
        if with_cel {
            let _ = write!(
                y,
                "  - id: cel-{i}\n    when: {{environment: production, service: {{glob: \"svc-{}\"}}}}\n    require:\n\
                 \x20     conditions:\n        - id: security-approved\n          cel: 'approvals.exists(a, \"Security\" in a.roles && a.approver != author)'\n\
                 \x20       - id: no-critical\n          cel: '!(\"critical_findings\" in evidence) || evidence.critical_findings == 0'\n",
                i + 3
            );
        } else {
            let _ = write!(
                y,
                "  - id: cel-{i}\n    when: {{environment: production, service: {{glob: \"svc-{}\"}}}}\n    require:\n\
                 \x20     evidence: [ticket]\n",
                i + 3
            );
        }
        count += 1;
    }
    assert_eq!(count, POLICIES);
    y
}

fn compiled(with_cel: bool) -> CompiledBundle {
    let source =
        SourceBundle::parse(&bundle_yaml(with_cel), Format::Yaml).expect("bench bundle parses");
    compile(&source).expect("bench bundle compiles")
}

const REQUEST: &str = r#"{
  "subject": "CHG-1", "environment": "production", "transition": "staging->production",
  "repository": "acme/team-3/api", "branch": "main", "service": "svc-3", "risk": "high",
  "change_type": "code", "author": "alice", "requester": "rita", "releaser": "bot",
  "approvals": [
    {"approver": "bob", "roles": ["Developer"], "kind": "pr", "at": "2025-06-02T12:00:00Z"},
    {"approver": "sam", "roles": ["Security"], "kind": "production", "at": "2025-06-03T08:00:00Z", "rationale": "ok"},
    {"approver": "erin", "roles": ["EngineeringManager"], "kind": "production", "at": "2025-06-03T08:10:00Z", "rationale": "ok"},
    {"approver": "rm", "roles": ["ReleaseManager"], "kind": "production", "at": "2025-06-03T08:20:00Z", "rationale": "go"}
  ],
  "evidence": {"ticket": "ABC-1", "rollback_plan": "revert", "test_evidence": "https://ci/1", "critical_findings": 0},
  "checks": {"lint": {"status": "passed"}, "unit-test": {"status": "passed"}, "dast": {"status": "na", "rationale": "internal"}},
  "artifact": {"version": "1.2.3", "commit": "abc", "digest": "sha256:01"},
  "now": "2025-06-03T10:00:00Z",
  "context": {"promotions": [
    {"environment": "dev", "version": "1.2.3", "commit": "abc", "digest": "sha256:01", "at": "2025-06-01T00:00:00Z"},
    {"environment": "staging", "version": "1.2.3", "commit": "abc", "digest": "sha256:01", "at": "2025-06-02T00:00:00Z"}
  ]}
}"#;

fn bench_policy(c: &mut Criterion) {
    let request = Request::from_json(REQUEST.as_bytes()).expect("bench request parses");
    let with_cel = compiled(true);
    let without_cel = compiled(false);
    let check = evaluate(&with_cel, &request);
    assert_eq!(check.outcome, Outcome::Allow, "{:?}", check.reasons);
    assert_eq!(check.matched_policies.len(), 4);
    assert_eq!(evaluate(&without_cel, &request).outcome, Outcome::Allow);

    let mut group = c.benchmark_group("policy");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("evaluate/50-policies", |b| {
        b.iter(|| evaluate(black_box(&with_cel), black_box(&request)));
    });
    group.bench_function("evaluate+canonical_json/50-policies", |b| {
        b.iter(|| evaluate(black_box(&with_cel), black_box(&request)).canonical_json());
    });
    group.bench_function("evaluate/no-cel/50-policies", |b| {
        b.iter(|| evaluate(black_box(&without_cel), black_box(&request)));
    });
    group.finish();
}

/// Decisions recorded for the simulation benchmark.
const RECORDED: usize = 100_000;

/// A request varied by `i`: environment, service, repository, risk and approvals change, so
/// that different policies match and the outcomes mix.
fn varied_request(i: usize) -> String {
    let environment = ["production", "staging", "dev"][i % 3];
    let risk = ["low", "medium", "high", "critical"][(i / 3) % 4];
    let approvals = match (i / 12) % 4 {
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
    format!(
        r#"{{"subject": "CHG-{i}", "environment": "{environment}", "transition": "staging->production",
  "repository": "acme/team-{}/api", "branch": "main", "service": "svc-{}", "risk": "{risk}",
  "change_type": "code", "author": "alice", "requester": "rita", "releaser": "bot",
  "approvals": [{approvals}],
  "evidence": {{"ticket": "ABC-{i}", "rollback_plan": "revert", "test_evidence": "https://ci/{i}", "critical_findings": 0}},
  "checks": {{"lint": {{"status": "passed"}}, "unit-test": {{"status": "passed"}}, "dast": {{"status": "na", "rationale": "internal"}}}},
  "artifact": {{"version": "1.{}.0", "commit": "abc", "digest": "sha256:01"}},
  "now": "2025-06-03T10:00:00Z"}}"#,
        i % 10,
        i % 25,
        i % 50
    )
}

/// The `i`-th request of a release pipeline: each artifact version goes to dev, then
/// staging, then production (three consecutive requests), one second apart, across 50
/// services in 10 repositories, so that each decision's promotion look-up finds the
/// earlier stages of its own version rather than a long history.
fn pipeline_request(i: usize) -> String {
    let version = i / 3;
    let stage = i % 3;
    let environment = ["dev", "staging", "production"][stage];
    let transition = ["build->dev", "dev->staging", "staging->production"][stage];
    let t = i % (25 * 86_400);
    let (day, hour, minute, second) = (2 + t / 86_400, t / 3600 % 24, t / 60 % 60, t % 60);
    format!(
        r#"{{"subject": "REL-{version}-{environment}", "environment": "{environment}", "transition": "{transition}",
  "repository": "acme/team-{}/api", "branch": "main", "service": "svc-{}", "risk": "high",
  "change_type": "code", "author": "alice", "requester": "rita", "releaser": "bot",
  "approvals": [
    {{"approver": "sam", "roles": ["Security"], "kind": "production", "at": "2025-06-01T08:00:00Z", "rationale": "ok"}},
    {{"approver": "erin", "roles": ["EngineeringManager"], "kind": "production", "at": "2025-06-01T08:10:00Z", "rationale": "ok"}},
    {{"approver": "rm", "roles": ["ReleaseManager"], "kind": "production", "at": "2025-06-01T08:20:00Z", "rationale": "go"}}],
  "evidence": {{"ticket": "ABC-{version}", "rollback_plan": "revert", "test_evidence": "https://ci/{version}", "critical_findings": 0}},
  "checks": {{"lint": {{"status": "passed"}}, "unit-test": {{"status": "passed"}}, "dast": {{"status": "na", "rationale": "internal"}}}},
  "artifact": {{"version": "1.{version}.0", "commit": "c{version}", "digest": "sha256:{version:08x}"}},
  "now": "2025-06-{day:02}T{hour:02}:{minute:02}:{second:02}Z"}}"#,
        version % 10,
        version % 50,
    )
}

/// A ledger holding the bench bundle and [`RECORDED`] decisions made with it.
fn recorded_ledger(dir: &std::path::Path) -> (Governance, CompiledBundle) {
    let signer = Signer::from_seed("bench.example/policy", &[3u8; 32]).expect("a valid signer");
    let data = DataDir::open(dir).expect("data dir");
    let config = LedgerConfig {
        hash: HashAlg::Blake3,
        origin: "bench.example/policy".into(),
        leaf_hash_index: true,
    };
    data.create_ledger("sim", &config, &signer.verifier(), 0)
        .expect("create ledger");
    let options = LedgerOptions {
        // Benchmarks only: the ledger is built without fsync.
        durability: Durability::NoneUnsafe,
        checkpoints: CheckpointCadence {
            every_entries: None,
            every: None,
        },
        extractor: Arc::new(GovernanceTerms),
        ..LedgerOptions::default()
    };
    let ledger = Arc::new(
        data.open_ledger("sim", signer, options)
            .expect("open ledger"),
    );
    let gov = Governance::new(ledger.clone());
    let published = gov
        .publish(&bundle_yaml(true), Format::Yaml, false)
        .expect("publish");
    let bundle = &published.bundle;
    let mut outcomes = [0usize; 3];
    for chunk in (0..RECORDED).collect::<Vec<_>>().chunks(5000) {
        let drafts: Vec<EntryDraft> = chunk
            .iter()
            .map(|&i| {
                let request =
                    Request::from_json(varied_request(i).as_bytes()).expect("request parses");
                let decision = DecisionRecord::decide(&bundle.compiled, request);
                outcomes[decision.evaluation.outcome as usize] += 1;
                let entry = DecisionEntry::new(decision, bundle.index);
                EntryDraft::new(
                    EntryKind::Decision,
                    Some(DecisionEntry::idempotency_key(&entry.id)),
                    record::DECISION_CONTENT_TYPE.to_owned(),
                    entry.to_json(),
                )
                .expect("draft")
            })
            .collect();
        ledger
            .submit(drafts, false)
            .expect("submit")
            .wait()
            .expect("append");
    }
    eprintln!(
        "recorded {RECORDED} decisions ({} ALLOW, {} BLOCK, {} SKIPPED), {} entries",
        outcomes[0],
        outcomes[1],
        outcomes[2],
        ledger.size()
    );
    let candidate = SourceBundle::parse(
        &bundle_yaml(true).replace(
            "min_approvals: {type: integer, default: 2,",
            "min_approvals: {type: integer, default: 4,",
        ),
        Format::Yaml,
    )
    .expect("candidate parses");
    (gov, compile(&candidate).expect("candidate compiles"))
}

/// The resident set size of this process, in bytes (Linux), for the cache's footprint.
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// The minor page faults of this process so far (Linux): pages the kernel mapped, and
/// zeroed, on first touch.
fn minor_faults() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // The fields after the command name, which is in parentheses; `minflt` is the
            // 10th field of the line, the 8th after it.
            let rest = &s[s.rfind(')')? + 1..];
            rest.split_whitespace().nth(7)?.parse::<u64>().ok()
        })
        .unwrap_or(0)
}

fn bench_simulation(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (gov, candidate) = recorded_ledger(dir.path());
    let options = SimulationOptions {
        scope: SimulationScope::Last(RECORDED as u64),
        ..SimulationOptions::default()
    };
    let before = resident_bytes();
    let faults = minor_faults();
    let started = std::time::Instant::now();
    let report = gov
        .simulate_compiled(&candidate, &options)
        .expect("simulation");
    eprintln!(
        "first (cold) simulation: {:?}; {} evaluated, {} would newly block, {} would unblock, delta {}; the cache added {} MiB of resident memory; {} minor page faults",
        started.elapsed(),
        report.evaluated,
        report.would_newly_block,
        report.would_unblock,
        report.delta,
        resident_bytes().saturating_sub(before) >> 20,
        minor_faults().saturating_sub(faults)
    );
    assert_eq!(report.evaluated, RECORDED as u64);
    assert!(
        report.would_newly_block > 0,
        "the candidate changes nothing"
    );
    let mut group = c.benchmark_group("policy-simulation");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    // Warm: the decisions were read and parsed by an earlier simulation (the cache).
    group.bench_function("simulate/100k-decisions/warm", |b| {
        b.iter(|| gov.simulate_compiled(black_box(&candidate), &options));
    });
    let single = SimulationOptions {
        threads: 1,
        ..options.clone()
    };
    group.bench_function("simulate/100k-decisions/warm/1-thread", |b| {
        b.iter(|| gov.simulate_compiled(black_box(&candidate), &single));
    });
    // Cold: a new handle on the same ledger, so every decision is found through the index,
    // read from the segments and parsed. The handle, with the decisions it cached, is
    // returned, so that criterion drops it after the measured time: freeing the cache of
    // 100,000 parsed decisions is not part of simulating.
    group.bench_function("simulate/100k-decisions/cold", |b| {
        b.iter_batched(
            || Governance::new(gov.ledger().clone()),
            |fresh| {
                let report = fresh.simulate_compiled(black_box(&candidate), &options);
                (report, fresh)
            },
            criterion::BatchSize::PerIteration,
        );
    });
    group.finish();
}

/// Concurrent calls per iteration of the throughput benchmark.
const CONCURRENT: usize = 64;

/// A running server with the bench bundle published, and a policy client.
struct DecideServer {
    server: vouch_server::server::RunningServer,
    client: vouch_server::client::PolicyClient,
    _dir: tempfile::TempDir,
}

async fn decide_server(durability: vouch_server::config::DurabilityMode) -> DecideServer {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut config = vouch_server::config::Config::embedded_default();
    config.data_dir = dir.path().join("data");
    config.listen = "127.0.0.1:0".parse().expect("address");
    config.metrics.enabled = false;
    config.storage.durability = durability;
    let server = vouch_server::server::start(config)
        .await
        .expect("the server starts");
    let mut client = vouch_server::client::connect_policy(&server.grpc_url(), None, None)
        .await
        .expect("connect");
    client
        .publish_bundle(vouch_server::proto::v1::PublishBundleRequest {
            source: bundle_yaml(true),
            ..Default::default()
        })
        .await
        .expect("publish");
    DecideServer {
        server,
        client,
        _dir: dir,
    }
}

async fn decide_once(client: &mut vouch_server::client::PolicyClient, i: usize) {
    use vouch_server::proto::v1 as pb;
    let response = client
        .decide(pb::DecideRequest {
            bundle: Some(pb::BundleRef {
                r#ref: Some(pb::bundle_ref::Ref::Name("bench-50".into())),
            }),
            request_json: pipeline_request(i),
            ..Default::default()
        })
        .await
        .expect("decide")
        .into_inner();
    assert!(!response.duplicate, "every request is new");
}

fn bench_decide_server(c: &mut Criterion) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use vouch_server::config::DurabilityMode;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let next = Arc::new(AtomicUsize::new(0));
    let mut group = c.benchmark_group("policy-server");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    for (label, durability) in [
        ("fsync", DurabilityMode::Fsync),
        ("none", DurabilityMode::None),
    ] {
        let mut s = runtime.block_on(decide_server(durability));
        group.throughput(criterion::Throughput::Elements(1));
        group.bench_function(format!("decide/{label}/1-client"), |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let started = std::time::Instant::now();
                    for _ in 0..iters {
                        decide_once(&mut s.client, next.fetch_add(1, Ordering::Relaxed)).await;
                    }
                    started.elapsed()
                })
            });
        });
        group.throughput(criterion::Throughput::Elements(CONCURRENT as u64));
        group.bench_function(format!("decide/{label}/{CONCURRENT}-concurrent"), |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let started = std::time::Instant::now();
                    for _ in 0..iters {
                        let calls: Vec<_> = (0..CONCURRENT)
                            .map(|_| {
                                let mut client = s.client.clone();
                                let i = next.fetch_add(1, Ordering::Relaxed);
                                tokio::spawn(async move { decide_once(&mut client, i).await })
                            })
                            .collect();
                        for call in calls {
                            call.await.expect("call task");
                        }
                    }
                    started.elapsed()
                })
            });
        });
        runtime
            .block_on(s.server.shutdown())
            .expect("clean shutdown");
    }
    group.finish();
}

criterion_group!(benches, bench_policy, bench_simulation, bench_decide_server);
criterion_main!(benches);
