//! The policy layer on a real ledger: publishing, deciding with the ledger's context,
//! overrides, exceptions, replay (including tampered entries), simulation and queries.

// Short names (`f` fixture, `p` pack, `b` bundle, `d` decision) keep the scenarios readable.
#![allow(clippy::many_single_char_names)]

mod support;

use serde_json::json;
use vouch_ledger_core::EntryIndex;
use vouch_ledger_core::checkpoint::open_checkpoint;
use vouch_ledger_core::entry::{EntryDraft, EntryKind};
use vouch_ledger_core::proof::verify_inclusion;
use vouch_query::governance::{
    BundleEntry, DecideError, DecisionEntry, Difference, EvaluateError, ExceptionError,
    GetDecisionError, OverrideError, Proof, PublishError, record,
};
use vouch_query::{
    BundleRef, DecideOptions, DecisionQuery, DecisionRef, Format, Outcome, OverrideStatus,
    SimulationOptions, SimulationScope,
};

use support::{Fixture, fixture, pack, with};

const HRP: &str = "high-risk-production";

fn decide(f: &Fixture, bundle: &BundleRef, request: &str) -> vouch_query::governance::Decided {
    f.gov
        .decide(bundle, request.as_bytes(), &DecideOptions::default())
        .unwrap_or_else(|e| panic!("decide: {e}"))
}

/// Checks a proof against its checkpoint, opened with the ledger's verifier keys.
fn check_proof(f: &Fixture, proof: &Proof) {
    let (checkpoint, _) = open_checkpoint(&proof.checkpoint.note, f.ledger.verifiers()).unwrap();
    assert_eq!(checkpoint.size, proof.proof.size);
    verify_inclusion(
        f.ledger.hash_alg(),
        &proof.leaf_hash,
        &proof.proof,
        &checkpoint.root,
    )
    .unwrap();
    assert_eq!(
        f.ledger.leaf_hash(proof.proof.index).unwrap(),
        proof.leaf_hash
    );
}

#[test]
fn publishing_is_idempotent_and_records_the_exact_source() {
    let f = fixture();
    let p = pack(HRP);
    let first = f.gov.publish(&p.bundle, Format::Yaml, true).unwrap();
    assert!(!first.duplicate);
    assert_eq!(first.bundle.index, EntryIndex(0));
    let compiled =
        vouch_query::compile(&vouch_query::SourceBundle::parse(&p.bundle, Format::Yaml).unwrap())
            .unwrap();
    assert_eq!(first.bundle.entry.hash, compiled.hash());
    check_proof(&f, first.proof.as_ref().unwrap());

    // The entry: kind, key, content type and the exact payload bytes.
    let entry = f.ledger.get(EntryIndex(0)).unwrap();
    assert_eq!(entry.kind, EntryKind::Policy);
    assert_eq!(
        entry.idempotency_key.as_deref(),
        Some(format!("bundle:{}", compiled.hash()).as_str())
    );
    assert_eq!(entry.content_type, record::BUNDLE_CONTENT_TYPE);
    let mut expected = String::from("{\"format\":\"yaml\",\"hash\":");
    expected.push_str(&serde_json::to_string(compiled.hash()).unwrap());
    expected
        .push_str(",\"name\":\"high-risk-production-release\",\"record_version\":1,\"source\":");
    expected.push_str(&serde_json::to_string(&p.bundle).unwrap());
    expected.push('}');
    assert_eq!(String::from_utf8(entry.payload.clone()).unwrap(), expected);

    // The same text, and the same bundle written differently, are the same publication.
    let again = f.gov.publish(&p.bundle, Format::Yaml, false).unwrap();
    assert!(again.duplicate);
    assert_eq!(again.bundle.index, EntryIndex(0));
    let reformatted = format!("# reformatted\n{}", p.bundle.replace("min: 2", "min:   2"));
    let again = f.gov.publish(&reformatted, Format::Yaml, true).unwrap();
    assert!(again.duplicate);
    assert_eq!(again.bundle.index, EntryIndex(0));
    check_proof(&f, again.proof.as_ref().unwrap());
    assert_eq!(f.ledger.size().0, 1);
}

#[test]
fn invalid_bundles_are_refused_with_locations() {
    let f = fixture();
    let e = f
        .gov
        .publish(
            "version: 1\nname: x\npolicies:\n  - id: a\n    wen: {}\n",
            Format::Yaml,
            false,
        )
        .unwrap_err();
    let PublishError::Parse(errors) = &e else {
        panic!("not a parse error: {e:?}");
    };
    assert_eq!(
        (errors.errors[0].loc.line, errors.errors[0].loc.column),
        (5, 5)
    );
    assert!(e.to_string().contains("did you mean \"when\""), "{e}");
    let e = f
        .gov
        .publish(
            "version: 1\nname: x\nroles: [Security]\npolicies:\n  - id: a\n    require:\n      approvals: {roles: {Securty: 1}}\n",
            Format::Yaml,
            false,
        )
        .unwrap_err();
    let PublishError::Compile(errors) = &e else {
        panic!("not a compile error: {e:?}");
    };
    assert_eq!(errors.errors[0].code, "undeclared-role");
    assert_eq!(errors.errors[0].loc.line, 7);
    assert_eq!(f.ledger.size().0, 0, "nothing was appended");
}

