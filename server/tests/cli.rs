//! End-to-end tests of the `vouch` binary: a real server as a child process, the client
//! subcommands against it, offline verification of the proof files they write, the offline
//! ledger audit, and the exit codes.
//!
//! Every command runs with a deadline and the server is killed if a test fails, so the suite
//! stays bounded in time.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

mod vouch_process;

use vouch_process::{COMMAND_DEADLINE, Output, command, run, run_with_input, wait};

/// A `vouch serve` child process, killed when dropped.
struct Server {
    child: Child,
    url: String,
    vkey: String,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    fn start(data_dir: &Path) -> Self {
        Self::start_with(&[
            "serve",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--checkpoint-every-ms",
            "100",
        ])
    }

    fn start_with(args: &[&str]) -> Self {
        let mut child = command(args)
            .env("VOUCH_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vouch serve");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        // Read the startup block on a thread, so a server that never prints cannot hang us.
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Self {
            child,
            url: String::new(),
            vkey: String::new(),
            stderr,
        };
        let deadline = Instant::now() + COMMAND_DEADLINE;
        while server.url.is_empty() || server.vkey.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "no startup block from vouch serve; stderr:\n{}",
                    server.stderr.lock().unwrap()
                )
            });
            if let Some(url) = line.trim().strip_prefix("grpc:") {
                url.trim().clone_into(&mut server.url);
            }
            if let Some(vkey) = line.trim().strip_prefix("verifier key:") {
                vkey.trim().clone_into(&mut server.vkey);
            }
        }
        assert!(
            server.url.starts_with("http://127.0.0.1:"),
            "{}",
            server.url
        );
        server
    }

    /// Runs a client subcommand against this server.
    fn client(&self, args: &[&str]) -> Output {
        let mut all = vec!["--server", self.url.as_str()];
        all.extend_from_slice(args);
        run(&all)
    }

    /// Sends SIGTERM and returns the exit status.
    fn terminate(mut self) -> ExitStatus {
        let kill = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(kill.success());
        let status = wait(&mut self.child, COMMAND_DEADLINE);
        status.unwrap_or_else(|| {
            panic!(
                "vouch serve did not stop on SIGTERM; stderr:\n{}",
                self.stderr.lock().unwrap()
            )
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Flips the last hex digit of the first path hash of a proof file.
fn tamper_path(proof: &str) -> String {
    let mut value: Value = serde_json::from_str(proof).unwrap();
    let first = value["path"][0].as_str().unwrap().to_owned();
    let last = if first.ends_with('0') { "1" } else { "0" };
    value["path"][0] = Value::from(format!("{}{last}", &first[..63]));
    serde_json::to_string_pretty(&value).unwrap()
}

#[test]
fn serve_append_prove_verify_and_audit() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start(&data);
    let vkey = server.vkey.clone();

    // Append: text, JSON output, standard input, and waiting for a checkpoint.
    let out = server.client(&["append", "hello"]).ok();
    assert!(out.stdout.starts_with("appended entry 0\n"), "{out:#?}");
    let out = server
        .client(&[
            "append",
            "--json",
            "--content-type",
            "application/json",
            "--key",
            "k1",
            "{\"a\":1}",
        ])
        .ok();
    let receipt = out.json();
    assert_eq!(receipt["index"], 1);
    assert_eq!(receipt["duplicate"], false);
    assert_eq!(receipt["leaf_hash"].as_str().unwrap().len(), 64);
    let again = server
        .client(&[
            "append",
            "--json",
            "--content-type",
            "application/json",
            "--key",
            "k1",
            "{\"a\":1}",
        ])
        .ok()
        .json();
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["index"], 1);
    let mut all = vec!["--server", server.url.as_str(), "append", "-"];
    all.push("--content-type");
    all.push("text/plain");
    run_with_input(&all, b"from stdin").ok();
    let waited = server
        .client(&["append", "--wait-checkpoint", "--json", "fourth"])
        .ok()
        .json();
    assert_eq!(waited["index"], 3);
    let covered = waited["checkpoint"]["tree_size"].as_u64().unwrap();
    assert!(covered >= 4, "{waited}");
    assert_eq!(waited["inclusion_proof"]["index"], 3);
    let text = server
        .client(&["append", "--wait-checkpoint", "fifth"])
        .ok();
    assert!(
        text.stdout.contains("\n  checkpoint: tree size "),
        "{text:#?}"
    );

    // Read back.
    let entry = server.client(&["get", "1", "--json"]).ok().json();
    assert_eq!(entry["content_type"], "application/json");
    assert_eq!(entry["idempotency_key"], "k1");
    assert_eq!(entry["payload"], "eyJhIjoxfQ==");
    assert_eq!(entry["leaf_hash"], receipt["leaf_hash"]);
    let text = server.client(&["get", "0"]).ok();
    assert!(text.stdout.contains("\"hello\""), "{text:#?}");
    let raw = server.client(&["get", "2", "--payload"]).ok();
    assert_eq!(raw.stdout, "from stdin");
    let listed = server.client(&["entries"]).ok();
    assert_eq!(listed.stdout.lines().count(), 5, "{listed:#?}");
    let streamed = server
        .client(&["entries", "--start", "1", "--end", "3", "--json"])
        .ok();
    let indexes: Vec<u64> = streamed
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["index"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(indexes, [1, 2]);
    let ledgers = server.client(&["ledger", "list", "--json"]).ok().json();
    assert_eq!(ledgers["ledgers"][0]["name"], "default");
    assert_eq!(ledgers["ledgers"][0]["verifier_keys"][0], vkey.as_str());

    // The checkpoint note verifies offline, from a file and from standard input.
    let note = server.client(&["checkpoint"]).ok().stdout;
    assert!(note.starts_with("vouch.local/default\n"), "{note}");
    let note_file = write(tmp.path(), "checkpoint.note", &note);
    run(&[
        "verify",
        "checkpoint",
        note_file.to_str().unwrap(),
        "--vkey",
        &vkey,
    ])
    .ok();
    run_with_input(
        &["verify", "checkpoint", "-", "--vkey", &vkey],
        note.as_bytes(),
    )
    .ok();
    let cp_file = server.client(&["checkpoint", "--json"]).ok().stdout;
    let cp_path = write(tmp.path(), "checkpoint.json", &cp_file);
    let checked = run(&[
        "verify",
        "checkpoint",
        cp_path.to_str().unwrap(),
        "--vkey",
        &vkey,
        "--json",
    ])
    .ok()
    .json();
    assert_eq!(checked["verified"], true);

    // Inclusion: prove, verify offline, and fail on a tampered copy or a wrong key.
    let proof = server
        .client(&["prove", "inclusion", "--index", "1", "--json"])
        .ok()
        .stdout;
    let parsed: Value = serde_json::from_str(&proof).unwrap();
    assert_eq!(parsed["format"], "vouch.inclusion-proof.v1");
    assert_eq!(parsed["leaf_hash"], receipt["leaf_hash"]);
    let proof_path = write(tmp.path(), "inclusion.json", &proof);
    let verified = run(&[
        "verify",
        "inclusion",
        proof_path.to_str().unwrap(),
        "--vkey",
        &vkey,
    ])
    .ok();
    assert!(
        verified
            .stdout
            .starts_with("verified: entry 1 is in ledger default"),
        "{verified:#?}"
    );
    for check in ["checkpoint", "tree-size", "leaf-bytes", "inclusion"] {
        assert!(
            verified.stdout.contains(&format!("  ok  {check} ")),
            "{verified:#?}"
        );
    }
    let tampered = write(tmp.path(), "tampered.json", &tamper_path(&proof));
    let failed = run(&[
        "verify",
        "inclusion",
        tampered.to_str().unwrap(),
        "--vkey",
        &vkey,
    ]);
    assert_eq!(failed.code, 4, "{failed:#?}");
    assert!(
        failed
            .stderr
            .starts_with("error: verification failed: inclusion: "),
        "{failed:#?}"
    );
    let other = run(&["keygen", "--name", "someone.else/log", "--json"])
        .ok()
        .json();
    let wrong_key = other["verifier_key"].as_str().unwrap();
    let failed = run(&[
        "verify",
        "inclusion",
        proof_path.to_str().unwrap(),
        "--vkey",
        wrong_key,
    ]);
    assert_eq!(failed.code, 4, "{failed:#?}");
    assert!(
        failed
            .stderr
            .contains("checkpoint: note has no verifiable signatures"),
        "{failed:#?}"
    );
    let by_hash = server
        .client(&[
            "prove",
            "inclusion",
            "--leaf-hash",
            receipt["leaf_hash"].as_str().unwrap(),
            "--json",
        ])
        .ok()
        .stdout;
    run_with_input(
        &["verify", "inclusion", "-", "--vkey", &vkey],
        by_hash.as_bytes(),
    )
    .ok();

    // Consistency between two signed sizes.
    let old = waited["checkpoint"]["tree_size"]
        .as_u64()
        .unwrap()
        .to_string();
    server
        .client(&["append", "sixth", "--wait-checkpoint"])
        .ok();
    let cons = server
        .client(&["prove", "consistency", "--old", &old, "--json"])
        .ok()
        .stdout;
    let cons_value: Value = serde_json::from_str(&cons).unwrap();
    assert_eq!(cons_value["format"], "vouch.consistency-proof.v1");
    let cons_path = write(tmp.path(), "consistency.json", &cons);
    let verified = run(&[
        "verify",
        "consistency",
        cons_path.to_str().unwrap(),
        "--vkey",
        &vkey,
        "--json",
    ])
    .ok()
    .json();
    assert_eq!(verified["verified"], true);
    assert_eq!(verified["old_size"].as_u64().unwrap().to_string(), old);
    let tampered = write(tmp.path(), "tampered-consistency.json", &tamper_path(&cons));
    let failed = run(&[
        "verify",
        "consistency",
        tampered.to_str().unwrap(),
        "--vkey",
        &vkey,
        "--json",
    ]);
    assert_eq!(failed.code, 4, "{failed:#?}");
    assert_eq!(
        failed.json()["error"]["check"],
        "consistency",
        "{failed:#?}"
    );

    // Errors the server answers with, and an offline audit refused while the server runs.
    let missing = server.client(&["get", "999"]);
    assert_eq!(missing.code, 5, "{missing:#?}");
    assert!(missing.stderr.starts_with("error: "), "{missing:#?}");
    assert_eq!(missing.stderr.lines().count(), 1, "{missing:#?}");
    let busy = run(&["verify-ledger", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(busy.code, 1, "{busy:#?}");
    assert!(busy.stderr.contains("stop the server first"), "{busy:#?}");

    // SIGTERM stops the server cleanly.
    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "{status:?}");

    // The offline audit passes, and fails on a damaged copy naming the file and offset.
    let audit = run(&["verify-ledger", "--data-dir", data.to_str().unwrap()]).ok();
    assert!(
        audit.stdout.contains("ledger default: verified"),
        "{audit:#?}"
    );
    assert!(audit.stdout.contains("entries:      6 "), "{audit:#?}");
    let report = run(&[
        "verify-ledger",
        "--data-dir",
        data.to_str().unwrap(),
        "--json",
        "--ledger",
        "default",
    ])
    .ok()
    .json();
    assert_eq!(report["ledgers"][0]["entries"], 6);
    let damaged = tmp.path().join("damaged");
    copy_dir(&data, &damaged);
    let segments = damaged.join("ledgers/default/segments");
    let segment = std::fs::read_dir(&segments)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&segment).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&segment, bytes).unwrap();
    let failed = run(&["verify-ledger", "--data-dir", damaged.to_str().unwrap()]);
    assert_eq!(failed.code, 4, "{failed:#?}");
    assert!(failed.stderr.contains(".seg at byte "), "{failed:#?}");

    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn keygen_writes_a_private_key_and_prints_the_verifier_key() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("log.key");
    let out = run(&[
        "keygen",
        "--name",
        "example.com/log",
        "--out",
        key.to_str().unwrap(),
    ])
    .ok();
    let vkey_line = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("verifier key: "))
        .unwrap_or_else(|| panic!("{out:#?}"));
    assert!(vkey_line.starts_with("example.com/log+"), "{vkey_line}");
    let skey = std::fs::read_to_string(&key).unwrap();
    assert!(skey.starts_with("PRIVATE+KEY+example.com/log+"), "{skey}");
    assert!(
        !out.stdout.contains("PRIVATE+KEY"),
        "the secret was printed: {out:#?}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // A key file is never overwritten.
    let again = run(&[
        "keygen",
        "--name",
        "example.com/log",
        "--out",
        key.to_str().unwrap(),
    ]);
    assert_eq!(again.code, 1, "{again:#?}");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), skey);
    let bad = run(&["keygen", "--name", "has space"]);
    assert_eq!(bad.code, 2, "{bad:#?}");
}

