//! End-to-end tests of `vouch monitor` against real `vouch serve` children: following a
//! ledger across runs with the state file, catching a fork and a rollback after the history
//! was rewritten behind the monitor's back, refusing checkpoints that no trusted key signed,
//! refusing corrupt state files, and reporting decisions that match watch filters.
//!
//! Every command runs with a deadline and every child is killed when a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod vouch_process;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use vouch_process::{Output, Running, Server, copy_dir, run};

/// Runs `vouch monitor` against `server` with its verifier key and `state`.
fn monitor(server: &Server, state: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "monitor",
        "--server",
        server.url.as_str(),
        "--vkey",
        server.vkey.as_str(),
        "--state",
        state.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run(&args)
}

fn state_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The one JSON line of a run that printed one checkpoint line.
#[track_caller]
fn only_line(out: &Output) -> Value {
    let lines = out.json_lines();
    assert_eq!(lines.len(), 1, "{out:#?}");
    lines.into_iter().next().unwrap()
}

#[test]
fn a_monitor_follows_a_server_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let state = dir.path().join("monitor.json");
    let server = Server::start(&data, &[]);

    // The first run trusts the latest checkpoint and creates the state file.
    let first = monitor(&server, &state, &["--once", "--json"]).code(0);
    let line = only_line(&first);
    assert_eq!(line["event"], "checkpoint");
    assert_eq!(line["status"], "first");
    assert_eq!(line["ledger"], "default");
    let saved = state_json(&state);
    assert_eq!(saved["format"], "vouch-monitor-state");
    assert_eq!(saved["version"], 1);
    assert_eq!(saved["tree_size"], line["tree_size"]);
    assert_eq!(saved["frontier"], Value::Null);

    for i in 0..3 {
        server.append(&format!("entry {i}"));
    }
    // The second run proves the new checkpoint consistent with the saved one and, with
    // --entries, rebuilds the tree from entry 0; the state then keeps the frontier.
    let second = monitor(&server, &state, &["--once", "--entries", "--json"]).code(0);
    let line = only_line(&second);
    assert_eq!(line["status"], "grew");
    assert_eq!(line["tree_size"], 3);
    assert_eq!(line["entries"], "rebuilt");
    let saved = state_json(&state);
    assert_eq!(saved["tree_size"], 3);
    assert_eq!(saved["root_hash"], line["root_hash"]);
    assert_eq!(saved["frontier"].as_array().unwrap().len(), 2);

    // Following WatchCheckpoints: the latest first, then each new one, with consistency
    // proofs and the new entries only; --max-checkpoints ends the run.
    let mut follow = Running::spawn(&[
        "monitor",
        "--server",
        &server.url,
        "--vkey",
        &server.vkey,
        "--state",
        state.to_str().unwrap(),
        "--entries",
        "--max-checkpoints",
        "3",
        "--duration",
        "60s",
    ]);
    let unchanged = follow.line();
    assert!(
        unchanged.contains(" checkpoint ledger=default tree_size=3 "),
        "{unchanged}"
    );
    assert!(unchanged.contains(" status=unchanged "), "{unchanged}");
    server.append("entry 3");
    let grew = follow.line();
    assert!(
        grew.contains(" status=grew old_size=3 consistency=verified entries=rebuilt"),
        "{grew}"
    );
    server.append("entry 4");
    let grew = follow.line();
    assert!(grew.contains(" old_size=4 "), "{grew}");
    assert_eq!(follow.exit_code(), 0, "{}", follow.stderr());
    assert_eq!(state_json(&state)["tree_size"], 5);

    // Polling, bounded by --duration: one line, the unchanged latest checkpoint.
    let polled = monitor(
        &server,
        &state,
        &["--poll", "100ms", "--duration", "1s", "--json"],
    )
    .code(0);
    let line = only_line(&polled);
    assert_eq!(line["status"], "unchanged");
    assert_eq!(line["tree_size"], 5);

    // A restarted server (it signs a final checkpoint on the way down) is still the same log.
    server.stop();
    let server = Server::start(&data, &[]);
    server.append("entry 5");
    let after = monitor(&server, &state, &["--once"]).code(0);
    assert!(
        after
            .stdout
            .contains(" status=grew old_size=5 consistency=verified entries=not-checked"),
        "{after:#?}"
    );
    let saved = state_json(&state);
    assert_eq!(saved["tree_size"], 6);
    // Without --entries the frontier cannot follow, so it is dropped.
    assert_eq!(saved["frontier"], Value::Null);
    assert!(!dir.path().join("monitor.json.tmp").exists());
}

