//! Proof packs on a real ledger: export, offline verification, and systematic tampering.
//!
//! Every leaf value of an exported pack's JSON is changed in turn (every character of every
//! string, every byte of every byte string, every number and boolean), and each change must
//! make verification fail at the check that covers that member, naming it. Members are also
//! removed and added, entries spliced in from other decisions and other ledgers, and entries
//! forged around the policy layer.

// Short names (`s` scenario, `f` fixture or failure, `p` pack, `e` error) keep the cases
// readable.
#![allow(clippy::many_single_char_names)]

mod support;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use vouch_ledger_core::entry::{EntryDraft, EntryKind};
use vouch_ledger_core::note::{Signer, Verifiers};
use vouch_ledger_core::{EntryIndex, HashAlg, TreeSize};
use vouch_query::governance::{DecisionEntry, ExportPackError, record};
use vouch_query::pack::{
    CheckFailure, MAX_PACK_BYTES, PackCheck, PackFormatError, ProofPack, VerifiedPack, verify,
};
use vouch_query::{BundleRef, DecideOptions, DecisionRef, Format, Outcome, OverrideStatus};

use support::{Fixture, fixture, pack};

const HRP: &str = "high-risk-production";
const HRP_NAME: &str = "high-risk-production-release";

fn exception(id: &str) -> String {
    json!({
        "id": id, "policy": "high-risk-production", "requirements": ["approvals"],
        "kind": "temporary", "owner_role": "EngineeringManager",
        "scope": {"repository": ["acme/payments"]}, "expires_at": "2025-06-04T12:00:00Z",
        "remediation_plan": "second reviewer back on Monday", "author": "alice",
        "approvers": [{"approver": "erin", "roles": ["EngineeringManager"]}]
    })
    .to_string()
}

fn override_json(decision: &str, key: &str, approver: &str) -> String {
    json!({
        "decision": decision, "requester": "rita", "approver": approver,
        "approver_roles": ["ReleaseManager"], "justification": "incident INC-88",
        "expires_at": "2025-06-03T20:00:00Z", "idempotency_key": key,
        "now": "2025-06-03T10:05:00Z"
    })
    .to_string()
}

/// A ledger with a bundle, two exceptions, a blocked decision that saw them, a granted and a
/// denied override of it, a checkpoint, and later entries (another decision with an
/// override, records) and a later checkpoint.
struct Scenario {
    f: Fixture,
    decision: String,
    decision_index: EntryIndex,
    /// The size of the checkpoint signed right after the overrides.
    first_checkpoint: TreeSize,
}

fn scenario() -> Scenario {
    let f = fixture();
    let p = pack(HRP);
    f.gov.publish(&p.bundle, Format::Yaml, false).unwrap();
    f.gov
        .record_exception(exception("EXC-2").as_bytes(), false)
        .unwrap();
    f.gov
        .record_exception(exception("EXC-1").as_bytes(), false)
        .unwrap();
    let d = f
        .gov
        .decide(
            &BundleRef::Name(HRP_NAME.into()),
            p.request("block-one-approval.json").as_bytes(),
            &DecideOptions::default(),
        )
        .unwrap();
    assert_eq!(d.record.evaluation.outcome, Outcome::Block);
    assert_eq!(d.record.request.context().exceptions.len(), 2);
    let granted = f
        .gov
        .record_override(override_json(&d.id, "ovr-1", "rm-rosa").as_bytes(), false)
        .unwrap();
    assert_eq!(granted.entry.outcome.status, OverrideStatus::Granted);
    let denied = f
        .gov
        .record_override(override_json(&d.id, "ovr-2", "rita").as_bytes(), false)
        .unwrap();
    assert_eq!(denied.entry.outcome.status, OverrideStatus::Denied);
    let first = f.ledger.checkpoint_now().unwrap().size();
    // Later entries: another decision and records, and a later checkpoint.
    let later = f
        .gov
        .decide(
            &BundleRef::Name(HRP_NAME.into()),
            p.request("allow-low-risk.json").as_bytes(),
            &DecideOptions::default(),
        )
        .unwrap();
    // Overriding an ALLOW is denied, and recorded.
    f.gov
        .record_override(
            override_json(&later.id, "ovr-3", "rm-rosa").as_bytes(),
            false,
        )
        .unwrap();
    for i in 0..5 {
        f.ledger
            .append(
                EntryDraft::new(
                    EntryKind::Record,
                    None,
                    "text/plain".into(),
                    format!("record {i}").into_bytes(),
                )
                .unwrap(),
            )
            .unwrap();
    }
    f.ledger.checkpoint_now().unwrap();
    Scenario {
        f,
        decision: d.id,
        decision_index: d.index,
        first_checkpoint: first,
    }
}

fn trusted(f: &Fixture) -> Verifiers {
    f.ledger.verifiers().clone()
}

/// The pack of the scenario's decision anchored at its first checkpoint, so that the
/// consistency proof to the latest one is not empty.
fn anchored(s: &Scenario) -> ProofPack {
    s.f.gov
        .export_pack(
            &DecisionRef::Id(s.decision.clone()),
            Some(s.first_checkpoint),
        )
        .unwrap()
        .pack
}