#[test]
fn token_create_prints_the_token_and_its_config_entry() {
    let out = run(&[
        "token",
        "create",
        "--role",
        "auditor",
        "--name",
        "audit-team",
        "--json",
    ])
    .ok()
    .json();
    let token = out["token"].as_str().unwrap();
    assert!(token.starts_with("vch_"), "{out}");
    let sha256 = out["sha256"].as_str().unwrap();
    let toml = out["toml"].as_str().unwrap();
    assert_eq!(
        toml,
        format!("[[tokens]]\nname = \"audit-team\"\nrole = \"auditor\"\nsha256 = \"{sha256}\"\n")
    );
    let hashed = run_with_input(&["token", "hash"], token.as_bytes()).ok();
    assert_eq!(hashed.stdout.trim(), sha256);
    let text = run(&["token", "create", "--role", "writer"]).ok();
    assert!(text.stdout.starts_with("token: vch_"), "{text:#?}");
    assert!(
        text.stdout.contains("\n[[tokens]]\nname = \"writer-"),
        "{text:#?}"
    );
}

#[test]
fn exit_codes_tell_usage_connection_and_verification_apart() {
    let usage = run(&["append"]);
    assert_eq!(usage.code, 2, "{usage:#?}");
    assert!(usage.stderr.starts_with("error: "), "{usage:#?}");
    let unknown = run(&["frobnicate"]);
    assert_eq!(unknown.code, 2, "{unknown:#?}");
    let help = run(&["--help"]).ok();
    assert!(help.stdout.contains("Exit codes:"), "{help:#?}");
    // Nothing listens on port 1 of the loopback address.
    let refused = run(&["--server", "http://127.0.0.1:1", "get", "0"]);
    assert_eq!(refused.code, 3, "{refused:#?}");
    assert!(
        refused.stderr.starts_with("error: cannot connect"),
        "{refused:#?}"
    );
    let refused = run(&["--server", "http://127.0.0.1:1", "--json", "ledger", "list"]);
    assert_eq!(refused.code, 3, "{refused:#?}");
    assert_eq!(refused.json()["error"]["kind"], "connection");
    // A file that is not a proof is a verification failure naming the field.
    let tmp = tempfile::tempdir().unwrap();
    let bogus = write(
        tmp.path(),
        "bogus.json",
        "{\"format\": \"vouch.inclusion-proof.v1\"}",
    );
    let vkey = run(&["keygen", "--name", "k", "--json"]).ok().json()["verifier_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let failed = run(&[
        "verify",
        "inclusion",
        bogus.to_str().unwrap(),
        "--vkey",
        &vkey,
    ]);
    assert_eq!(failed.code, 4, "{failed:#?}");
    assert!(
        failed.stderr.contains("field ledger: missing"),
        "{failed:#?}"
    );
    // No key to verify with is a usage error; so is a malformed key.
    let no_key = run(&["verify", "inclusion", bogus.to_str().unwrap()]);
    assert_eq!(no_key.code, 2, "{no_key:#?}");
    let bad_key = run(&[
        "verify",
        "inclusion",
        bogus.to_str().unwrap(),
        "--vkey",
        "nope",
    ]);
    assert_eq!(bad_key.code, 2, "{bad_key:#?}");
    let missing = run(&[
        "verify",
        "inclusion",
        "/nonexistent/proof.json",
        "--vkey",
        &vkey,
    ]);
    assert_eq!(missing.code, 1, "{missing:#?}");
}