#[test]
fn bundles_resolve_by_hash_name_and_index_and_list_in_order() {
    let f = fixture();
    let p = pack(HRP);
    let v1 = f.gov.publish(&p.bundle, Format::Yaml, false).unwrap();
    let other = pack("supply-chain-gate");
    let sc = f.gov.publish(&other.bundle, Format::Yaml, false).unwrap();
    let v2_text = p.bundle.replace("max_duration: 24h", "max_duration: 12h");
    let v2 = f.gov.publish(&v2_text, Format::Yaml, false).unwrap();
    assert_ne!(v1.bundle.entry.hash, v2.bundle.entry.hash);

    let name = BundleRef::Name("high-risk-production-release".into());
    assert_eq!(f.gov.bundle(&name).unwrap().index, v2.bundle.index);
    let by_hash = f
        .gov
        .bundle(&BundleRef::Hash(v1.bundle.entry.hash.clone()))
        .unwrap();
    assert_eq!(by_hash.index, v1.bundle.index);
    assert_eq!(by_hash.entry.source, p.bundle);
    assert_eq!(
        f.gov
            .bundle(&BundleRef::Index(sc.bundle.index))
            .unwrap()
            .entry
            .name,
        sc.bundle.entry.name
    );
    let missing = f.gov.bundle(&BundleRef::Name("nope".into())).unwrap_err();
    assert_eq!(
        missing.to_string(),
        "no bundle named \"nope\" was published in this ledger"
    );
    let all = f.gov.list_bundles(None, None, 10).unwrap();
    let indexes: Vec<u64> = all.iter().map(|b| b.index.0).collect();
    assert_eq!(indexes, [0, 1, 2]);
    let named = f
        .gov
        .list_bundles(Some("high-risk-production-release"), None, 10)
        .unwrap();
    assert_eq!(named.len(), 2);
    let page = f.gov.list_bundles(None, Some(EntryIndex(0)), 1).unwrap();
    assert_eq!(page[0].index, EntryIndex(1));
    // A decision entry's index is not a bundle.
    let d = decide(&f, &name, pack(HRP).request("block-one-approval.json"));
    let e = f.gov.bundle(&BundleRef::Index(d.index)).unwrap_err();
    assert!(
        e.to_string()
            .contains("is a decision entry, not a policy entry"),
        "{e}"
    );
}

#[test]
fn decide_records_the_snapshot_with_server_context_and_proves_it() {
    let f = fixture();
    let p = pack(HRP);
    let published = f.gov.publish(&p.bundle, Format::Yaml, false).unwrap();
    // The client's own context is replaced by the ledger's (empty here).
    let request = with(
        p.request("block-one-approval.json"),
        "context",
        json!({"promotions": [{"environment": "staging", "version": "1", "commit": "c", "digest": "d", "at": "2025-06-01T00:00:00Z"}]}),
    );
    let decided = f
        .gov
        .decide(
            &BundleRef::Hash(published.bundle.entry.hash.clone()),
            request.as_bytes(),
            &DecideOptions {
                idempotency_key: None,
                wait_for_checkpoint: true,
            },
        )
        .unwrap();
    assert_eq!(decided.record.evaluation.outcome, Outcome::Block);
    assert!(decided.record.request.context().promotions.is_empty());
    assert_eq!(decided.bundle.index, published.bundle.index);
    check_proof(&f, decided.proof.as_ref().unwrap());

    let entry = f.ledger.get(decided.index).unwrap();
    assert_eq!(entry.kind, EntryKind::Decision);
    assert_eq!(entry.content_type, record::DECISION_CONTENT_TYPE);
    assert_eq!(
        entry.idempotency_key.as_deref(),
        Some(format!("decision:{}", decided.id).as_str())
    );
    // The payload, byte for byte: the record's canonical JSON sits inside, and hashes to the id.
    let record_json = decided.record.canonical_json();
    let expected = format!(
        "{{\"bundle_index\":0,\"id\":\"{}\",\"record\":{},\"record_version\":1}}",
        decided.id,
        String::from_utf8(record_json.clone()).unwrap()
    );
    assert_eq!(String::from_utf8(entry.payload.clone()).unwrap(), expected);
    assert_eq!(
        decided.id,
        vouch_query::DecisionRecord::from_json(&record_json)
            .unwrap()
            .id()
    );
    let stored = DecisionEntry::from_json(&entry.payload).unwrap();
    assert_eq!(stored.bundle_index, EntryIndex(0));

    let read = f
        .gov
        .decision(&DecisionRef::Id(decided.id.clone()), true)
        .unwrap();
    assert_eq!(read.index, decided.index);
    assert_eq!(read.record_json, record_json);
    check_proof(&f, read.proof.as_ref().unwrap());
    let by_index = f
        .gov
        .decision(&DecisionRef::Index(decided.index), false)
        .unwrap();
    assert_eq!(by_index.id, decided.id);
    // A bundle entry is not a decision.
    let e = f
        .gov
        .decision(&DecisionRef::Index(EntryIndex(0)), false)
        .unwrap_err();
    assert!(matches!(e, GetDecisionError::Invalid(_)), "{e:?}");
    let e = f
        .gov
        .decision(&DecisionRef::Id("sha256:00".into()), false)
        .unwrap_err();
    assert!(matches!(e, GetDecisionError::NotFound(_)), "{e:?}");
}