#[track_caller]
fn verified(pack: &ProofPack, keys: &Verifiers) -> VerifiedPack {
    verify(pack, keys, None).unwrap_or_else(|e| panic!("the pack does not verify: {e}"))
}

#[track_caller]
fn failure(pack: &ProofPack, keys: &Verifiers) -> CheckFailure {
    match verify(pack, keys, None) {
        Ok(_) => panic!("a tampered pack verified"),
        Err(e) => e,
    }
}

#[test]
fn an_exported_pack_verifies_and_says_what_it_proves() {
    let s = scenario();
    let keys = trusted(&s.f);
    // Anchored at the latest checkpoint (the default): an empty consistency proof.
    let exported =
        s.f.gov
            .export_pack(&DecisionRef::Id(s.decision.clone()), None)
            .unwrap();
    let p = &exported.pack;
    assert_eq!(p.checkpoint, p.latest_checkpoint);
    assert!(p.consistency_path.is_empty());
    assert_eq!(p.decision.index, s.decision_index);
    assert_eq!(p.bundle.index, EntryIndex(0));
    let exception_indexes: Vec<u64> = p.exceptions.iter().map(|e| e.index.0).collect();
    assert_eq!(exception_indexes, [1, 2]);
    let override_indexes: Vec<u64> = p.overrides.iter().map(|e| e.index.0).collect();
    assert_eq!(override_indexes, [4, 5]);
    assert_eq!(
        p.verifier_keys,
        [s.f.ledger.verifiers().iter().next().unwrap().clone()]
    );

    let v = verified(p, &keys);
    assert_eq!(v.decision_id, s.decision);
    assert_eq!(v.record.evaluation.outcome, Outcome::Block);
    assert_eq!(v.bundle_name, HRP_NAME);
    let ids: Vec<&str> = v.exceptions.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(
        ids,
        ["EXC-2", "EXC-1"],
        "sorted by entry index: EXC-2 was first"
    );
    let statuses: Vec<OverrideStatus> = v.overrides.iter().map(|o| o.outcome.status).collect();
    assert_eq!(statuses, [OverrideStatus::Granted, OverrideStatus::Denied]);
    let names: Vec<&str> = v.checks.iter().map(|c| c.check.name()).collect();
    assert_eq!(
        names,
        [
            "checkpoint",
            "latest-checkpoint",
            "origin",
            "verifier-keys",
            "consistency",
            "leaf",
            "inclusion",
            "leaf",
            "inclusion",
            "leaf",
            "inclusion",
            "leaf",
            "inclusion",
            "leaf",
            "inclusion",
            "leaf",
            "inclusion",
            "decision-record",
            "request",
            "bundle",
            "exception",
            "exception",
            "override",
            "override",
            "replay",
        ]
    );
    assert_eq!(exported.verified.decision_id, s.decision);

    // Anchored at an earlier checkpoint: a real consistency proof; the same verdict.
    let p = anchored(&s);
    assert!(!p.consistency_path.is_empty());
    let v = verified(&p, &keys);
    assert_eq!(v.checkpoint.checkpoint.size, s.first_checkpoint);
    assert_eq!(v.latest.checkpoint.size, s.f.ledger.size());
    assert!(v.checks.iter().any(|c| c.check == PackCheck::Consistency
        && c.detail.starts_with(&format!(
            "the tree of size {} is a prefix of the tree of size {}",
            s.first_checkpoint,
            s.f.ledger.size()
        ))));

    // By index, the same pack.
    let by_index =
        s.f.gov
            .export_pack(
                &DecisionRef::Index(s.decision_index),
                Some(s.first_checkpoint),
            )
            .unwrap()
            .pack;
    assert_eq!(by_index, p);
}

#[test]
fn the_document_round_trips_in_its_documented_layout() {
    let s = scenario();
    let p = anchored(&s);
    let text = p.to_json();
    assert!(text.starts_with("{\n  \"format\": \"vouch.proof-pack.v1\",\n  \"origin\": \"test.example/policy\",\n  \"hash\": \"blake3\",\n  \"decision_id\": \"sha256:"));
    assert!(text.contains("\n  \"request\": {\"approvals\":[{"));
    assert!(text.contains("\n  \"decision\": {\n    \"index\": 3,\n    \"leaf_hash\": \""));
    assert!(text.contains("\n  \"exceptions\": [\n    {\n      \"index\": 1,\n"));
    assert!(text.contains("\n      \"inclusion_path\": [\n        \""));
    assert!(text.ends_with("\"\n  ]\n}\n"));
    let parsed = ProofPack::parse(text.as_bytes()).unwrap();
    assert_eq!(parsed, p);
    assert_eq!(parsed.to_json(), text);
    // Any whitespace and member order are read.
    let value: Value = serde_json::from_str(&text).unwrap();
    let compact = serde_json::to_vec(&value).unwrap();
    assert_eq!(ProofPack::parse(&compact).unwrap(), p);
}

