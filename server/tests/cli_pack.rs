//! End-to-end tests of `vouch export-pack` and `vouch verify-pack` against a real
//! `vouch serve` child: a blocked decision with an exception and an override is exported to
//! a file and to standard output, verified offline as text and as JSON, and refused with the
//! failed check named and exit code 4 when tampered with, verified with another key or not a
//! pack at all; without a key, verify-pack is a usage error.
//!
//! Every command runs with a deadline and the server is killed if a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod policy_cli;

use policy_cli::*;
use serde_json::Value;
#[test]
fn export_a_pack_and_verify_it_offline() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    server
        .client(&["policy", "publish", &pack("bundle.yaml")])
        .code(0);
    let exception = write(
        dir.path(),
        "exception.json",
        r#"{"id": "EXC-7", "policy": "high-risk-production", "requirements": ["approvals"],
            "kind": "temporary", "owner_role": "EngineeringManager",
            "scope": {"repository": ["acme/payments"]}, "expires_at": "2025-06-04T12:00:00Z",
            "remediation_plan": "second reviewer back on Monday", "author": "alice",
            "approvers": [{"approver": "erin", "roles": ["EngineeringManager"]}]}"#,
    );
    server
        .client(&["exception", exception.to_str().unwrap()])
        .code(0);
    let decided = server
        .client(&[
            "decide",
            "--bundle",
            NAME,
            &pack("requests/block-one-approval.json"),
            "--json",
        ])
        .code(6)
        .json();
    let id = decided["decision_id"].as_str().unwrap().to_owned();
    let request = std::fs::read_to_string(pack("overrides/granted-release-manager.json")).unwrap();
    let mut request: Value = serde_json::from_str(&request).unwrap();
    request["decision"] = Value::String(id.clone());
    let request = write(dir.path(), "override.json", &request.to_string());
    server
        .client(&["override", request.to_str().unwrap()])
        .code(0);

    // Export to a file, then the same document to standard output.
    let file = dir.path().join("pack.json");
    let file = file.to_str().unwrap();
    let exported = server.client(&["export-pack", &id, "--out", file]).code(0);
    assert!(
        exported.stdout.starts_with(&format!(
            "wrote the proof pack of decision {id} (entry 2) to {file}\n"
        )),
        "{exported:#?}"
    );
    assert!(exported.stdout.contains("exceptions"), "{exported:#?}");
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.starts_with("{\n  \"format\": \"vouch.proof-pack.v1\",\n"));
    let json = server
        .client(&["export-pack", &id, "--out", file, "--json"])
        .code(0)
        .json();
    assert_eq!(json["decision_index"], 2);
    assert_eq!(json["exception_indexes"], serde_json::json!([1]));
    assert_eq!(json["override_indexes"], serde_json::json!([3]));
    let to_stdout = server.client(&["export-pack", "2"]).code(0);
    let pack_doc: Value = serde_json::from_str(&to_stdout.stdout).unwrap();
    assert_eq!(pack_doc["decision_id"], id.as_str());

    // Offline: no --server, only the key.
    let ok = run(&["verify-pack", file, "--vkey", &server.vkey]).code(0);
    let first = ok.stdout.lines().next().unwrap();
    assert_eq!(
        first,
        format!("verified: decision {id} (entry 2) of vouch.local/default: BLOCK")
    );
    for line in [
        "  ok  checkpoint         signature by vouch.local/default+",
        "  ok  leaf               decision: ",
        "  ok  inclusion          overrides[0]: entry 3 is in the tree of size ",
        "  ok  exception          exceptions[0]: entry 1 records exception EXC-7",
        "  ok  override           overrides[0]: entry 3 overrides this decision: granted by rm-rosa",
        "  ok  replay             decision: evaluating the snapshot with the bundle gives the recorded evaluation byte for byte: BLOCK",
        "outcome:    BLOCK",
        "overrides:  entry 3: granted by rm-rosa until 2025-06-03T20:00:00Z",
    ] {
        assert!(
            ok.stdout.lines().any(|l| l.starts_with(line)),
            "no line starts with {line:?}: {ok:#?}"
        );
    }
    let json = run(&["verify-pack", file, "--vkey", &server.vkey, "--json"])
        .code(0)
        .json();
    assert_eq!(json["verified"], true);
    assert_eq!(json["outcome"], "BLOCK");
    assert_eq!(json["overrides"][0]["status"], "granted");
    assert_eq!(json["exceptions"][0]["id"], "EXC-7");
    assert_eq!(json["checks"].as_array().unwrap().len(), 19);
    run(&[
        "verify-pack",
        file,
        "--vkey",
        &server.vkey,
        "--origin",
        "vouch.local/default",
    ])
    .code(0);

    // Failures: each names its check, exit code 4.
    let tampered = write(
        dir.path(),
        "tampered.json",
        &text.replacen("\"index\": 3,", "\"index\": 4,", 1),
    );
    let failed = run(&[
        "verify-pack",
        tampered.to_str().unwrap(),
        "--vkey",
        &server.vkey,
        "--json",
    ])
    .code(4);
    assert_eq!(failed.json()["error"]["check"], "leaf");
    assert!(
        failed.stderr.contains(
            "error: verification failed: leaf: overrides[0]: the envelope is entry 3, not entry 4"
        ),
        "{failed:#?}"
    );
    let other_key = run(&["keygen", "--name", "vouch.local/default", "--json"])
        .code(0)
        .json()["verifier_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let failed = run(&["verify-pack", file, "--vkey", &other_key]).code(4);
    assert!(
        failed
            .stderr
            .contains("verification failed: checkpoint: note has no verifiable signatures"),
        "{failed:#?}"
    );
    let failed = run(&[
        "verify-pack",
        file,
        "--vkey",
        &server.vkey,
        "--origin",
        "vouch.local/other",
    ])
    .code(4);
    assert!(
        failed.stderr.contains("verification failed: origin: "),
        "{failed:#?}"
    );
    let not_a_pack = write(
        dir.path(),
        "x.json",
        "{\"format\": \"vouch.proof-pack.v1\"}",
    );
    let failed = run(&[
        "verify-pack",
        not_a_pack.to_str().unwrap(),
        "--vkey",
        &server.vkey,
        "--json",
    ])
    .code(4);
    assert_eq!(failed.json()["error"]["check"], "file");
    assert!(
        failed.stderr.contains("field origin: missing"),
        "{failed:#?}"
    );
    // The pack's own keys are never trusted: a key must be given.
    let usage = run(&["verify-pack", file]).code(2);
    assert!(usage.stderr.contains("no verifier key"), "{usage:#?}");
    run(&[
        "verify-pack",
        "/nonexistent/pack.json",
        "--vkey",
        &server.vkey,
    ])
    .code(1);
    // Export errors come from the server.
    let missing = server
        .client(&["export-pack", &format!("sha256:{}", "0".repeat(64))])
        .code(5);
    assert!(
        missing.stderr.contains("not found: decision: no decision"),
        "{missing:#?}"
    );
    server.client(&["export-pack", "not-an-id"]).code(2);
}