#[test]
fn tokens_from_token_create_are_enforced_through_a_config_file() {
    let tmp = tempfile::tempdir().unwrap();
    let writer = run(&[
        "token", "create", "--role", "writer", "--name", "ci", "--json",
    ])
    .ok()
    .json();
    let auditor = run(&["token", "create", "--role", "auditor", "--json"])
        .ok()
        .json();
    let config = format!(
        "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\n\n[metrics]\nenabled = false\n\n{}\n{}",
        tmp.path().join("data").to_str().unwrap(),
        writer["toml"].as_str().unwrap(),
        auditor["toml"].as_str().unwrap(),
    );
    let config_path = write(tmp.path(), "vouch.toml", &config);
    let server = Server::start_with(&["serve", "--config", config_path.to_str().unwrap()]);
    let anonymous = server.client(&["append", "x"]);
    assert_eq!(anonymous.code, 5, "{anonymous:#?}");
    assert!(
        anonymous.stderr.contains("unauthenticated"),
        "{anonymous:#?}"
    );
    let token = writer["token"].as_str().unwrap();
    let appended = server
        .client(&["--token", token, "append", "x", "--json"])
        .ok()
        .json();
    assert_eq!(appended["index"], 0);
    let read_only = auditor["token"].as_str().unwrap();
    let denied = server.client(&["--token", read_only, "append", "y"]);
    assert_eq!(denied.code, 5, "{denied:#?}");
    assert!(denied.stderr.contains("permission denied"), "{denied:#?}");
    server.client(&["--token", read_only, "get", "0"]).ok();
    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "{status:?}");
}