// ---------------------------------------------------------------------------------------
// Systematic tampering
// ---------------------------------------------------------------------------------------

/// What a change of the member at `path` must fail with: one of `checks` (about `subject`
/// when given), or a format error naming a member under `field`.
struct Expected {
    checks: &'static [PackCheck],
    subject: Option<String>,
    field: String,
}

fn field_path(path: &[String]) -> String {
    let mut out = String::new();
    for segment in path {
        if segment.starts_with('[') {
            out.push_str(segment);
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    out
}

fn expected(path: &[String]) -> Expected {
    let top = path[0].as_str();
    let field = field_path(path);
    let entry_subject = || match top {
        "decision" | "bundle" => top.to_owned(),
        _ => format!("{top}{}", path[1]),
    };
    let (checks, subject): (&'static [PackCheck], Option<String>) = match top {
        "format" | "hash" => (&[], None),
        "origin" => (&[PackCheck::Origin], None),
        "decision_id" => (&[PackCheck::DecisionRecord], Some("decision".into())),
        "request" => (&[PackCheck::Request], None),
        "decision" | "bundle" | "exceptions" | "overrides" => {
            let member = path.iter().find(|s| !s.starts_with('[') && *s != top);
            match member.map(String::as_str) {
                Some("inclusion_path") => (&[PackCheck::Inclusion], Some(entry_subject())),
                _ => (&[PackCheck::Leaf], Some(entry_subject())),
            }
        }
        "checkpoint" => (&[PackCheck::Checkpoint], None),
        "latest_checkpoint" => (&[PackCheck::LatestCheckpoint], None),
        "consistency_path" => (&[PackCheck::Consistency], None),
        "verifier_keys" => (&[PackCheck::VerifierKeys], None),
        other => panic!("no expectation for member {other}"),
    };
    Expected {
        checks,
        subject,
        field,
    }
}

/// Parses and verifies `doc`, and checks that it failed as `expect` says.
#[track_caller]
fn assert_rejected(doc: &Value, keys: &Verifiers, expect: &Expected, what: &str) {
    let bytes = serde_json::to_vec(doc).unwrap();
    match ProofPack::parse(&bytes) {
        Err(e) => {
            let field = e.field().unwrap_or_else(|| panic!("{what}: {e}"));
            // A changed index may break the order of a list, reported at that list's item.
            let top = expect.field.split(['.', '[']).next().unwrap();
            assert!(
                field.starts_with(&expect.field) || field.starts_with(top),
                "{what}: format error about {field}, expected {}: {e}",
                expect.field
            );
        }
        Ok(pack) => match verify(&pack, keys, None) {
            Ok(_) => panic!("{what}: the tampered pack verified"),
            Err(e) => {
                assert!(
                    expect.checks.contains(&e.check),
                    "{what}: failed at {e}, expected one of {:?}",
                    expect.checks
                );
                if let Some(subject) = &expect.subject {
                    assert_eq!(e.subject.as_deref(), Some(subject.as_str()), "{what}: {e}");
                }
                assert!(!e.reason.is_empty());
            }
        },
    }
}

/// Every leaf of `value` with its path.
fn leaves(value: &Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, Value)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                path.push(k.clone());
                leaves(v, path, out);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                path.push(format!("[{i}]"));
                leaves(v, path, out);
                path.pop();
            }
        }
        leaf => out.push((path.clone(), leaf.clone())),
    }
}

fn set(doc: &mut Value, path: &[String], new: Value) {
    let mut at = doc;
    for segment in path {
        at = match segment.strip_prefix('[') {
            Some(i) => &mut at[i.trim_end_matches(']').parse::<usize>().unwrap()],
            None => &mut at[segment.as_str()],
        };
    }
    *at = new;
}

/// Every change of one leaf value: each character of a string replaced (each byte of a
/// base64 byte string flipped), a number incremented, a boolean negated.
fn changes(path: &[String], value: &Value) -> Vec<Value> {
    match value {
        Value::String(s) if path.last().is_some_and(|l| l == "leaf_bytes") => {
            let bytes = BASE64.decode(s).unwrap();
            (0..bytes.len())
                .map(|i| {
                    let mut b = bytes.clone();
                    b[i] ^= 0x01;
                    Value::String(BASE64.encode(&b))
                })
                .collect()
        }
        Value::String(s) => {
            let chars: Vec<char> = s.chars().collect();
            (0..chars.len())
                .map(|i| {
                    let mut c = chars.clone();
                    c[i] = if c[i] == 'a' { 'b' } else { 'a' };
                    Value::String(c.into_iter().collect())
                })
                .collect()
        }
        Value::Number(n) => vec![
            json!(n.as_u64().map_or(0, |n| n + 1)),
            json!(-1),
            json!(1.5),
        ],
        Value::Bool(b) => vec![json!(!b)],
        Value::Null => vec![json!(0)],
        _ => unreachable!(),
    }
}

