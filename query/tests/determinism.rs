//! Property tests: evaluation is deterministic.
//!
//! For generated requests against every shipped pack: evaluating twice gives the same
//! canonical bytes; so does evaluating against the bundle re-parsed and re-compiled (from YAML
//! and from JSON with shuffled keys, which must also hash the same); and so does evaluating the
//! request written with its object keys in any order. Decision records replay identically.

use std::fs;
use std::path::Path;

use proptest::prelude::*;
use serde_json::{Value, json};
use vouch_query::{
    CompiledBundle, DecisionRecord, Format, Replay, Request, SourceBundle, compile, evaluate,
};

const PACKS: [&str; 4] = [
    "high-risk-production",
    "saas-release",
    "release-management",
    "supply-chain-gate",
];

fn bundle_text(pack: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/policies")
        .join(pack)
        .join("bundle.yaml");
    fs::read_to_string(path).expect("pack bundle")
}

fn compiled(pack: &str) -> CompiledBundle {
    compile(&SourceBundle::parse(&bundle_text(pack), Format::Yaml).expect("parses"))
        .expect("compiles")
}

/// Writes `v` as JSON with the members of every object in an order derived from `seed`.
fn write_shuffled(v: &Value, seed: &mut u64, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            // A small deterministic shuffle (Fisher-Yates driven by an LCG on `seed`).
            for i in (1..members.len()).rev() {
                *seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let j = usize::try_from((*seed >> 33) % (i as u64 + 1)).unwrap_or(0);
                members.swap(i, j);
            }
            out.push('{');
            for (i, (k, val)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push_str(": ");
                write_shuffled(val, seed, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_shuffled(item, seed, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn shuffled(v: &Value, seed: u64) -> String {
    let mut seed = seed;
    let mut out = String::new();
    write_shuffled(v, &mut seed, &mut out);
    out
}

const PEOPLE: [&str; 6] = ["alice", "bob", "carol", "dave", "erin", "rita"];
const ROLES: [&str; 8] = [
    "Security",
    "EngineeringManager",
    "ReleaseManager",
    "QALead",
    "ProductOwner",
    "CISO",
    "DevOpsLead",
    "codeowner:checkout",
];
const EVIDENCE: [&str; 10] = [
    "ticket",
    "rollback_plan",
    "sbom",
    "vex",
    "provenance",
    "change_ticket",
    "critical_cves",
    "open_security_vulnerabilities",
    "compliance_confirmation",
    "release_notes",
];
const CHECKS: [&str; 6] = [
    "lint",
    "unit-test",
    "ci-tests",
    "sast",
    "dast",
    "signature-verification",
];

fn approval() -> impl Strategy<Value = Value> {
    (
        0..PEOPLE.len(),
        proptest::collection::vec(0..ROLES.len(), 0..3),
        any::<bool>(),
        0i64..200_000,
        any::<bool>(),
    )
        .prop_map(|(who, roles, production, offset, rationale)| {
            let roles: Vec<&str> = roles.into_iter().map(|r| ROLES[r]).collect();
            let mut a = json!({
                "approver": PEOPLE[who],
                "roles": roles,
                "kind": if production { "production" } else { "pr" },
                "at": jiff::Timestamp::from_second(1_748_900_000 + offset).expect("time").to_string(),
            });
            if rationale {
                a["rationale"] = json!("looked at it");
            }
            a
        })
}

fn request() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["dev", "staging", "production", "development", "prod"]),
        prop::sample::select(vec!["low", "medium", "high", "critical"]),
        prop::sample::select(vec!["major", "minor", "patch"]),
        proptest::collection::vec(approval(), 0..5),
        proptest::collection::btree_map(0..EVIDENCE.len(), 0i64..3, 0..8),
        proptest::collection::btree_map(0..CHECKS.len(), 0usize..4, 0..6),
        0i64..2_000_000,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(env, risk, tier, approvals, evidence, checks, now, with_artifact, emergency)| {
            let evidence: serde_json::Map<String, Value> = evidence
                .into_iter()
                .map(|(k, v)| (EVIDENCE[k].to_owned(), if v == 2 { json!("ref") } else { json!(v) }))
                .collect();
            let checks: serde_json::Map<String, Value> = checks
                .into_iter()
                .map(|(k, s)| {
                    let status = ["passed", "failed", "na", "pending"][s];
                    (CHECKS[k].to_owned(), json!({"status": status, "rationale": "n/a here"}))
                })
                .collect();
            let mut r = json!({
                "subject": "CHG-1",
                "environment": env,
                "transition": "staging->production",
                "repository": "acme/checkout",
                "branch": "release/1.2",
                "service": "checkout",
                "risk": risk,
                "tier": tier,
                "change_type": "code",
                "author": "alice",
                "requester": "rita",
                "releaser": "bot",
                "approvals": approvals,
                "evidence": evidence,
                "checks": checks,
                "labels": {"source_branch": "feature/ABC-1-x", "change_class": "bug-fix"},
                "now": jiff::Timestamp::from_second(1_748_900_000 + now).expect("time").to_string(),
                "context": {"promotions": [
                    {"environment": "dev", "version": "1.2.0", "commit": "abc", "digest": "sha256:01", "at": "2025-06-01T00:00:00Z"},
                    {"environment": "staging", "version": "1.2.0", "commit": "abc", "digest": "sha256:01", "at": "2025-06-02T00:00:00Z"}
                ]}
            });
            if with_artifact {
                r["artifact"] = json!({"version": "1.2.0", "commit": "abc", "digest": "sha256:01"});
            }
            if emergency {
                r["emergency"] = json!({"id": "E-1", "reason": "outage", "approver": "erin",
                    "approver_roles": ["IncidentCommander"], "scope": "checkout", "rollback_plan": "revert",
                    "follow_ups": ["review"]});
            }
            r
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn evaluation_is_deterministic(request_json in request(), seed in any::<u64>(), pack in 0..PACKS.len()) {
        let bundle = compiled(PACKS[pack]);
        let plain = Request::from_json(request_json.to_string().as_bytes()).expect("request parses");
        let first = evaluate(&bundle, &plain).canonical_json();
        prop_assert_eq!(&first, &evaluate(&bundle, &plain).canonical_json());

        // Key order of the input does not matter.
        let reordered = Request::from_json(shuffled(&request_json, seed).as_bytes()).expect("reordered parses");
        prop_assert_eq!(&plain.canonical_json(), &reordered.canonical_json());
        prop_assert_eq!(&first, &evaluate(&bundle, &reordered).canonical_json());

        // Re-parsing and re-compiling the bundle changes nothing.
        let again = compiled(PACKS[pack]);
        prop_assert_eq!(bundle.hash(), again.hash());
        prop_assert_eq!(&first, &evaluate(&again, &plain).canonical_json());

        // The snapshot replays, and reads back identically.
        let record = DecisionRecord::decide(&bundle, plain);
        prop_assert_eq!(record.replay(&bundle), Replay::Identical);
        let back = DecisionRecord::from_json(&record.canonical_json()).expect("record reads back");
        prop_assert_eq!(back.canonical_json(), record.canonical_json());
    }

    #[test]
    fn bundle_hash_ignores_format_and_key_order(seed in any::<u64>(), pack in 0..PACKS.len()) {
        let text = bundle_text(PACKS[pack]);
        let yaml = compile(&SourceBundle::parse(&text, Format::Yaml).expect("parses")).expect("compiles");
        let tree: Value = serde_saphyr::from_str(&text).expect("YAML as JSON value");
        let json_text = shuffled(&tree, seed);
        let json = compile(&SourceBundle::parse(&json_text, Format::Json).expect("JSON parses")).expect("compiles");
        prop_assert_eq!(yaml.hash(), json.hash());
        prop_assert_eq!(yaml.canonical_bytes(), json.canonical_bytes());
    }
}

#[test]
fn formatting_and_comments_do_not_change_the_hash() {
    let a = "version: 1\nname: t\nroles: [QA, Security]\npolicies:\n  - id: p\n    when: {risk: [high, critical]}\n    require:\n      approvals: {min: 1, roles: {Security: 1}}\n      checks: [lint, test]\n";
    let b = "# a comment\nname: t\nversion: 1\nroles:\n  - Security\n  - QA\nsettings: {strict: true}\npolicies:\n  - require:\n      checks:\n        - test\n        - {name: lint, allow_na: false}\n      approvals:\n        roles: {Security: 1}\n    when:\n      risk: [critical, high]\n    id: p\n";
    let ha = compile(&SourceBundle::parse(a, Format::Yaml).unwrap()).unwrap();
    let hb = compile(&SourceBundle::parse(b, Format::Yaml).unwrap()).unwrap();
    assert_eq!(ha.hash(), hb.hash());
    let c = a.replace("min: 1", "min: 2");
    let hc = compile(&SourceBundle::parse(&c, Format::Yaml).unwrap()).unwrap();
    assert_ne!(ha.hash(), hc.hash(), "a change of meaning changes the hash");
}
