//! Property: every decision the policy layer records replays to the identical evaluation.
//!
//! Each case starts a fresh ledger, publishes the four shipped packs, records the exceptions
//! their sample requests carry, and then decides a few hundred requests generated from the
//! packs' samples: environment, risk, approvals, time, evidence, checks, artifact and subject
//! are varied, and the client's own context is dropped, so the context comes from what the
//! case recorded before (promotions by earlier ALLOW decisions, the exceptions). Every
//! decision is then replayed from the ledger and must match, and its stored record must read
//! back to the same canonical bytes.
//!
//! The ledger runs without fsync (durability `none`): these are tests of the records, not of
//! durability. The case count is bounded so the suite runs in about twenty seconds.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};
use vouch_query::governance::ExceptionError;
use vouch_query::{BundleRef, DecideOptions, DecisionRecord, DecisionRef, Format, Governance};
use vouch_storage::Durability;

use support::{Pack, fixture_with, packs};

/// Decisions per case.
const DECISIONS: usize = 400;
/// Cases.
const CASES: u32 = 6;

const PEOPLE: [&str; 8] = [
    "alice",
    "bob",
    "sam",
    "erin",
    "rita",
    "rm-rosa",
    "dev-ann",
    "ci-builder",
];
const ROLES: [&str; 8] = [
    "Security",
    "EngineeringManager",
    "ReleaseManager",
    "Developer",
    "QA",
    "DevOpsLead",
    "CISO",
    "ProductOwner",
];
const ENVIRONMENTS: [&str; 6] = ["dev", "development", "staging", "production", "prod", "qa"];
const RISKS: [&str; 5] = ["low", "medium", "high", "critical", "extreme"];
const DIGESTS: [&str; 3] = [
    "sha256:aa11bb22cc33dd44ee55ff66aa77bb88cc99dd00ee11ff22aa33bb44cc55dd66",
    "sha256:5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f",
    "sha256:0e0e",
];

/// Builds one request from a sample and a handful of random bytes.
fn generate(packs: &[Pack], op: &[u8; 16]) -> (usize, String) {
    let pack = usize::from(op[0]) % packs.len();
    let samples = &packs[pack].requests;
    let (_, text) = &samples[usize::from(op[1]) % samples.len()];
    let mut r: Value = serde_json::from_str(text).unwrap();
    let obj = r.as_object_mut().unwrap();
    obj.remove("context");
    if op[2].is_multiple_of(4) {
        obj.insert(
            "environment".into(),
            json!(ENVIRONMENTS[usize::from(op[3]) % ENVIRONMENTS.len()]),
        );
    }
    match op[4] % 5 {
        0 => {
            obj.remove("risk");
        }
        1 => {
            obj.insert(
                "risk".into(),
                json!(RISKS[usize::from(op[5]) % RISKS.len()]),
            );
        }
        _ => {}
    }
    let approvals = obj.entry("approvals").or_insert_with(|| json!([]));
    let list = approvals.as_array_mut().unwrap();
    match op[6] % 4 {
        0 if !list.is_empty() => {
            let i = usize::from(op[7]) % list.len();
            list.remove(i);
        }
        1 if list.len() < 60 => {
            let roles: Vec<&str> = ROLES
                .iter()
                .enumerate()
                .filter(|(i, _)| op[8] & (1 << i) != 0)
                .map(|(_, r)| *r)
                .collect();
            let mut approval = json!({
                "approver": PEOPLE[usize::from(op[9]) % PEOPLE.len()],
                "roles": roles,
                "kind": if op[10].is_multiple_of(2) { "pr" } else { "production" },
                "at": format!("2025-06-0{}T0{}:00:00Z", 1 + op[11] % 4, op[11] % 10),
            });
            if !op[10].is_multiple_of(3) {
                approval["rationale"] = json!("looked at it");
            }
            list.push(approval);
        }
        _ => {}
    }
    if op[12].is_multiple_of(3) {
        // Shift `now` by up to two days either way, by the hour.
        let now: jiff::Timestamp = obj["now"].as_str().unwrap().parse().unwrap();
        let hours = i64::from(op[13] % 97) - 48;
        obj.insert(
            "now".into(),
            json!((now + jiff::SignedDuration::from_hours(hours)).to_string()),
        );
    }
    if op[14].is_multiple_of(4)
        && let Some(Value::Object(evidence)) = obj.get_mut("evidence")
        && !evidence.is_empty()
    {
        let key = evidence
            .keys()
            .nth(usize::from(op[15]) % evidence.len())
            .unwrap()
            .clone();
        evidence.remove(&key);
    }
    if op[14] % 4 == 1
        && let Some(Value::Object(checks)) = obj.get_mut("checks")
        && !checks.is_empty()
    {
        let key = checks
            .keys()
            .nth(usize::from(op[15]) % checks.len())
            .unwrap()
            .clone();
        let status = ["passed", "failed", "pending"][usize::from(op[15]) % 3];
        checks.insert(key, json!({"status": status}));
    }
    if op[14] % 4 == 2
        && let Some(Value::Object(artifact)) = obj.get_mut("artifact")
    {
        artifact.insert(
            "digest".into(),
            json!(DIGESTS[usize::from(op[15]) % DIGESTS.len()]),
        );
    }
    if op[3].is_multiple_of(8) {
        obj.insert("subject".into(), json!(format!("GEN-{}", op[15] % 16)));
    }
    (pack, r.to_string())
}