#[test]
fn changing_any_leaf_value_fails_verification_at_the_check_that_covers_it() {
    let s = scenario();
    let keys = trusted(&s.f);
    let doc: Value = serde_json::from_str(&anchored(&s).to_json()).unwrap();
    let mut all = Vec::new();
    leaves(&doc, &mut Vec::new(), &mut all);
    let mut tried = 0;
    let mut members = std::collections::BTreeSet::new();
    for (path, value) in &all {
        members.insert(path[0].clone());
        let expect = expected(path);
        for new in changes(path, value) {
            let mut tampered = doc.clone();
            set(&mut tampered, path, new.clone());
            assert_rejected(
                &tampered,
                &keys,
                &expect,
                &format!("{} = {new}", field_path(path)),
            );
            tried += 1;
        }
    }
    // Every top-level member was reached, and the walk was thorough.
    let all_members = [
        "format",
        "origin",
        "hash",
        "decision_id",
        "request",
        "decision",
        "bundle",
        "exceptions",
        "overrides",
        "checkpoint",
        "latest_checkpoint",
        "consistency_path",
        "verifier_keys",
    ];
    assert_eq!(members.len(), all_members.len(), "{members:?}");
    assert!(tried > 5_000, "{tried} changes");
}

#[test]
fn removing_or_adding_any_member_is_a_format_error_naming_it() {
    let s = scenario();
    let doc: Value = serde_json::from_str(&anchored(&s).to_json()).unwrap();
    let objects: Vec<(String, Vec<String>)> = vec![
        (String::new(), vec![]),
        ("decision.".into(), vec!["decision".into()]),
        ("bundle.".into(), vec!["bundle".into()]),
        (
            "exceptions[1].".into(),
            vec!["exceptions".into(), "[1]".into()],
        ),
        (
            "overrides[0].".into(),
            vec!["overrides".into(), "[0]".into()],
        ),
    ];
    for (prefix, path) in objects {
        let mut object = &doc;
        for segment in &path {
            object = match segment.strip_prefix('[') {
                Some(i) => &object[i.trim_end_matches(']').parse::<usize>().unwrap()],
                None => &object[segment.as_str()],
            };
        }
        for member in object.as_object().unwrap().keys() {
            let mut tampered = doc.clone();
            let mut at = &mut tampered;
            for segment in &path {
                at = match segment.strip_prefix('[') {
                    Some(i) => &mut at[i.trim_end_matches(']').parse::<usize>().unwrap()],
                    None => &mut at[segment.as_str()],
                };
            }
            at.as_object_mut().unwrap().remove(member);
            let e = ProofPack::parse(&serde_json::to_vec(&tampered).unwrap()).unwrap_err();
            assert_eq!(e, PackFormatError::Missing(format!("{prefix}{member}")));
            assert_eq!(e.to_string(), format!("field {prefix}{member}: missing"));
        }
        let mut tampered = doc.clone();
        let mut at = &mut tampered;
        for segment in &path {
            at = match segment.strip_prefix('[') {
                Some(i) => &mut at[i.trim_end_matches(']').parse::<usize>().unwrap()],
                None => &mut at[segment.as_str()],
            };
        }
        at["note"] = json!("trust me");
        let e = ProofPack::parse(&serde_json::to_vec(&tampered).unwrap()).unwrap_err();
        assert_eq!(e, PackFormatError::Unknown(format!("{prefix}note")));
        assert_eq!(
            e.to_string(),
            format!("field {prefix}note: unknown in vouch.proof-pack.v1")
        );
    }
}

