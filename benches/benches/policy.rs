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
//! Run with `cargo bench -p vouch-benches --bench policy`; results are in
//! `docs/benchmarks-policy.part.md`.

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use vouch_query::{CompiledBundle, Format, Outcome, Request, SourceBundle, compile, evaluate};

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

criterion_group!(benches, bench_policy);
criterion_main!(benches);