#[test]
fn decide_is_idempotent_by_id_and_by_client_key() {
    let f = fixture();
    let p = pack(HRP);
    f.gov.publish(&p.bundle, Format::Yaml, false).unwrap();
    let name = BundleRef::Name("high-risk-production-release".into());
    let request = p.request("allow-security-and-manager.json");
    let a = decide(&f, &name, request);
    let b = decide(&f, &name, request);
    assert!(!a.duplicate && b.duplicate);
    assert_eq!((a.index, &a.id), (b.index, &b.id));

    let keyed = |req: &str| {
        f.gov.decide(
            &name,
            req.as_bytes(),
            &DecideOptions {
                idempotency_key: Some("deploy-42".into()),
                wait_for_checkpoint: false,
            },
        )
    };
    let other = p.request("block-one-approval.json");
    let first = keyed(other).unwrap();
    assert!(!first.duplicate);
    let retry = keyed(other).unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.index, first.index);
    let e = keyed(request).unwrap_err();
    assert!(matches!(e, DecideError::KeyConflict { .. }), "{e:?}");
    assert!(e.to_string().contains("deploy-42"), "{e}");
    assert_eq!(f.ledger.size().0, 3);
}

#[test]
fn evaluate_records_nothing_and_errors_are_located() {
    let f = fixture();
    let p = pack(HRP);
    f.gov.publish(&p.bundle, Format::Yaml, false).unwrap();
    let name = BundleRef::Name("high-risk-production-release".into());
    let e = f
        .gov
        .evaluate(&name, p.request("block-one-approval.json").as_bytes())
        .unwrap();
    assert_eq!(e.record.evaluation.outcome, Outcome::Block);
    assert_eq!(f.ledger.size().0, 1);
    let err = f
        .gov
        .evaluate(&name, b"{\"subject\": \"x\",\n \"environment\": 3}")
        .unwrap_err();
    let EvaluateError::Request(inner) = &err else {
        panic!("{err:?}");
    };
    assert!(
        err.to_string()
            .contains("environment: expected a string, got 3 (line 2, column 17)"),
        "{inner}"
    );
    let err = f
        .gov
        .decide(
            &BundleRef::Name("nope".into()),
            p.request("block-one-approval.json").as_bytes(),
            &DecideOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(err, DecideError::Bundle(_)), "{err:?}");
}

/// A bundle where production needs the same artifact as staging, and staging allows all.
const PROMOTION_BUNDLE: &str = "\
version: 1
name: promotion
vocabulary:
  environment: [staging, production]
roles: [ReleaseManager]
policies:
  - id: staging-approved
    when: {environment: staging}
    require:
      approvals: {min: 1}
    overrides:
      allowed_roles: [ReleaseManager]
  - id: build-once
    when: {environment: production}
    require:
      artifact: {same_digest_in: [staging], immutable_version: true}
";

fn promotion_request(env: &str, subject: &str, digest: &str, now: &str, approved: bool) -> String {
    let approvals = if approved {
        json!([{"approver": "bob", "roles": [], "kind": "production", "at": "2025-06-01T00:00:00Z"}])
    } else {
        json!([])
    };
    json!({
        "subject": subject, "environment": env, "repository": "acme/shop", "service": "cart",
        "author": "alice", "approvals": approvals,
        "artifact": {"version": "2.0.0", "commit": "c1", "digest": digest},
        "now": now,
    })
    .to_string()
}

#[test]
fn promotions_come_from_allowed_decisions_and_granted_overrides() {
    let f = fixture();
    f.gov
        .publish(PROMOTION_BUNDLE, Format::Yaml, false)
        .unwrap();
    let b = BundleRef::Name("promotion".into());
    // Nothing reached staging yet.
    let d = decide(
        &f,
        &b,
        &promotion_request(
            "production",
            "P-1",
            "sha256:aa",
            "2025-06-03T10:00:00Z",
            false,
        ),
    );
    assert_eq!(d.record.evaluation.reasons[0].code, "artifact-not-promoted");
    // Staging allows digest aa; production with aa is then allowed, with the promotion in its context.
    let staging = decide(
        &f,
        &b,
        &promotion_request("staging", "S-1", "sha256:aa", "2025-06-02T10:00:00Z", true),
    );
    assert_eq!(staging.record.evaluation.outcome, Outcome::Allow);
    let d = decide(
        &f,
        &b,
        &promotion_request(
            "production",
            "P-2",
            "sha256:aa",
            "2025-06-03T10:00:00Z",
            false,
        ),
    );
    assert_eq!(
        d.record.evaluation.outcome,
        Outcome::Allow,
        "{:?}",
        d.record.evaluation.reasons
    );
    let promotions = &d.record.request.context().promotions;
    assert_eq!(promotions.len(), 1);
    assert_eq!(promotions[0].environment, "staging");
    assert_eq!(promotions[0].decision.as_deref(), Some(staging.id.as_str()));
    // A request at a `now` before the staging decision does not see it.
    let early = decide(
        &f,
        &b,
        &promotion_request(
            "production",
            "P-3",
            "sha256:aa",
            "2025-06-01T10:00:00Z",
            false,
        ),
    );
    assert_eq!(early.record.evaluation.outcome, Outcome::Block);
    // Another digest is blocked: not the staging artifact, and the version is rebound.
    let d = decide(
        &f,
        &b,
        &promotion_request(
            "production",
            "P-4",
            "sha256:bb",
            "2025-06-03T10:00:00Z",
            false,
        ),
    );
    let codes: Vec<&str> = d
        .record
        .evaluation
        .reasons
        .iter()
        .map(|r| r.code.as_str())
        .collect();
    assert_eq!(codes, ["version-rebound", "artifact-digest-mismatch"]);
    // Another repository's promotions are not this artifact's.
    let elsewhere = with(
        &promotion_request(
            "production",
            "P-5",
            "sha256:aa",
            "2025-06-03T10:00:00Z",
            false,
        ),
        "repository",
        json!("acme/other"),
    );
    assert_eq!(
        decide(&f, &b, &elsewhere).record.evaluation.outcome,
        Outcome::Block
    );

    // A blocked staging decision let through by a granted override counts as a promotion.
    let blocked = decide(
        &f,
        &b,
        &promotion_request("staging", "S-2", "sha256:cc", "2025-06-02T11:00:00Z", false),
    );
    assert_eq!(blocked.record.evaluation.outcome, Outcome::Block);
    let o = json!({
        "decision": blocked.id, "requester": "alice", "approver": "rm", "approver_roles": ["ReleaseManager"],
        "justification": "hotfix", "expires_at": "2025-06-02T12:00:00Z", "idempotency_key": "ovr-s2",
        "now": "2025-06-02T11:05:00Z"
    });
    let recorded = f
        .gov
        .record_override(o.to_string().as_bytes(), false)
        .unwrap();
    assert_eq!(recorded.entry.outcome.status, OverrideStatus::Granted);
    let promotion = recorded.entry.promotion.as_ref().unwrap();
    assert_eq!(
        (promotion.environment.as_str(), promotion.digest.as_str()),
        ("staging", "sha256:cc")
    );
    let d = decide(
        &f,
        &b,
        &promotion_request(
            "production",
            "P-6",
            "sha256:cc",
            "2025-06-03T10:00:00Z",
            false,
        ),
    );
    let envs: Vec<(&str, &str)> = d
        .record
        .request
        .context()
        .promotions
        .iter()
        .map(|p| (p.environment.as_str(), p.digest.as_str()))
        .collect();
    assert_eq!(
        envs,
        [
            ("staging", "sha256:aa"),
            ("staging", "sha256:cc"),
            ("production", "sha256:aa")
        ]
    );
}