#[test]
fn malformed_documents_are_refused_with_the_member_named() {
    let s = scenario();
    let text = anchored(&s).to_json();
    let parse = |t: &str| ProofPack::parse(t.as_bytes()).unwrap_err();
    let cases: Vec<(String, &str)> = vec![
        ("not json".into(), "not valid JSON"),
        ("[1, 2]".into(), "the document is not a JSON object"),
        ("{}".into(), "field format: missing"),
        (
            "{\"format\": \"vouch.proof-pack.v2\"}".into(),
            "field format: \"vouch.proof-pack.v2\" is not \"vouch.proof-pack.v1\"",
        ),
        (
            "{\"format\": 1}".into(),
            "field format: expected a string, found a number",
        ),
        (
            text.replacen(
                "\"hash\": \"blake3\",",
                "\"hash\": \"blake3\", \"hash\": \"blake3\",",
                1,
            ),
            "member \"hash\" appears more than once",
        ),
        (
            text.replacen("\"index\": 3,", "\"index\": \"3\",", 1),
            "field decision.index: expected an integer, found a string",
        ),
        (
            text.replacen("\"index\": 3,", "\"index\": 3.0,", 1),
            "field decision.index: 3.0 is not an integer from 0 to 18446744073709551615",
        ),
        (
            text.replacen("\"exceptions\": [", "\"exceptions\": {\"x\": [", 1),
            "not valid JSON",
        ),
        (
            text.replacen("\"request\": {", "\"request\": [{", 1)
                .replacen("},\n  \"decision\"", "}],\n  \"decision\"", 1),
            "field request: expected an object, found an array",
        ),
        (
            text.replacen("\"leaf_hash\": \"", "\"leaf_hash\": \"AB", 1),
            "field decision.leaf_hash: ",
        ),
        (
            text.replacen("\"leaf_bytes\": \"", "\"leaf_bytes\": \"!", 1),
            "field decision.leaf_bytes: not canonical padded base64",
        ),
        (
            text.replacen(
                "\"verifier_keys\": [\n    \"",
                "\"verifier_keys\": [\n    \"x",
                1,
            ),
            "field verifier_keys[0]: \"x",
        ),
        (
            text.replacen("\"hash\": \"blake3\"", "\"hash\": \"md5\"", 1),
            "field hash: \"md5\" is not \"blake3\" or \"sha256\"",
        ),
        (
            text.replacen("\"decision_id\": \"sha256:", "\"decision_id\": \"sha1:", 1),
            "field decision_id: ",
        ),
    ];
    for (doc, message) in cases {
        let e = parse(&doc);
        assert!(
            e.to_string().contains(message),
            "{e} does not contain {message:?}"
        );
    }
    // Lists: overrides out of order, too many keys.
    let mut doc: Value = serde_json::from_str(&text).unwrap();
    let overrides = doc["overrides"].as_array_mut().unwrap();
    overrides.swap(0, 1);
    let e = ProofPack::parse(&serde_json::to_vec(&doc).unwrap()).unwrap_err();
    assert_eq!(e.field(), Some("overrides[1].index"));
    assert!(e.to_string().contains("sorted by index"), "{e}");
    let mut doc: Value = serde_json::from_str(&text).unwrap();
    let key = doc["verifier_keys"][0].clone();
    doc["verifier_keys"] = json!([key, key]);
    let e = ProofPack::parse(&serde_json::to_vec(&doc).unwrap()).unwrap_err();
    assert_eq!(e.field(), Some("verifier_keys[1]"));
    assert!(e.to_string().contains("listed more than once"), "{e}");
    doc["verifier_keys"] = json!([]);
    let e = ProofPack::parse(&serde_json::to_vec(&doc).unwrap()).unwrap_err();
    assert_eq!(e.field(), Some("verifier_keys"));
    // Oversized.
    let big = vec![b' '; MAX_PACK_BYTES + 1];
    assert_eq!(
        ProofPack::parse(&big).unwrap_err(),
        PackFormatError::TooLarge {
            size: MAX_PACK_BYTES + 1,
            max: MAX_PACK_BYTES
        }
    );
}

/// A `request` holding a floating-point number used to be read: `serde_json` reads
/// `2.2790121708605243e+274` as a float whose shortest text reads back as another float, so the
/// pack written back with `to_json` parsed to a different pack. Canonical JSON has only
/// integers, so such a request is refused, and integers still round trip.
#[test]
fn a_request_with_a_number_that_is_not_an_integer_is_refused() {
    let s = scenario();
    let text = anchored(&s).to_json();
    let with_request = |request: &str| {
        let start = text.find("\n  \"request\": ").unwrap() + "\n  \"request\": ".len();
        let end = start + text[start..].find(",\n  \"decision\"").unwrap();
        format!("{}{request}{}", &text[..start], &text[end..])
    };
    for number in [
        "2.2790121708605243e+274",
        "1.5",
        "1.0",
        "1e2",
        "-0",
        "18446744073709551616",
        "-9223372036854775809",
    ] {
        for request in [
            format!("{{\"n\": {number}}}"),
            format!("{{\"a\": [{{\"b\": [1, {number}]}}]}}"),
        ] {
            let e = ProofPack::parse(with_request(&request).as_bytes()).unwrap_err();
            assert_eq!(e.field(), Some("request"), "{request}: {e}");
            assert!(e.to_string().contains("not an integer"), "{e}");
        }
    }
    for request in [
        "{\"n\": 18446744073709551615}",
        "{\"n\": -9223372036854775808, \"m\": [0, -1]}",
    ] {
        let parsed = ProofPack::parse(with_request(request).as_bytes()).unwrap();
        let written = parsed.to_json();
        assert_eq!(ProofPack::parse(written.as_bytes()).unwrap(), parsed);
    }
}

/// Picks one entry of a pack.
type EntryOf = Box<dyn Fn(&mut ProofPack) -> &mut vouch_query::pack::PackEntry>;