/// Waits until the server's latest checkpoint covers `size` entries.
fn wait_for_checkpoint(server: &Server, size: u64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = server.client(&["checkpoint", "--json"]).code(0);
        let cp: Value = serde_json::from_str(&out.stdout).unwrap();
        if cp["tree_size"].as_u64() == Some(size) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint of size {size}: {out:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_rewritten_history_is_reported_as_a_fork_or_a_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let state = dir.path().join("monitor.json");

    // A backup taken at two entries: the same ledger, the same signing key.
    let server = Server::start(&data, &[]);
    server.append("a0");
    server.append("a1");
    server.stop();
    let backup = dir.path().join("backup");
    copy_dir(&data, &backup);

    // The real history grows to four entries, and the monitor saves that checkpoint.
    let server = Server::start(&data, &[]);
    server.append("a2");
    server.append("a3");
    let seen = monitor(&server, &state, &["--once", "--json"]).code(0);
    assert_eq!(only_line(&seen)["tree_size"], 4);
    let verified = std::fs::read(&state).unwrap();
    let vkey = server.vkey.clone();
    server.stop();

    // Rollback: the backup is served in its place.
    let rolled_back = dir.path().join("rolled-back");
    copy_dir(&backup, &rolled_back);
    let server = Server::start(&rolled_back, &[]);
    assert_eq!(server.vkey, vkey, "the same signing key");
    let out = monitor(&server, &state, &["--once"]).code(7);
    assert!(
        out.stdout.contains(
            " ALERT rollback ledger=default: rollback: the server's checkpoint has tree size 2, smaller than the tree size 4 verified before"
        ),
        "{out:#?}"
    );
    assert!(
        out.stderr.starts_with("ALERT rollback: ledger default: "),
        "{out:#?}"
    );
    assert_eq!(
        std::fs::read(&state).unwrap(),
        verified,
        "the state is kept"
    );
    server.stop();

    // Fork at the same size: the backup with two other entries appended.
    let server = Server::start(&backup, &[]);
    server.append("b2");
    server.append("b3");
    wait_for_checkpoint(&server, 4);
    let out = monitor(&server, &state, &["--once", "--json"]).code(7);
    let alert = only_line(&out);
    assert_eq!(alert["event"], "alert");
    assert_eq!(alert["alert"], "fork");
    assert_eq!(alert["exit_code"], 7);
    assert!(
        alert["message"]
            .as_str()
            .unwrap()
            .starts_with("fork: two signed checkpoints of tree size 4 with different roots"),
        "{alert}"
    );
    // The evidence: both signed checkpoints.
    let kept: Value = serde_json::from_slice(&verified).unwrap();
    assert_eq!(alert["verified_checkpoint"], kept["checkpoint"]);
    assert!(
        alert["server_checkpoint"]
            .as_str()
            .unwrap()
            .starts_with("vouch.local/default\n4\n"),
        "{alert}"
    );
    assert_eq!(std::fs::read(&state).unwrap(), verified);

    // The forked log grows past the verified size: no consistency proof can join them.
    server.append("b4");
    wait_for_checkpoint(&server, 5);
    let out = monitor(&server, &state, &["--once"]).code(7);
    assert!(
        out.stdout.contains(
            " ALERT inconsistent ledger=default: fork: the server's checkpoint of tree size 5 does not extend the one of tree size 4 verified before: the consistency proof fails"
        ),
        "{out:#?}"
    );
    // Following catches it the same way, with the same exit code.
    let mut follow = Running::spawn(&[
        "monitor",
        "--server",
        &server.url,
        "--vkey",
        &server.vkey,
        "--state",
        state.to_str().unwrap(),
        "--duration",
        "60s",
    ]);
    assert!(follow.line().contains(" ALERT inconsistent "));
    assert_eq!(follow.exit_code(), 7);
    assert_eq!(std::fs::read(&state).unwrap(), verified);
    server.stop();

    // The real history still passes.
    let server = Server::start(&data, &[]);
    monitor(&server, &state, &["--once"]).code(0);
}

#[test]
fn checkpoints_no_trusted_key_signed_are_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let state = dir.path().join("monitor.json");

    // A key of the same name that did not sign the checkpoints.
    let key = dir.path().join("other.key");
    let keygen = run(&[
        "keygen",
        "--name",
        "vouch.local/default",
        "--out",
        key.to_str().unwrap(),
        "--json",
    ])
    .code(0);
    let keygen: Value = serde_json::from_str(&keygen.stdout).unwrap();
    let other = keygen["verifier_key"].as_str().unwrap();
    assert_ne!(other, server.vkey);
    let out = run(&[
        "monitor",
        "--server",
        &server.url,
        "--vkey",
        other,
        "--state",
        state.to_str().unwrap(),
        "--once",
    ])
    .code(4);
    assert!(
        out.stdout.contains(" ALERT bad-signature ledger=default: the server's checkpoint does not verify with the trusted keys: the checkpoint of tree size 0: "),
        "{out:#?}"
    );
    assert!(!state.exists(), "nothing was verified, so nothing is saved");

    // Following reports it too.
    let out = run(&[
        "monitor",
        "--server",
        &server.url,
        "--vkey",
        other,
        "--state",
        state.to_str().unwrap(),
        "--duration",
        "30s",
        "--json",
    ])
    .code(4);
    assert_eq!(only_line(&out)["alert"], "bad-signature");

    // A state file saved under the right key is refused with only the wrong key trusted.
    monitor(&server, &state, &["--once"]).code(0);
    let out = run(&[
        "monitor",
        "--server",
        &server.url,
        "--vkey",
        other,
        "--state",
        state.to_str().unwrap(),
        "--once",
    ])
    .code(1);
    assert!(
        out.stderr
            .contains("its checkpoint does not verify with the trusted keys"),
        "{out:#?}"
    );

    // No key, or a malformed one, is a usage error.
    let out = run(&[
        "monitor",
        "--server",
        &server.url,
        "--state",
        "x.json",
        "--once",
    ])
    .code(2);
    assert!(out.stderr.contains("no verifier key"), "{out:#?}");
    run(&[
        "monitor",
        "--server",
        &server.url,
        "--vkey",
        "nonsense",
        "--state",
        "x.json",
        "--once",
    ])
    .code(2);
}

