//! End-to-end tests of the `vouch` policy subcommands against a real `vouch serve` child:
//! lint (through the server and offline), publish, evaluate, decide with a proof file that
//! `vouch verify` checks offline, override, exception, replay, simulate and decisions, with
//! their text and JSON output and their exit codes.
//!
//! Every command runs with a deadline and the server is killed if a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod policy_cli;

use std::time::Duration;

use policy_cli::*;
#[test]
fn lint_publish_decide_replay_and_query_through_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let bundle = pack("bundle.yaml");
    let typo = write(
        dir.path(),
        "typo.yaml",
        &std::fs::read_to_string(&bundle)
            .unwrap()
            .replace("Security: 1", "Securty: 1"),
    );
    let typo = typo.to_str().unwrap();

    // Lint, through the server and offline: the same findings, `file:line:col: …`.
    let ok = server.client(&["policy", "lint", &bundle]).code(0);
    assert!(
        ok.stdout
            .contains(&format!("bundle {NAME} compiles to sha256:")),
        "{ok:#?}"
    );
    let bad = server.client(&["policy", "lint", typo]).code(1);
    let first = bad.stdout.lines().next().unwrap();
    assert_eq!(
        first,
        format!(
            "{typo}:25:11: error undeclared-role: role \"Securty\" is not declared in roles; did you mean \"Security\"? (at policies[0].require.approvals.roles.Securty)"
        )
    );
    let offline = run(&["policy", "lint", "--offline", typo]).code(1);
    assert_eq!(offline.stdout, bad.stdout);
    let json = server.client(&["policy", "lint", typo, "--json"]).code(1);
    let files = json.json();
    assert_eq!(files["files"][0]["compiles"], false);
    assert_eq!(files["files"][0]["findings"][0]["line"], 25);
    assert!(json.stderr.contains("lint errors in"), "{json:#?}");

    // Publish: once, then again without appending.
    let published = server
        .client(&["policy", "publish", &bundle, "--json"])
        .code(0);
    let published = published.json();
    let hash = published["bundles"][0]["hash"].as_str().unwrap().to_owned();
    assert_eq!(published["bundles"][0]["index"], 0);
    assert_eq!(published["bundles"][0]["duplicate"], false);
    let again = server.client(&["policy", "publish", &bundle]).code(0);
    assert!(
        again.stdout.contains("was published before as entry 0"),
        "{again:#?}"
    );
    let refused = server.client(&["policy", "publish", typo]).code(5);
    assert!(
        refused.stderr.contains("(line 25, column 11)"),
        "{refused:#?}"
    );
    let shown = server.client(&["policy", "show", NAME]).code(0);
    assert!(shown.stdout.contains(&hash), "{shown:#?}");
    assert!(
        shown
            .stdout
            .contains("policies:  high-risk-production, production-risk-label"),
        "{shown:#?}"
    );
    let listed = server.client(&["policy", "list", "--json"]).code(0).json();
    assert_eq!(listed["bundles"][0]["hash"], hash.as_str());

    // Evaluate records nothing and exits 6 on BLOCK.
    let evaluated = server
        .client(&[
            "policy",
            "evaluate",
            "--bundle",
            NAME,
            &pack("requests/block-one-approval.json"),
            &pack("requests/allow-low-risk.json"),
        ])
        .code(6);
    assert!(
        evaluated
            .stdout
            .contains("block-one-approval.json: BLOCK (not recorded)"),
        "{evaluated:#?}"
    );
    assert!(
        evaluated
            .stdout
            .contains("allow-low-risk.json: ALLOW (not recorded)"),
        "{evaluated:#?}"
    );

    // Decide: BLOCK (exit 6) with a proof file that verifies offline; ALLOW (exit 0).
    let proof = dir.path().join("decision-proof.json");
    let blocked = server
        .client(&[
            "decide",
            "--bundle",
            &hash,
            &pack("requests/block-one-approval.json"),
            "--proof-out",
            proof.to_str().unwrap(),
            "--json",
        ])
        .code(6);
    let blocked = blocked.json();
    assert_eq!(blocked["outcome"], "BLOCK");
    assert_eq!(blocked["index"], 1);
    assert_eq!(blocked["reasons"][0]["code"], "approvals-insufficient");
    assert_eq!(blocked["record"]["request"]["subject"], "CHG-1042");
    let id = blocked["decision_id"].as_str().unwrap().to_owned();
    let verified = run(&[
        "verify",
        "inclusion",
        proof.to_str().unwrap(),
        "--vkey",
        &server.vkey,
    ])
    .code(0);
    assert!(
        verified
            .stdout
            .contains("verified: entry 1 is in ledger default"),
        "{verified:#?}"
    );
    assert!(
        verified.stdout.contains("a decision entry, index 1"),
        "{verified:#?}"
    );
    let allowed = server
        .client(&[
            "decide",
            "--bundle",
            NAME,
            &pack("requests/allow-security-and-manager.json"),
        ])
        .code(0);
    assert!(
        allowed.stdout.starts_with("ALLOW: recorded as entry 2"),
        "{allowed:#?}"
    );
    let bad_request = write(
        dir.path(),
        "bad.json",
        "{\"subject\": \"x\",\n \"environment\": 3}",
    );
    let refused = server
        .client(&["decide", "--bundle", NAME, bad_request.to_str().unwrap()])
        .code(5);
    assert!(
        refused.stderr.contains("(line 2, column 17)"),
        "{refused:#?}"
    );

    // An override of the blocked decision, and an exception.
    let request = std::fs::read_to_string(pack("overrides/granted-release-manager.json"))
        .unwrap()
        .replace("@requests/block-one-approval.json", &id);
    let override_file = write(dir.path(), "override.json", &request);
    let granted = server
        .client(&["override", override_file.to_str().unwrap()])
        .code(0);
    assert!(
        granted
            .stdout
            .starts_with("override granted: recorded as entry 3"),
        "{granted:#?}"
    );
    let exception = write(
        dir.path(),
        "exception.json",
        r#"{"id": "EXC-1", "policy": "high-risk-production", "kind": "temporary",
            "owner_role": "EngineeringManager", "expires_at": "2025-07-01T00:00:00Z",
            "remediation_plan": "hire", "author": "alice", "approvers": [{"approver": "erin"}]}"#,
    );
    let recorded = server
        .client(&["exception", exception.to_str().unwrap(), "--json"])
        .code(0)
        .json();
    assert_eq!(recorded["exception_id"], "EXC-1");
    assert_eq!(recorded["index"], 4);

    // Replay, by id and by index.
    let replayed = server.client(&["replay", &id]).code(0);
    assert!(
        replayed.stdout.contains("replays identically: BLOCK"),
        "{replayed:#?}"
    );
    let replayed = server.client(&["replay", "2", "--json"]).code(0).json();
    assert_eq!(replayed["matches"], true);
    assert_eq!(replayed["replayed_outcome"], "ALLOW");
    server.client(&["replay", "999"]).code(5);
    server.client(&["replay", "not-a-decision"]).code(2);

    // Simulate a stricter candidate: the ALLOW would now be blocked.
    let stricter = write(
        dir.path(),
        "stricter.yaml",
        &std::fs::read_to_string(&bundle)
            .unwrap()
            .replace("        min: 2\n", "        min: 3\n"),
    );
    let simulated = server
        .client(&[
            "policy",
            "simulate",
            stricter.to_str().unwrap(),
            "--last",
            "10",
            "--json",
        ])
        .code(0)
        .json();
    assert_eq!(simulated["evaluated"], 2);
    assert_eq!(simulated["would_newly_block"], 1);
    assert_eq!(simulated["delta"], 1);
    assert_eq!(simulated["newly_blocked"][0]["index"], 2);

    // Decisions: filters, pagination, proofs, as of a time.
    std::thread::sleep(Duration::from_millis(300)); // a checkpoint covers every entry
    let all = server.client(&["decisions", "--json"]).code(0).json();
    assert_eq!(all["decisions"].as_array().unwrap().len(), 2);
    assert_eq!(all["decisions"][0]["overrides"][0]["status"], "granted");
    let blocked_only = server
        .client(&[
            "decisions",
            "--subject",
            "CHG-1042",
            "--outcome",
            "block",
            "--with-proof",
        ])
        .code(0);
    let lines: Vec<&str> = blocked_only.stdout.lines().collect();
    assert!(lines[0].starts_with("1  "), "{blocked_only:#?}");
    assert!(
        lines[0].contains("(override granted at entry 3 until 2025-06-03T20:00:00Z)"),
        "{blocked_only:#?}"
    );
    assert!(lines[0].contains("proof: "), "{blocked_only:#?}");
    let page = server
        .client(&["decisions", "--limit", "1", "--json"])
        .code(0)
        .json();
    assert_eq!(page["next_cursor"], 1);
    let next = server
        .client(&["decisions", "--limit", "1", "--after", "1", "--json"])
        .code(0)
        .json();
    assert_eq!(next["decisions"][0]["index"], 2);
    let as_of = server
        .client(&[
            "decisions",
            "--subject",
            "CHG-1042",
            "--as-of",
            "2100-01-01T00:00:00Z",
            "--json",
        ])
        .code(0)
        .json();
    assert_eq!(as_of["decisions"].as_array().unwrap().len(), 1);
    assert_eq!(as_of["decisions"][0]["outcome"], "ALLOW");
    let none = server
        .client(&["decisions", "--environment", "staging"])
        .code(0);
    assert!(
        none.stdout.is_empty() && none.stderr.contains("no decisions match"),
        "{none:#?}"
    );
    let bad_time = server
        .client(&["decisions", "--since", "yesterday"])
        .code(5);
    assert!(
        bad_time.stderr.contains("not an RFC 3339 time"),
        "{bad_time:#?}"
    );
}

#[test]
fn simulating_the_last_zero_decisions_is_a_usage_error() {
    // On the wire 0 means "not set" (the default, 1000); on the command line it is refused
    // rather than read as the default.
    let out = run(&[
        "--server",
        "http://127.0.0.1:9",
        "policy",
        "simulate",
        "--last",
        "0",
        &pack("bundle.yaml"),
    ]);
    assert_eq!(out.code, 2, "{out:#?}");
    assert!(out.stderr.contains("--last"), "{out:#?}");
}

#[test]
fn policy_commands_without_a_server_exit_with_the_connection_code() {
    let out = run(&[
        "--server",
        "http://127.0.0.1:9",
        "decide",
        "--bundle",
        NAME,
        &pack("requests/allow-low-risk.json"),
    ]);
    assert_eq!(out.code, 3, "{out:#?}");
    let out = run(&["--server", "http://127.0.0.1:9", "decisions", "--json"]);
    assert_eq!(out.code, 3, "{out:#?}");
    assert_eq!(out.json()["error"]["kind"], "connection");
    // Offline lint needs no server.
    run(&[
        "--server",
        "http://127.0.0.1:9",
        "policy",
        "lint",
        "--offline",
        &pack("bundle.yaml"),
    ])
    .code(0);
}