#[test]
fn changed_bytes_with_a_matching_leaf_hash_fail_the_inclusion_proof() {
    let s = scenario();
    let keys = trusted(&s.f);
    let good = anchored(&s);
    let alg = good.hash;
    let mut entries: Vec<(&str, EntryOf)> = vec![
        ("decision", Box::new(|p| &mut p.decision)),
        ("bundle", Box::new(|p| &mut p.bundle)),
        ("exceptions[0]", Box::new(|p| &mut p.exceptions[0])),
        ("exceptions[1]", Box::new(|p| &mut p.exceptions[1])),
        ("overrides[0]", Box::new(|p| &mut p.overrides[0])),
        ("overrides[1]", Box::new(|p| &mut p.overrides[1])),
    ];
    for (subject, entry) in &mut entries {
        let len = entry(&mut good.clone()).leaf_bytes.len();
        // Bytes of the payload: the envelope stays valid, so only the proof can tell.
        for at in [len / 2, len * 3 / 4, len - 2, len - 1] {
            let mut p = good.clone();
            let e = entry(&mut p);
            e.leaf_bytes[at] ^= 0x80;
            e.leaf_hash = alg.leaf_hash(&e.leaf_bytes);
            let f = failure(&p, &keys);
            assert_eq!(
                (f.check, f.subject.as_deref()),
                (PackCheck::Inclusion, Some(*subject)),
                "byte {at}: {f}"
            );
            assert_eq!(f.reason, "the inclusion proof leads to a different root");
        }
    }
    // With the other hash function, the consistency proof is the first to fail, and with an
    // empty one every leaf hash is wrong.
    let mut p = good.clone();
    p.hash = HashAlg::Sha256;
    let f = failure(&p, &keys);
    assert_eq!(
        (f.check, f.subject.as_deref()),
        (PackCheck::Consistency, None)
    );
    p.latest_checkpoint = p.checkpoint.clone();
    p.consistency_path.clear();
    let f = failure(&p, &keys);
    assert_eq!(
        (f.check, f.subject.as_deref()),
        (PackCheck::Leaf, Some("decision"))
    );
    assert!(f.reason.contains("(sha256)"), "{f}");
}

#[test]
fn entries_spliced_from_other_decisions_are_caught() {
    let s = scenario();
    let keys = trusted(&s.f);
    let good = anchored(&s);
    // The later decision (made with the same bundle, no overrides) anchored at the latest
    // checkpoint, and the scenario's decision anchored there too: same checkpoint, so
    // entries move between them with valid proofs.
    let latest = s.f.ledger.latest_checkpoint().unwrap().size();
    let ours =
        s.f.gov
            .export_pack(&DecisionRef::Id(s.decision.clone()), Some(latest))
            .unwrap()
            .pack;
    let later =
        s.f.gov
            .export_pack(&DecisionRef::Index(EntryIndex(6)), Some(latest))
            .unwrap()
            .pack;
    verified(&ours, &keys);
    verified(&later, &keys);
    assert_eq!(later.overrides.len(), 1);

    // Another decision's entry with our id: the id is the record's hash.
    let mut p = ours.clone();
    p.decision = later.decision.clone();
    let f = failure(&p, &keys);
    assert_eq!(f.check, PackCheck::DecisionRecord, "{f}");
    assert!(f.reason.contains("not the pack's decision_id"), "{f}");
    // ... with its id too: the request copy no longer matches.
    p.decision_id = later.decision_id.clone();
    let f = failure(&p, &keys);
    assert_eq!(f.check, PackCheck::Request, "{f}");
    // ... and its request (whose context has the same exceptions): our overrides were
    // recorded before that decision.
    p.request = later.request.clone();
    let f = failure(&p, &keys);
    assert_eq!(
        (f.check, f.subject.as_deref()),
        (PackCheck::Override, Some("overrides[0]")),
        "{f}"
    );
    assert_eq!(f.reason, "entry 4 is not after the decision (entry 6)");
    // An override of another decision added to ours.
    let mut p = ours.clone();
    p.overrides.push(later.overrides[0].clone());
    let f = failure(&p, &keys);
    assert_eq!(
        (f.check, f.subject.as_deref()),
        (PackCheck::Override, Some("overrides[2]")),
        "{f}"
    );
    assert_eq!(
        f.reason,
        format!(
            "it overrides decision {}, not {}",
            later.decision_id, s.decision
        )
    );

    // An exception entry that is not in the context, in place of one that is.
    let mut p = ours.clone();
    p.exceptions[0] = p.overrides[0].clone();
    p.exceptions.sort_by_key(|e| e.index);
    let f = failure(&p, &keys);
    assert_eq!(f.check, PackCheck::Leaf, "{f}");
    assert!(
        f.reason
            .contains("is an override entry, not an exception entry"),
        "{f}"
    );
    // An exception of the context left out.
    let mut p = ours.clone();
    p.exceptions.remove(1);
    let f = failure(&p, &keys);
    assert_eq!(
        (f.check, f.subject.as_deref()),
        (PackCheck::Exception, Some("exceptions")),
        "{f}"
    );
    assert!(f.reason.contains("has no entry for it"), "{f}");
    // The bundle replaced by another entry.
    let mut p = ours.clone();
    p.bundle = p.exceptions[0].clone();
    let f = failure(&p, &keys);
    assert_eq!(
        (f.check, f.subject.as_deref()),
        (PackCheck::Leaf, Some("bundle"))
    );
    // Checkpoints swapped: the proofs no longer lead to the root.
    let mut p = good.clone();
    p.checkpoint = ours.checkpoint.clone();
    let f = failure(&p, &keys);
    assert_eq!(f.check, PackCheck::Consistency, "{f}");

    // A pack does not prove that it lists every override: one left out still verifies.
    // Auditors find every override of a decision with `vouch decisions` (see docs/proofs.md).
    let mut p = good;
    p.overrides.remove(1);
    assert_eq!(verified(&p, &keys).overrides.len(), 1);
}