#[test]
fn corrupt_or_unknown_state_files_are_errors_and_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let state = dir.path().join("monitor.json");
    monitor(&server, &state, &["--once"]).code(0);
    let good = std::fs::read_to_string(&state).unwrap();

    let cases = [
        (String::new(), "is corrupt: not JSON"),
        (good[..good.len() / 2].to_owned(), "is corrupt: not JSON"),
        (
            good.replace("\"version\": 1", "\"version\": 2"),
            "has version 2, but this vouch reads version 1 only",
        ),
        (
            good.replace("\"tree_size\": 0", "\"tree_size\": 1"),
            "is corrupt: the signed checkpoint says origin",
        ),
    ];
    for (text, expected) in cases {
        std::fs::write(&state, &text).unwrap();
        let out = monitor(&server, &state, &["--once"]).code(1);
        assert!(
            out.stderr
                .contains(&format!("state file {}", state.display())),
            "{out:#?}"
        );
        assert!(out.stderr.contains(expected), "{expected:?}: {out:#?}");
        assert!(out.stdout.is_empty(), "{out:#?}");
        assert_eq!(
            std::fs::read_to_string(&state).unwrap(),
            text,
            "left as it was"
        );
    }
    // With --json the error is a JSON object too.
    std::fs::write(&state, "{}").unwrap();
    let out = monitor(&server, &state, &["--once", "--json"]).code(1);
    let error = only_line(&out);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is corrupt"),
        "{error}"
    );

    // A state file in use by another monitor.
    std::fs::write(&state, &good).unwrap();
    let lock = std::fs::File::create(dir.path().join("monitor.json.lock")).unwrap();
    lock.try_lock().unwrap();
    let out = monitor(&server, &state, &["--once"]).code(1);
    assert!(
        out.stderr
            .contains("another monitor is using the state file"),
        "{out:#?}"
    );
    drop(lock);
    monitor(&server, &state, &["--once"]).code(0);

    // A state file of another ledger.
    server.client(&["ledger", "create", "other"]).code(0);
    let out = monitor(&server, &state, &["--once", "--ledger", "other"]).code(1);
    assert!(
        out.stderr
            .contains("follows ledger \"default\", not \"other\""),
        "{out:#?}"
    );
}

