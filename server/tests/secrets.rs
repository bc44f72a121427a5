//! Secrets with a real `vouch serve` process: bearer tokens never reach its output, not even
//! with every log level on, whether they are accepted, refused or malformed; and the signing
//! key of a ledger created through the API is private to the server's user.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod vouch_process;

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Read as _};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use vouch_process::{COMMAND_DEADLINE, command, wait};
use vouch_server::auth::{generate_token, hash_token};
use vouch_server::client::connect;
use vouch_server::proto::v1 as pb;

fn entry(payload: &[u8]) -> pb::EntryInput {
    pb::EntryInput {
        kind: pb::EntryKind::Record.into(),
        idempotency_key: String::new(),
        content_type: "text/plain".into(),
        payload: payload.to_vec(),
    }
}

/// Calls the server with `token` in every way a client can: accepted and refused calls of
/// both services, a stream, a health check.
async fn calls(url: &str, token: &str) -> Vec<tonic::Code> {
    let mut codes = Vec::new();
    let mut c = connect(url, Some(token.to_owned()), None).await.unwrap();
    codes.push(
        c.append(pb::AppendRequest {
            ledger: String::new(),
            entry: Some(entry(b"secret-free payload")),
            wait_for_checkpoint: true,
        })
        .await
        .map_or_else(|e| e.code(), |_| tonic::Code::Ok),
    );
    codes.push(
        c.get_entry(pb::GetEntryRequest {
            ledger: String::new(),
            index: 0,
        })
        .await
        .map_or_else(|e| e.code(), |_| tonic::Code::Ok),
    );
    codes.push(
        c.create_ledger(pb::CreateLedgerRequest {
            name: format!("l-{}", codes.len() + token.len()),
            ..Default::default()
        })
        .await
        .map_or_else(|e| e.code(), |_| tonic::Code::Ok),
    );
    codes.push(
        match c.stream_entries(pb::StreamEntriesRequest::default()).await {
            Ok(s) => {
                let mut s = s.into_inner();
                while s.message().await.unwrap().is_some() {}
                tonic::Code::Ok
            }
            Err(e) => e.code(),
        },
    );
    let mut p = vouch_server::client::connect_policy(url, Some(token.to_owned()), None)
        .await
        .unwrap();
    codes.push(
        p.lint_bundle(pb::LintBundleRequest {
            source: "version: 1\n".into(),
            format: 0,
        })
        .await
        .map_or_else(|e| e.code(), |_| tonic::Code::Ok),
    );
    codes
}

#[test]
fn tokens_never_appear_in_the_output_even_at_trace_level() {
    let tmp = tempfile::tempdir().unwrap();
    let writer = generate_token().unwrap();
    let admin = generate_token().unwrap();
    let auditor = generate_token().unwrap();
    // A token the server does not know, and one that differs from the writer's in one place.
    let unknown = generate_token().unwrap();
    let mut near = writer.clone().into_bytes();
    let last = near.len() - 1;
    near[last] = if near[last] == b'A' { b'B' } else { b'A' };
    let near = String::from_utf8(near).unwrap();
    let mut config = format!(
        "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\n\n[metrics]\nlisten = \"127.0.0.1:0\"\n\n[log]\nfilter = \"trace\"\n\n",
        tmp.path().join("data").to_str().unwrap(),
    );
    for (name, role, token) in [
        ("ci", "writer", &writer),
        ("root", "admin", &admin),
        ("audit", "auditor", &auditor),
    ] {
        let _ = write!(
            config,
            "[[tokens]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{}\"\n",
            hash_token(token)
        );
    }
    let config_path = tmp.path().join("vouch.toml");
    std::fs::write(&config_path, config).unwrap();

    let mut child = command(&["serve", "--config", config_path.to_str().unwrap()])
        .env("VOUCH_LOG", "trace")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = err_pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let out_pipe = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out_pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut stdout = String::new();
    let url = loop {
        let line = rx
            .recv_timeout(COMMAND_DEADLINE)
            .expect("vouch serve prints its startup block");
        stdout.push_str(&line);
        stdout.push('\n');
        if let Some(u) = line.trim().strip_prefix("grpc:") {
            break u.trim().to_owned();
        }
    };

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (accepted, refused) = runtime.block_on(async {
        let mut accepted = calls(&url, &writer).await;
        accepted.extend(calls(&url, &admin).await);
        let mut refused = calls(&url, &auditor).await;
        refused.extend(calls(&url, &unknown).await);
        refused.extend(calls(&url, &near).await);
        // Malformed headers: another scheme, extra words, no scheme.
        for value in [
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("user:{writer}"))
            ),
            format!("Bearer {writer} extra"),
            writer.clone(),
        ] {
            let channel = vouch_server::client::channel(&url, None).await.unwrap();
            let mut c = pb::ledger_service_client::LedgerServiceClient::new(channel);
            let mut request = tonic::Request::new(pb::GetLedgerRequest::default());
            request
                .metadata_mut()
                .insert("authorization", value.parse().unwrap());
            refused.push(c.get_ledger(request).await.unwrap_err().code());
        }
        (accepted, refused)
    });
    assert!(
        accepted.iter().filter(|c| **c == tonic::Code::Ok).count() >= 8,
        "{accepted:?}"
    );
    assert!(
        refused.iter().all(|c| matches!(
            c,
            tonic::Code::Unauthenticated | tonic::Code::PermissionDenied | tonic::Code::Ok
        )) && refused.contains(&tonic::Code::Unauthenticated),
        "{refused:?}"
    );
    // The signing key of the ledgers the admin created is the server user's alone.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let keys = tmp.path().join("data").join("keys");
        assert_eq!(
            std::fs::metadata(&keys).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let mut created = 0;
        for key in std::fs::read_dir(&keys).unwrap() {
            let key = key.unwrap();
            let mode = key.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", key.path().display());
            created += 1;
        }
        assert!(created >= 2, "the default ledger's key and a created one");
    }

    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = wait(&mut child, COMMAND_DEADLINE).expect("vouch serve stops on SIGTERM");
    // Let the reader thread pass on the rest of standard output.
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) {
        stdout.push_str(&line);
        stdout.push('\n');
    }
    let stderr = stderr.join().unwrap();
    assert!(status.success(), "{stderr}");
    // The logs were on: every call has its span, with the token's configured name.
    assert!(stderr.contains("TRACE"), "no trace output");
    assert!(
        stderr.contains("principal=ci"),
        "no rpc span with the token's name"
    );
    assert!(
        stderr.contains("unknown bearer token"),
        "no refused call logged"
    );
    for (what, secret) in [
        ("the writer token", writer.as_str()),
        ("the admin token", admin.as_str()),
        ("the auditor token", auditor.as_str()),
        ("an unknown token", unknown.as_str()),
        ("a near miss", near.as_str()),
    ] {
        // The token, and its random part on its own.
        for needle in [secret, &secret[4..]] {
            assert!(!stdout.contains(needle), "{what} in standard output");
            assert!(!stderr.contains(needle), "{what} in the logs");
        }
    }
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("user:{writer}"));
    assert!(!stderr.contains(&basic), "a Basic credential in the logs");
}