/// A bundle whose production policy needs a ticket and honours exceptions.
const EXCEPTION_BUNDLE: &str = "\
version: 1
name: tickets
policies:
  - id: ticket-required
    when: {environment: production}
    honour_exceptions: true
    require:
      evidence: [ticket]
";

fn exception(id: &str, expires_at: &str, repository: &str) -> String {
    json!({
        "id": id, "policy": "ticket-required", "requirements": ["evidence"], "kind": "temporary",
        "owner_role": "EngineeringManager", "scope": {"repository": [repository]},
        "expires_at": expires_at, "remediation_plan": "add tickets to the bot",
        "author": "alice", "approvers": [{"approver": "erin", "roles": ["EngineeringManager"]}]
    })
    .to_string()
}

fn ticketless(repository: &str, now: &str) -> String {
    json!({"subject": "T-1", "environment": "production", "repository": repository,
           "author": "bot", "now": now})
    .to_string()
}

#[test]
fn exceptions_are_honoured_while_active_and_in_scope() {
    let f = fixture();
    f.gov
        .publish(EXCEPTION_BUNDLE, Format::Yaml, false)
        .unwrap();
    let b = BundleRef::Name("tickets".into());
    let before = decide(&f, &b, &ticketless("acme/bots", "2025-06-03T10:00:00Z"));
    assert_eq!(before.record.evaluation.outcome, Outcome::Block);

    let e = f
        .gov
        .record_exception(
            exception("EXC-1", "2025-07-01T00:00:00Z", "acme/bot*").as_bytes(),
            true,
        )
        .unwrap();
    assert!(!e.duplicate);
    check_proof(&f, e.proof.as_ref().unwrap());
    let entry = f.ledger.get(e.index).unwrap();
    assert_eq!(entry.kind, EntryKind::Exception);
    assert_eq!(entry.idempotency_key.as_deref(), Some("exception:EXC-1"));
    assert!(entry.payload.starts_with(b"{\"exception\":{"));
    assert!(entry.payload.ends_with(b",\"record_version\":1}"));

    let after = decide(&f, &b, &ticketless("acme/bots", "2025-06-03T10:00:00Z"));
    assert_eq!(
        after.record.evaluation.outcome,
        Outcome::Allow,
        "{:?}",
        after.record.evaluation.reasons
    );
    assert_eq!(
        after.record.evaluation.applied_exceptions[0].exception,
        "EXC-1"
    );
    assert_eq!(after.record.request.context().exceptions[0].id, "EXC-1");
    // Expired at the request's `now`: not injected.
    let late = decide(&f, &b, &ticketless("acme/bots", "2025-07-02T00:00:00Z"));
    assert_eq!(late.record.evaluation.outcome, Outcome::Block);
    assert!(late.record.request.context().exceptions.is_empty());
    // Outside its scope: not injected.
    let other = decide(&f, &b, &ticketless("acme/shop", "2025-06-03T10:00:00Z"));
    assert_eq!(other.record.evaluation.outcome, Outcome::Block);
    assert!(other.record.request.context().exceptions.is_empty());

    // The same exception again is the same entry; another with the same id is refused.
    let again = f
        .gov
        .record_exception(
            exception("EXC-1", "2025-07-01T00:00:00Z", "acme/bot*").as_bytes(),
            false,
        )
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.index, e.index);
    let conflict = f
        .gov
        .record_exception(
            exception("EXC-1", "2026-01-01T00:00:00Z", "acme/bot*").as_bytes(),
            false,
        )
        .unwrap_err();
    assert!(
        matches!(conflict, ExceptionError::Conflict { .. }),
        "{conflict:?}"
    );
    let bad = f
        .gov
        .record_exception(b"{\"id\": \"E\"}", false)
        .unwrap_err();
    assert!(bad.to_string().contains("missing"), "{bad}");
}

fn override_json(decision: &str, key: &str, approver: &str) -> String {
    json!({
        "decision": decision, "requester": "rita", "approver": approver,
        "approver_roles": ["ReleaseManager"],
        "justification": "Security reviewer on leave; fix for incident INC-88 must ship today",
        "expires_at": "2025-06-03T20:00:00Z", "idempotency_key": key, "now": "2025-06-03T10:05:00Z"
    })
    .to_string()
}