/// Records the exceptions the packs' samples carry (the first record of each id).
fn record_sample_exceptions(gov: &Governance, packs: &[Pack]) -> u64 {
    let mut n = 0;
    for p in packs {
        for (_, text) in &p.requests {
            let r: Value = serde_json::from_str(text).unwrap();
            let Some(list) = r["context"]["exceptions"].as_array() else {
                continue;
            };
            for e in list {
                match gov.record_exception(e.to_string().as_bytes(), false) {
                    Ok(_) => n += 1,
                    Err(ExceptionError::Conflict { .. }) => {}
                    Err(e) => panic!("recording a sample exception: {e}"),
                }
            }
        }
    }
    n
}

#[test]
fn every_recorded_decision_replays_identically() {
    let packs = packs();
    let decided = AtomicU64::new(0);
    let with_promotions = AtomicU64::new(0);
    let with_exceptions = AtomicU64::new(0);
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&vec(any::<[u8; 16]>(), DECISIONS), |ops| {
            let f = fixture_with(Durability::NoneUnsafe);
            let bundles: Vec<BundleRef> = packs
                .iter()
                .map(|p| {
                    let published = f.gov.publish(&p.bundle, Format::Yaml, false).unwrap();
                    BundleRef::Index(published.bundle.index)
                })
                .collect();
            prop_assert!(record_sample_exceptions(&f.gov, &packs) > 0);
            let mut ids = Vec::with_capacity(ops.len());
            for op in &ops {
                let (pack, request) = generate(&packs, op);
                let d = f
                    .gov
                    .decide(
                        &bundles[pack],
                        request.as_bytes(),
                        &DecideOptions::default(),
                    )
                    .map_err(|e| TestCaseError::fail(format!("{request}: {e}")))?;
                let context = d.record.request.context();
                if !context.promotions.is_empty() {
                    with_promotions.fetch_add(1, Ordering::Relaxed);
                }
                if !context.exceptions.is_empty() {
                    with_exceptions.fetch_add(1, Ordering::Relaxed);
                }
                ids.push(d.id);
            }
            for id in &ids {
                let report = f.gov.replay(&DecisionRef::Id(id.clone())).unwrap();
                prop_assert!(report.matches(), "{id}: {:?}", report.differences);
                let read = f.gov.decision(&DecisionRef::Id(id.clone()), false).unwrap();
                let back = DecisionRecord::from_json(&read.record_json).unwrap();
                prop_assert_eq!(&back.canonical_json(), &read.record_json);
                prop_assert_eq!(&back.id(), id);
            }
            decided.fetch_add(ids.len() as u64, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    let decided = decided.into_inner();
    assert_eq!(decided, u64::from(CASES) * DECISIONS as u64);
    // The generator reaches the ledger-derived context, or the property would be weak.
    assert!(
        with_promotions.into_inner() > 0,
        "no decision saw a promotion"
    );
    assert!(
        with_exceptions.into_inner() > 0,
        "no decision saw an exception"
    );
}
