//! Strict mode with a real `vouch serve` process: a clean data directory starts and serves,
//! and a damaged one (a flipped byte in a segment, or in a Merkle node file that a normal
//! open does not read) stops the start with a non-zero exit code and a message naming the
//! file and the byte offset, whether strict mode comes from `--strict` or from the
//! configuration file. Without strict mode the same directories start, which is what strict
//! mode is for. `vouch verify-ledger` finds the same damage offline.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod vouch_process;

use std::path::Path;

use vouch_process::{Output, Server, copy_dir, run};

/// Runs `vouch serve` on `data_dir` with `extra` flags and expects it to refuse to start.
fn refused(data_dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "serve",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "off",
    ];
    args.extend_from_slice(extra);
    let out = run(&args).code(1);
    assert!(!out.stdout.contains("serving"), "{out:#?}");
    out
}

fn flip(path: &Path, offset: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn strict_mode_serves_a_clean_data_dir_and_refuses_a_damaged_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    for i in 0..5 {
        server.append(&format!("entry {i}"));
    }
    server.stop();
    let config = dir.path().join("strict.toml");
    std::fs::write(&config, "strict = true\n").unwrap();
    let config = config.to_str().unwrap();

    // Clean: it starts, from the flag and from the configuration file, and serves.
    let server = Server::start(&data, &["--strict"]);
    server.client(&["get", "4"]).code(0);
    server.stop();
    let server = Server::start(&data, &["--config", config]);
    server.client(&["get", "4"]).code(0);
    server.stop();

    // A flipped byte in the middle of the segment.
    let segment = dir.path().join("segment");
    copy_dir(&data, &segment);
    let seg = segment.join("ledgers/default/segments/00000000000000000000.seg");
    let len = std::fs::metadata(&seg).unwrap().len();
    flip(&seg, usize::try_from(len / 2).unwrap());
    for extra in [&["--strict"][..], &["--config", config]] {
        let out = refused(&segment, extra);
        assert!(
            out.stderr.contains(
                "error: starting the server: ledger \"default\": verification on open failed: corrupted: ledgers/default/segments/00000000000000000000.seg at byte "
            ),
            "{out:#?}"
        );
        assert_eq!(
            out.stderr.matches("verification on open failed").count(),
            1,
            "said once: {out:#?}"
        );
    }
    // Without strict mode it serves, and reading the damaged entry is DATA_LOSS.
    let server = Server::start(&segment, &[]);
    let lost: Vec<Output> = (0..5)
        .map(|i| server.client(&["get", &i.to_string()]))
        .filter(|o| o.code != 0)
        .collect();
    assert_eq!(lost.len(), 1, "{lost:#?}");
    assert_eq!(lost[0].code, 5, "{lost:#?}");
    assert!(
        lost[0].stderr.contains("data loss: corrupted: "),
        "{lost:#?}"
    );
    server.stop();

    // A flipped byte in the Merkle node of entries 0 and 1, which the frontier of five
    // entries does not include, so a normal open never reads it.
    let node = dir.path().join("node");
    copy_dir(&data, &node);
    flip(&node.join("ledgers/default/tree/level-01.dat"), 40);
    let out = refused(&node, &["--strict"]);
    assert!(
        out.stderr.contains(
            "corrupted: ledgers/default/tree/level-01.dat at byte 32: node(level 1, index 0) is stored as "
        ),
        "{out:#?}"
    );
    let server = Server::start(&node, &[]);
    server.client(&["get", "0"]).code(0);
    server.stop();

    // The offline audit passes on the clean directory and names the same damage.
    let audit = run(&[
        "verify-ledger",
        "--data-dir",
        data.to_str().unwrap(),
        "--json",
    ])
    .code(0);
    let report: serde_json::Value = serde_json::from_str(&audit.stdout).unwrap();
    assert_eq!(report["ledgers"][0]["entries"], 5, "{audit:#?}");
    assert!(
        report["ledgers"][0]["entries_per_second"].as_u64() > Some(0),
        "{audit:#?}"
    );
    let text = run(&["verify-ledger", "--data-dir", data.to_str().unwrap()]).code(0);
    assert!(text.stdout.contains(" entries/s)"), "{text:#?}");
    for (damaged, named) in [
        (
            &segment,
            "ledgers/default/segments/00000000000000000000.seg at byte ",
        ),
        (&node, "ledgers/default/tree/level-01.dat at byte 32: "),
    ] {
        let failed = run(&["verify-ledger", "--data-dir", damaged.to_str().unwrap()]).code(4);
        assert!(
            failed
                .stderr
                .starts_with("error: ledger default: corrupted: ")
                && failed.stderr.contains(named),
            "{failed:#?}"
        );
    }
}