#[test]
fn overrides_are_evaluated_against_the_recorded_decision() {
    let f = fixture();
    let p = pack(HRP);
    f.gov.publish(&p.bundle, Format::Yaml, false).unwrap();
    let b = BundleRef::Name("high-risk-production-release".into());
    let blocked = decide(&f, &b, p.request("block-one-approval.json"));
    let granted = f
        .gov
        .record_override(
            override_json(&blocked.id, "ovr-1", "rm-rosa").as_bytes(),
            true,
        )
        .unwrap();
    assert_eq!(granted.entry.outcome.status, OverrideStatus::Granted);
    assert_eq!(granted.entry.decision_index, blocked.index);
    assert_eq!(granted.decision, blocked.id);
    check_proof(&f, granted.proof.as_ref().unwrap());
    let entry = f.ledger.get(granted.index).unwrap();
    assert_eq!(entry.kind, EntryKind::Override);
    assert_eq!(entry.idempotency_key.as_deref(), Some("ovr-1"));
    assert!(
        entry.payload.starts_with(
            format!(
                "{{\"bundle_index\":0,\"decision_index\":{},\"outcome\":{{",
                blocked.index
            )
            .as_bytes()
        )
    );

    // A self-approved override is denied, and recorded as such.
    let denied = f
        .gov
        .record_override(
            override_json(&blocked.id, "ovr-2", "rita").as_bytes(),
            false,
        )
        .unwrap();
    assert_eq!(denied.entry.outcome.status, OverrideStatus::Denied);
    let codes: Vec<&str> = denied
        .entry
        .outcome
        .reasons
        .iter()
        .map(|r| r.code.as_str())
        .collect();
    assert_eq!(
        codes,
        ["override-requester-approved", "override-self-approved"]
    );
    assert!(denied.entry.promotion.is_none());

    let read = f
        .gov
        .decision(&DecisionRef::Id(blocked.id.clone()), false)
        .unwrap();
    let statuses: Vec<OverrideStatus> = read.overrides.iter().map(|o| o.status).collect();
    assert_eq!(statuses, [OverrideStatus::Granted, OverrideStatus::Denied]);
    let at: jiff::Timestamp = "2025-06-03T12:00:00Z".parse().unwrap();
    assert_eq!(read.override_in_force(at).unwrap().index, granted.index);

    // Retries return the original; another request under a used key is refused.
    let retry = f
        .gov
        .record_override(
            override_json(&blocked.id, "ovr-1", "rm-rosa").as_bytes(),
            false,
        )
        .unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.index, granted.index);
    let e = f
        .gov
        .record_override(
            override_json(&blocked.id, "ovr-1", "rm-rick").as_bytes(),
            false,
        )
        .unwrap_err();
    assert!(matches!(e, OverrideError::KeyConflict { .. }), "{e:?}");
    let e = f
        .gov
        .record_override(
            override_json("sha256:0123", "ovr-3", "rm-rosa").as_bytes(),
            false,
        )
        .unwrap_err();
    assert!(
        matches!(e, OverrideError::Decision(GetDecisionError::NotFound(_))),
        "{e:?}"
    );
    let e = f.gov.record_override(b"{}", false).unwrap_err();
    assert!(matches!(e, OverrideError::Request(_)), "{e:?}");
}

#[test]
fn replay_reproduces_every_recorded_decision_of_every_pack() {
    let f = fixture();
    let mut replayed = 0;
    for p in support::packs() {
        let published = f.gov.publish(&p.bundle, Format::Yaml, false).unwrap();
        let b = BundleRef::Index(published.bundle.index);
        for (name, request) in &p.requests {
            let d = decide(&f, &b, request);
            let report = f.gov.replay(&DecisionRef::Id(d.id.clone())).unwrap();
            assert!(
                report.matches(),
                "{}/{name}: {:?}",
                p.name,
                report.differences
            );
            assert_eq!(report.replayed.as_ref(), Some(&d.record.evaluation));
            replayed += 1;
        }
    }
    assert_eq!(replayed, 73);
    // A fresh handle (no compiled bundles in memory) replays from the entries alone.
    let fresh = vouch_query::Governance::new(f.ledger.clone());
    let report = fresh.replay(&DecisionRef::Index(EntryIndex(1))).unwrap();
    assert!(report.matches(), "{:?}", report.differences);
}

/// Appends a forged entry directly, around the policy layer.
fn forge(f: &Fixture, kind: EntryKind, content_type: &str, payload: Vec<u8>) -> EntryIndex {
    f.ledger
        .append(EntryDraft::new(kind, None, content_type.into(), payload).unwrap())
        .unwrap()
        .index
}