#[test]
fn another_key_or_another_ledger_is_refused() {
    let s = scenario();
    let p = anchored(&s);
    // Another key of the same name: the note names a key nobody trusts.
    let mut other = Verifiers::new();
    other.insert(
        Signer::from_seed(support::ORIGIN, &[1u8; 32])
            .unwrap()
            .verifier(),
    );
    let f = failure(&p, &other);
    assert_eq!(f.check, PackCheck::Checkpoint);
    assert!(
        f.reason
            .starts_with("note has no verifiable signatures (signed by test.example/policy+"),
        "{f}"
    );
    // The pack's own keys are not trusted by verification: only those passed are.
    assert_eq!(failure(&p, &Verifiers::new()).check, PackCheck::Checkpoint);

    // A pack of another ledger, verified with this ledger's key, or with both keys but
    // expecting this ledger's origin.
    let o = support::fixture_named("audit.example/other", 3);
    let bundle = pack(HRP).bundle;
    o.gov.publish(&bundle, Format::Yaml, false).unwrap();
    let d = o
        .gov
        .decide(
            &BundleRef::Name(HRP_NAME.into()),
            pack(HRP).request("block-one-approval.json").as_bytes(),
            &DecideOptions::default(),
        )
        .unwrap();
    let foreign = o
        .gov
        .export_pack(&DecisionRef::Id(d.id), None)
        .unwrap()
        .pack;
    let f = failure(&foreign, &trusted(&s.f));
    assert_eq!(f.check, PackCheck::Checkpoint);
    assert!(f.reason.contains("audit.example/other+"), "{f}");
    let mut both = trusted(&s.f);
    for k in o.ledger.verifiers().iter() {
        both.insert(k.clone());
    }
    verify(&foreign, &both, Some("audit.example/other")).unwrap();
    let f = verify(&foreign, &both, Some(support::ORIGIN)).unwrap_err();
    assert_eq!(f.check, PackCheck::Origin);
    assert_eq!(
        f.to_string(),
        "origin: the pack is from the ledger \"audit.example/other\", not from \"test.example/policy\""
    );
    // Its checkpoint in our pack: the origin does not match the pack's.
    let mut p2 = p.clone();
    p2.checkpoint = foreign.checkpoint.clone();
    let f = failure(&p2, &both);
    assert_eq!(
        (f.check, f.subject.as_deref()),
        (PackCheck::Origin, Some("checkpoint"))
    );
    // Both its checkpoints and our origin: the key list does not match the notes.
    let mut p3 = p.clone();
    p3.checkpoint = foreign.checkpoint.clone();
    p3.latest_checkpoint = foreign.latest_checkpoint.clone();
    p3.origin = foreign.origin.clone();
    p3.consistency_path = foreign.consistency_path.clone();
    let f = failure(&p3, &both);
    assert_eq!(f.check, PackCheck::VerifierKeys, "{f}");
    // ... and its keys: our entries are not in its tree.
    p3.verifier_keys = foreign.verifier_keys.clone();
    let f = failure(&p3, &both);
    assert_eq!(
        (f.check, f.subject.as_deref()),
        (PackCheck::Inclusion, Some("decision")),
        "{f}"
    );
}

#[test]
fn a_listed_key_that_signed_nothing_is_refused() {
    let s = scenario();
    let mut p = anchored(&s);
    let stranger = Signer::from_seed("test.example/stranger", &[4u8; 32])
        .unwrap()
        .verifier();
    p.verifier_keys.push(stranger);
    let f = failure(&p, &trusted(&s.f));
    assert_eq!(
        (f.check, f.subject.as_deref()),
        (PackCheck::VerifierKeys, Some("verifier_keys[1]"))
    );
    assert!(f.reason.contains("signed neither checkpoint"), "{f}");
}

/// Appends a forged entry directly, around the policy layer.
fn forge(f: &Fixture, kind: EntryKind, content_type: &str, payload: Vec<u8>) -> EntryIndex {
    f.ledger
        .append(EntryDraft::new(kind, None, content_type.into(), payload).unwrap())
        .unwrap()
        .index
}