fn pack(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/policies/high-risk-production")
        .join(path)
        .to_str()
        .unwrap()
        .to_owned()
}

#[test]
fn watch_filters_report_matching_decisions_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let state = dir.path().join("monitor.json");
    monitor(&server, &state, &["--once"]).code(0);

    // Entry 0 publishes the bundle; entry 1 is BLOCK, entry 2 ALLOW, both about CHG-1042.
    server
        .client(&["policy", "publish", &pack("bundle.yaml")])
        .code(0);
    let bundle = "high-risk-production-release";
    server
        .client(&[
            "decide",
            "--bundle",
            bundle,
            &pack("requests/block-one-approval.json"),
        ])
        .code(6);
    server
        .client(&[
            "decide",
            "--bundle",
            bundle,
            &pack("requests/allow-security-and-manager.json"),
        ])
        .code(0);
    wait_for_checkpoint(&server, 3);

    // Without --entries: the new entries are read and each match proved included.
    let out = monitor(
        &server,
        &state,
        &["--once", "--watch-outcome", "block", "--json"],
    )
    .code(0);
    let lines = out.json_lines();
    assert_eq!(lines.len(), 2, "{out:#?}");
    assert_eq!(lines[0]["event"], "checkpoint");
    assert_eq!(lines[0]["tree_size"], 3);
    let m = &lines[1];
    assert_eq!(m["event"], "match");
    assert_eq!(m["index"], 1);
    assert_eq!(m["outcome"], "BLOCK");
    assert_eq!(m["subject"], "CHG-1042");
    assert_eq!(m["environment"], "production");
    assert_eq!(m["proof"], "inclusion");
    assert!(
        m["decision_id"].as_str().unwrap().starts_with("sha256:"),
        "{m}"
    );
    // Reported once: the next run has nothing new.
    let again = monitor(
        &server,
        &state,
        &["--once", "--watch-outcome", "block", "--json"],
    )
    .code(0);
    assert_eq!(again.json_lines().len(), 1, "{again:#?}");

    // A new state with --entries reads the ledger from entry 0, so both decisions match
    // the policy filter, and the subject filter narrows to the same decisions; text lines.
    let fresh = dir.path().join("fresh.json");
    let out = monitor(
        &server,
        &fresh,
        &[
            "--once",
            "--entries",
            "--watch-policy",
            "high-risk-production",
            "--watch-subject",
            "CHG-1042",
        ],
    )
    .code(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{out:#?}");
    assert!(
        lines[0].contains(" checkpoint ledger=default tree_size=3 "),
        "{out:#?}"
    );
    assert!(
        lines[1].contains(
            " match ledger=default index=1 outcome=BLOCK subject=CHG-1042 environment=production "
        ),
        "{out:#?}"
    );
    assert!(lines[1].ends_with(" proof=rebuilt"), "{out:#?}");
    assert!(lines[2].contains(" index=2 outcome=ALLOW "), "{out:#?}");
}