#[test]
fn replay_reports_a_tampered_request_snapshot() {
    let f = fixture();
    let p = pack(HRP);
    f.gov.publish(&p.bundle, Format::Yaml, false).unwrap();
    let d = decide(
        &f,
        &BundleRef::Index(EntryIndex(0)),
        p.request("allow-security-and-manager.json"),
    );
    // The same entry with the Engineering Manager's approval taken out of the snapshot.
    let payload = String::from_utf8(f.ledger.get(d.index).unwrap().payload).unwrap();
    let tampered = payload.replace(
        "\"roles\":[\"EngineeringManager\"]",
        "\"roles\":[\"Developer\"]",
    );
    assert_ne!(tampered, payload);
    let index = forge(
        &f,
        EntryKind::Decision,
        record::DECISION_CONTENT_TYPE,
        tampered.into_bytes(),
    );
    let report = f.gov.replay(&DecisionRef::Index(index)).unwrap();
    assert!(!report.matches());
    let kinds: Vec<&str> = report.differences.iter().map(Difference::kind).collect();
    assert_eq!(
        kinds,
        ["decision-id", "outcome", "reason-added", "member"],
        "{:?}",
        report.differences
    );
    assert_eq!(
        report.differences[1],
        Difference::Outcome {
            recorded: Outcome::Allow,
            replayed: Outcome::Block
        }
    );
    let Difference::ReasonAdded(r) = &report.differences[2] else {
        panic!()
    };
    assert_eq!(r.code, "approvals-role-missing");
    // Reading it as a decision refuses it: its record no longer matches its id.
    let e = f
        .gov
        .decision(&DecisionRef::Index(index), false)
        .unwrap_err();
    assert!(e.to_string().contains("not to its stored id"), "{e}");
    // The pure replay of the same payloads says the same.
    let bundle_payload = f.ledger.get(EntryIndex(0)).unwrap().payload;
    let pure = vouch_query::governance::replay_entries(
        index,
        &f.ledger.get(index).unwrap().payload,
        Ok(&bundle_payload),
    )
    .unwrap();
    assert_eq!(pure.differences, report.differences);
}

#[test]
fn replay_reports_a_tampered_bundle_entry() {
    let f = fixture();
    let p = pack(HRP);
    let published = f.gov.publish(&p.bundle, Format::Yaml, false).unwrap();
    let d = decide(
        &f,
        &BundleRef::Index(EntryIndex(0)),
        p.request("block-one-approval.json"),
    );
    // A bundle entry claiming the original hash with a weaker source, and the decision
    // pointing at it.
    let weaker = BundleEntry {
        source: p
            .bundle
            .replace("min: 2", "min: 1")
            .replace("          EngineeringManager: 1\n", ""),
        ..published.bundle.entry.clone()
    };
    let forged_bundle = forge(
        &f,
        EntryKind::Policy,
        record::BUNDLE_CONTENT_TYPE,
        weaker.to_json(),
    );
    let mut entry = DecisionEntry::from_json(&f.ledger.get(d.index).unwrap().payload).unwrap();
    entry.bundle_index = forged_bundle;
    let forged = forge(
        &f,
        EntryKind::Decision,
        record::DECISION_CONTENT_TYPE,
        entry.to_json(),
    );
    let report = f.gov.replay(&DecisionRef::Index(forged)).unwrap();
    let kinds: Vec<&str> = report.differences.iter().map(Difference::kind).collect();
    assert_eq!(
        kinds,
        [
            "bundle-entry-hash",
            "bundle-hash",
            "outcome",
            "reason-missing",
            "reason-missing",
            "member",
            "member"
        ],
        "{:?}",
        report.differences
    );
    assert_eq!(
        report.differences[2],
        Difference::Outcome {
            recorded: Outcome::Block,
            replayed: Outcome::Allow
        }
    );
    // The bundle cannot be used to decide either.
    let e = f.gov.bundle(&BundleRef::Index(forged_bundle)).unwrap_err();
    assert!(e.to_string().contains("not to the recorded hash"), "{e}");
    // A decision pointing at something that is not a bundle cannot be re-evaluated.
    entry.bundle_index = d.index;
    let dangling = forge(
        &f,
        EntryKind::Decision,
        record::DECISION_CONTENT_TYPE,
        entry.to_json(),
    );
    let report = f.gov.replay(&DecisionRef::Index(dangling)).unwrap();
    assert_eq!(report.differences.len(), 1);
    assert!(
        report.differences[0]
            .to_string()
            .contains("not a policy entry"),
        "{}",
        report.differences[0]
    );
    assert!(report.replayed.is_none());
}

#[test]
fn simulation_reports_newly_blocked_and_unblocked() {
    let f = fixture();
    let p = pack(HRP);
    f.gov.publish(&p.bundle, Format::Yaml, false).unwrap();
    let b = BundleRef::Index(EntryIndex(0));
    for name in [
        "block-one-approval.json",
        "allow-security-and-manager.json",
        "skipped-staging.json",
        "allow-low-risk.json",
    ] {
        decide(&f, &b, p.request(name));
    }
    // Another bundle's decision, which the name filter leaves out.
    let other = pack("supply-chain-gate");
    let sc = f.gov.publish(&other.bundle, Format::Yaml, false).unwrap();
    decide(
        &f,
        &BundleRef::Index(sc.bundle.index),
        other.request("block-no-artifact.json"),
    );

    let stricter = p.bundle.replace("        min: 2\n", "        min: 3\n");
    let options = SimulationOptions {
        scope: SimulationScope::Last(10),
        bundle_name: Some("high-risk-production-release".into()),
        ..SimulationOptions::default()
    };
    let r = f.gov.simulate(&stricter, Format::Yaml, &options).unwrap();
    assert_eq!(r.evaluated, 4);
    assert_eq!(
        (r.would_newly_block, r.would_unblock, r.unchanged, r.delta),
        (1, 0, 3, 1)
    );
    assert_eq!(r.newly_blocked[0].subject, "CHG-1042");
    assert_eq!(r.newly_blocked[0].reasons[0].code, "approvals-insufficient");
    assert_eq!(
        (r.before.allow, r.before.block, r.before.skipped),
        (2, 1, 1)
    );
    assert_eq!((r.after.allow, r.after.block, r.after.skipped), (1, 2, 1));
    let hr = r
        .by_policy
        .iter()
        .find(|p| p.policy == "high-risk-production")
        .unwrap();
    assert_eq!(
        (
            hr.matched_before,
            hr.blocked_before,
            hr.blocked_after,
            hr.newly_blocked
        ),
        (2, 1, 2, 1)
    );

    let looser = p
        .bundle
        .replace("        min: 2\n", "        min: 1\n")
        .replace("          EngineeringManager: 1\n", "");
    let r = f.gov.simulate(&looser, Format::Yaml, &options).unwrap();
    assert_eq!((r.would_newly_block, r.would_unblock, r.delta), (0, 1, -1));
    assert_eq!(r.unblocked[0].after, Outcome::Allow);
    // Without the name filter the other bundle's decision is evaluated too.
    let all = SimulationOptions {
        bundle_name: None,
        ..options.clone()
    };
    assert_eq!(
        f.gov
            .simulate(&looser, Format::Yaml, &all)
            .unwrap()
            .evaluated,
        5
    );
    let last = SimulationOptions {
        scope: SimulationScope::Last(2),
        ..all.clone()
    };
    let r = f.gov.simulate(&looser, Format::Yaml, &last).unwrap();
    assert_eq!(r.evaluated, 2);
    assert_eq!(r.last_index, Some(EntryIndex(f.ledger.size().0 - 1)));
    let none = SimulationOptions {
        scope: SimulationScope::Range {
            since: Some("2030-01-01T00:00:00Z".parse().unwrap()),
            until: None,
        },
        ..all
    };
    assert_eq!(
        f.gov
            .simulate(&looser, Format::Yaml, &none)
            .unwrap()
            .evaluated,
        0
    );
    assert!(
        f.gov
            .simulate("version: 1", Format::Yaml, &options)
            .is_err()
    );
}