#[test]
fn a_decision_that_does_not_replay_is_never_exported() {
    let f = fixture();
    let p = pack(HRP);
    f.gov.publish(&p.bundle, Format::Yaml, false).unwrap();
    let d = f
        .gov
        .decide(
            &BundleRef::Index(EntryIndex(0)),
            p.request("allow-security-and-manager.json").as_bytes(),
            &DecideOptions::default(),
        )
        .unwrap();
    // The same record with the Engineering Manager's approval taken out of the snapshot and
    // its id recomputed: a consistent entry whose evaluation the bundle does not give.
    let payload = String::from_utf8(f.ledger.get(d.index).unwrap().payload).unwrap();
    let tampered = payload.replace(
        "\"roles\":[\"EngineeringManager\"]",
        "\"roles\":[\"Developer\"]",
    );
    assert_ne!(tampered, payload);
    let entry = DecisionEntry::from_json(tampered.as_bytes()).unwrap();
    let entry = DecisionEntry::new(entry.record, entry.bundle_index);
    let index = forge(
        &f,
        EntryKind::Decision,
        record::DECISION_CONTENT_TYPE,
        entry.to_json(),
    );
    let e = f
        .gov
        .export_pack(&DecisionRef::Index(index), None)
        .unwrap_err();
    let ExportPackError::SelfCheck(failure) = e else {
        panic!("not a self-check failure: {e}");
    };
    assert_eq!(failure.check, PackCheck::Replay);
    assert!(
        failure
            .reason
            .contains("outcome: recorded ALLOW, replayed BLOCK"),
        "{failure}"
    );

    // An override whose recorded outcome its request does not give.
    let blocked = f
        .gov
        .decide(
            &BundleRef::Index(EntryIndex(0)),
            p.request("block-one-approval.json").as_bytes(),
            &DecideOptions::default(),
        )
        .unwrap();
    let denied = f
        .gov
        .record_override(
            override_json(&blocked.id, "ovr-x", "rita").as_bytes(),
            false,
        )
        .unwrap();
    assert_eq!(denied.entry.outcome.status, OverrideStatus::Denied);
    let mut granted = denied.entry.clone();
    granted.outcome.status = OverrideStatus::Granted;
    granted.outcome.reasons.clear();
    granted.outcome.expires_at = Some("2025-06-03T20:00:00Z".parse().unwrap());
    granted.request.idempotency_key = "ovr-y".into();
    granted.outcome.idempotency_key = "ovr-y".into();
    forge(
        &f,
        EntryKind::Override,
        record::OVERRIDE_CONTENT_TYPE,
        granted.to_json(),
    );
    let e = f
        .gov
        .export_pack(&DecisionRef::Id(blocked.id.clone()), None)
        .unwrap_err();
    let ExportPackError::SelfCheck(failure) = e else {
        panic!("not a self-check failure: {e}");
    };
    assert_eq!(
        (failure.check, failure.subject.as_deref()),
        (PackCheck::Override, Some("overrides[1]"))
    );
    assert!(
        failure
            .reason
            .starts_with("evaluating the override request again gives"),
        "{failure}"
    );
}

#[test]
fn export_errors_name_the_problem() {
    let s = scenario();
    let g = &s.f.gov;
    let e = g
        .export_pack(&DecisionRef::Id(format!("sha256:{}", "0".repeat(64))), None)
        .unwrap_err();
    assert!(e.to_string().starts_with("no decision sha256:0000"), "{e}");
    assert!(matches!(e, ExportPackError::NotFound(_)), "{e}");
    // An index that holds a bundle, not a decision.
    let e = g
        .export_pack(&DecisionRef::Index(EntryIndex(0)), None)
        .unwrap_err();
    assert!(matches!(e, ExportPackError::NotFound(_)), "{e}");
    let e = g
        .export_pack(&DecisionRef::Index(EntryIndex(10_000)), None)
        .unwrap_err();
    assert!(matches!(e, ExportPackError::NotFound(_)), "{e}");
    let id = DecisionRef::Id(s.decision.clone());
    let e = g.export_pack(&id, Some(TreeSize(10_000))).unwrap_err();
    assert!(matches!(e, ExportPackError::SizeBeyondLedger { .. }), "{e}");
    let e = g
        .export_pack(&id, Some(TreeSize(s.first_checkpoint.0 - 1)))
        .unwrap_err();
    assert!(matches!(e, ExportPackError::NoCheckpointAt(_)), "{e}");
    // A checkpoint signed before the decision.
    let f = fixture();
    let p = pack(HRP);
    f.gov.publish(&p.bundle, Format::Yaml, false).unwrap();
    let early = f.ledger.checkpoint_now().unwrap().size();
    let d = f
        .gov
        .decide(
            &BundleRef::Index(EntryIndex(0)),
            p.request("block-one-approval.json").as_bytes(),
            &DecideOptions::default(),
        )
        .unwrap();
    let e = f
        .gov
        .export_pack(&DecisionRef::Id(d.id.clone()), Some(early))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "the checkpoint of tree size 1 does not cover the decision (entry 1)"
    );
    // No checkpoint covers the decision yet: one is signed on the spot.
    assert_eq!(f.ledger.latest_checkpoint().unwrap().size(), early);
    let exported = f.gov.export_pack(&DecisionRef::Id(d.id), None).unwrap();
    assert_eq!(exported.verified.checkpoint.checkpoint.size, TreeSize(2));
    assert_eq!(f.ledger.latest_checkpoint().unwrap().size(), TreeSize(2));
}