#[test]
fn simulation_results_do_not_depend_on_the_cache() {
    let f = fixture();
    let p = pack(HRP);
    f.gov.publish(&p.bundle, Format::Yaml, false).unwrap();
    let b = BundleRef::Index(EntryIndex(0));
    for name in [
        "block-one-approval.json",
        "allow-security-and-manager.json",
        "allow-critical-risk.json",
    ] {
        decide(&f, &b, p.request(name));
    }
    let stricter = p.bundle.replace("        min: 2\n", "        min: 3\n");
    let options = SimulationOptions {
        scope: SimulationScope::Last(100),
        threads: 2,
        ..SimulationOptions::default()
    };
    let cold = f.gov.simulate(&stricter, Format::Yaml, &options).unwrap();
    let warm = f.gov.simulate(&stricter, Format::Yaml, &options).unwrap();
    let uncached = vouch_query::Governance::with_simulation_cache(f.ledger.clone(), 0)
        .simulate(&stricter, Format::Yaml, &options)
        .unwrap();
    assert_eq!(cold, warm);
    assert_eq!(cold, uncached);
    assert_eq!(cold.evaluated, 3);
    // Decisions recorded after the first simulation are found and evaluated too.
    decide(&f, &b, p.request("allow-low-risk.json"));
    let later = f.gov.simulate(&stricter, Format::Yaml, &options).unwrap();
    assert_eq!(later.evaluated, 4);
    assert_eq!(later.last_index, Some(EntryIndex(4)));
    // A small cache keeps the newest decisions and still answers the same.
    let small = vouch_query::Governance::with_simulation_cache(f.ledger.clone(), 2);
    assert_eq!(
        small.simulate(&stricter, Format::Yaml, &options).unwrap(),
        later
    );
    assert_eq!(
        small.simulate(&stricter, Format::Yaml, &options).unwrap(),
        later
    );
}

#[test]
fn queries_filter_paginate_prove_and_answer_as_of() {
    let f = fixture();
    let p = pack(HRP);
    f.gov.publish(&p.bundle, Format::Yaml, false).unwrap();
    let b = BundleRef::Index(EntryIndex(0));
    f.clock.set_time("2025-06-03T10:00:30Z");
    let blocked = decide(&f, &b, p.request("block-one-approval.json"));
    f.clock.set_time("2025-06-03T10:06:00Z");
    f.gov
        .record_override(
            override_json(&blocked.id, "ovr-q", "rm-rosa").as_bytes(),
            false,
        )
        .unwrap();
    f.clock.set_time("2025-06-03T11:00:00Z");
    let allowed = decide(&f, &b, p.request("allow-security-and-manager.json"));
    f.clock.set_time("2025-06-04T09:00:00Z");
    let staging = decide(
        &f,
        &b,
        &with(p.request("skipped-staging.json"), "subject", json!("CHG-7")),
    );
    let low = decide(
        &f,
        &b,
        &with(p.request("allow-low-risk.json"), "subject", json!("CHG-8")),
    );
    f.ledger.checkpoint_now().unwrap();

    let q = |q: DecisionQuery| f.gov.query(&q).unwrap();
    let ids = |page: &vouch_query::governance::DecisionPage| -> Vec<EntryIndex> {
        page.decisions.iter().map(|d| d.index).collect()
    };
    let by_subject = q(DecisionQuery {
        subject: Some("CHG-1042".into()),
        ..DecisionQuery::default()
    });
    assert_eq!(ids(&by_subject), [blocked.index, allowed.index]);
    assert_eq!(by_subject.decisions[0].overrides.len(), 1);
    let by_outcome = q(DecisionQuery {
        outcome: Some(Outcome::Allow),
        ..DecisionQuery::default()
    });
    assert_eq!(ids(&by_outcome), [allowed.index, low.index]);
    let by_env = q(DecisionQuery {
        environment: Some("staging".into()),
        ..DecisionQuery::default()
    });
    assert_eq!(ids(&by_env), [staging.index]);
    let by_policy = q(DecisionQuery {
        policy: Some("high-risk-production".into()),
        ..DecisionQuery::default()
    });
    assert_eq!(ids(&by_policy), [blocked.index, allowed.index]);
    let combined = q(DecisionQuery {
        policy: Some("production-risk-label".into()),
        outcome: Some(Outcome::Allow),
        ..DecisionQuery::default()
    });
    assert_eq!(ids(&combined), [allowed.index, low.index]);
    // Time range on the recording time.
    let day4 = q(DecisionQuery {
        since: Some("2025-06-04T00:00:00Z".parse().unwrap()),
        ..DecisionQuery::default()
    });
    assert_eq!(ids(&day4), [staging.index, low.index]);
    let day3 = q(DecisionQuery {
        until: Some("2025-06-03T23:59:59Z".parse().unwrap()),
        ..DecisionQuery::default()
    });
    assert_eq!(ids(&day3), [blocked.index, allowed.index]);
    // Pagination with the cursor.
    let first = q(DecisionQuery {
        limit: 3,
        ..DecisionQuery::default()
    });
    assert_eq!(ids(&first), [blocked.index, allowed.index, staging.index]);
    assert_eq!(first.next, Some(staging.index));
    let second = q(DecisionQuery {
        limit: 3,
        after: first.next,
        ..DecisionQuery::default()
    });
    assert_eq!(ids(&second), [low.index]);
    assert_eq!(second.next, None);
    // Proofs against the latest checkpoint.
    let proved = q(DecisionQuery {
        with_proof: true,
        ..DecisionQuery::default()
    });
    assert_eq!(proved.decisions.len(), 4);
    for d in &proved.decisions {
        check_proof(&f, d.proof.as_ref().unwrap());
    }
    // As of a time: the latest decision per subject then, with the overrides recorded by then.
    let as_of = |t: &str| {
        q(DecisionQuery {
            subject: Some("CHG-1042".into()),
            as_of: Some(t.parse().unwrap()),
            ..DecisionQuery::default()
        })
    };
    let before_override = as_of("2025-06-03T10:03:00Z");
    assert_eq!(ids(&before_override), [blocked.index]);
    assert!(before_override.decisions[0].overrides.is_empty());
    let overridden = as_of("2025-06-03T10:30:00Z");
    assert_eq!(ids(&overridden), [blocked.index]);
    assert!(
        overridden.decisions[0]
            .override_in_force("2025-06-03T10:30:00Z".parse().unwrap())
            .is_some()
    );
    assert_eq!(ids(&as_of("2025-06-03T12:00:00Z")), [allowed.index]);
    assert!(ids(&as_of("2025-06-02T00:00:00Z")).is_empty());
    let everyone = q(DecisionQuery {
        as_of: Some("2025-06-05T00:00:00Z".parse().unwrap()),
        ..DecisionQuery::default()
    });
    assert_eq!(ids(&everyone), [allowed.index, staging.index, low.index]);
    assert_eq!(everyone.decisions[2].record.request.subject(), "CHG-8");
    let reversed = f.gov.query(&DecisionQuery {
        since: Some("2025-06-05T00:00:00Z".parse().unwrap()),
        until: Some("2025-06-04T00:00:00Z".parse().unwrap()),
        ..DecisionQuery::default()
    });
    assert!(reversed.is_err());
}

#[test]
fn a_deleted_index_is_rebuilt_from_the_log_with_the_same_answers() {
    let f = fixture();
    let p = pack(HRP);
    f.gov.publish(&p.bundle, Format::Yaml, false).unwrap();
    let b = BundleRef::Index(EntryIndex(0));
    let blocked = decide(&f, &b, p.request("block-one-approval.json"));
    f.gov
        .record_override(
            override_json(&blocked.id, "ovr-r", "rm-rosa").as_bytes(),
            false,
        )
        .unwrap();
    decide(&f, &b, p.request("allow-security-and-manager.json"));
    let query = DecisionQuery {
        outcome: Some(Outcome::Block),
        ..DecisionQuery::default()
    };
    let before: Vec<(EntryIndex, usize)> = f
        .gov
        .query(&query)
        .unwrap()
        .decisions
        .iter()
        .map(|d| (d.index, d.overrides.len()))
        .collect();
    assert_eq!(before, [(blocked.index, 1)]);
    let dir = f.ledger.dir().to_path_buf();
    let f = f.reopen_with(|| std::fs::remove_dir_all(dir.join("sled")).unwrap());
    let after: Vec<(EntryIndex, usize)> = f
        .gov
        .query(&query)
        .unwrap()
        .decisions
        .iter()
        .map(|d| (d.index, d.overrides.len()))
        .collect();
    assert_eq!(after, before);
    assert_eq!(
        f.gov
            .decision(&DecisionRef::Id(blocked.id.clone()), false)
            .unwrap()
            .index,
        blocked.index
    );
}

#[test]
fn the_index_survives_a_reopen() {
    let f = fixture();
    let p = pack(HRP);
    f.gov.publish(&p.bundle, Format::Yaml, false).unwrap();
    let d = decide(
        &f,
        &BundleRef::Index(EntryIndex(0)),
        p.request("block-one-approval.json"),
    );
    let f = f.reopen();
    let read = f
        .gov
        .decision(&DecisionRef::Id(d.id.clone()), false)
        .unwrap();
    assert_eq!(read.index, d.index);
    assert_eq!(
        f.gov
            .bundle(&BundleRef::Name("high-risk-production-release".into()))
            .unwrap()
            .index,
        EntryIndex(0)
    );
}
