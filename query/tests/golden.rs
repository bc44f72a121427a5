//! Golden tests for the policy packs under `examples/policies/`.
//!
//! For every pack, every `requests/<name>.json` is evaluated against the pack's `bundle.yaml`
//! and the evaluation is compared byte for byte with `expected/<name>.json` (canonical JSON,
//! pretty-printed with sorted keys). Every `overrides/<name>.json` is an override request whose
//! `decision` is `@requests/<file>`, meaning the id of the decision for that request; its
//! outcome is compared with `expected/overrides/<name>.json`.
//!
//! Run with `VOUCH_BLESS=1` to write the goldens instead of comparing. A missing golden is a
//! failure, and so is a golden with no request.

use std::fs;
use std::path::{Path, PathBuf};

use vouch_query::{
    DecisionRecord, Format, OverrideRequest, Request, Severity, SourceBundle, compile,
    evaluate_override,
};

fn packs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policies")
}

fn pretty(canonical: &[u8]) -> String {
    let value: serde_json::Value =
        serde_json::from_slice(canonical).expect("canonical JSON parses");
    let mut text = serde_json::to_string_pretty(&value).expect("pretty JSON");
    text.push('\n');
    text
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let Ok(read) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = read
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
}

/// Compares `actual` with the golden at `path` (or writes it when blessing); returns a failure.
fn check(path: &Path, actual: &str, bless: bool) -> Option<String> {
    if bless {
        fs::create_dir_all(path.parent().expect("golden has a parent")).expect("create expected/");
        fs::write(path, actual).expect("write golden");
        return None;
    }
    match fs::read_to_string(path) {
        Err(_) => Some(format!(
            "missing golden {} (run with VOUCH_BLESS=1 to create it)",
            path.display()
        )),
        Ok(expected) if expected != actual => Some(format!(
            "golden mismatch for {}\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        )),
        Ok(_) => None,
    }
}

#[test]
fn every_pack_matches_its_goldens() {
    let bless = std::env::var("VOUCH_BLESS").is_ok_and(|v| v == "1");
    let mut failures = Vec::new();
    let mut packs = 0;
    let mut requests = 0;
    let mut dirs: Vec<PathBuf> = fs::read_dir(packs_dir())
        .expect("examples/policies exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for pack in dirs {
        packs += 1;
        let text = fs::read_to_string(pack.join("bundle.yaml")).expect("bundle.yaml");
        let source = SourceBundle::parse(&text, Format::Yaml)
            .unwrap_or_else(|e| panic!("{}: {e}", pack.display()));
        let findings = source.lint();
        assert!(
            findings.iter().all(|f| f.severity != Severity::Error),
            "{}: lint errors:\n{}",
            pack.display(),
            findings
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
        let bundle = compile(&source).unwrap_or_else(|e| panic!("{}: {e}", pack.display()));
        let expected_dir = pack.join("expected");
        let request_files = sorted_entries(&pack.join("requests"));
        assert!(!request_files.is_empty(), "{}: no requests", pack.display());
        for file in &request_files {
            requests += 1;
            let bytes = fs::read(file).expect("request file");
            let request =
                Request::from_json(&bytes).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let record = DecisionRecord::decide(&bundle, request);
            let name = file.file_name().expect("file name");
            if let Some(f) = check(
                &expected_dir.join(name),
                &pretty(&record.evaluation.canonical_json()),
                bless,
            ) {
                failures.push(f);
            }
        }
        for file in sorted_entries(&pack.join("overrides")) {
            let text = fs::read_to_string(&file).expect("override file");
            let value: serde_json::Value = serde_json::from_str(&text).expect("override JSON");
            let target = value["decision"]
                .as_str()
                .and_then(|d| d.strip_prefix('@'))
                .unwrap_or_else(|| {
                    panic!("{}: decision must be \"@requests/<file>\"", file.display())
                });
            let request = Request::from_json(&fs::read(pack.join(target)).expect("target request"))
                .expect("target request parses");
            let record = DecisionRecord::decide(&bundle, request);
            let resolved = text.replace(&format!("@{target}"), &record.id());
            let override_request = OverrideRequest::from_json(resolved.as_bytes())
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let outcome = evaluate_override(&bundle, &record, &override_request);
            let mut value: serde_json::Value =
                serde_json::from_slice(&outcome.canonical_json()).expect("outcome JSON");
            // The decision id changes with every bundle edit; the golden names the request instead.
            value["decision"] = serde_json::Value::String(format!("@{target}"));
            let actual = pretty(&serde_json::to_vec(&value).expect("outcome bytes"));
            let name = file.file_name().expect("file name");
            if let Some(f) = check(&expected_dir.join("overrides").join(name), &actual, bless) {
                failures.push(f);
            }
        }
        // A golden without a request is stale.
        for golden in sorted_entries(&expected_dir) {
            let name = golden.file_name().expect("file name");
            if !request_files.iter().any(|r| r.file_name() == Some(name)) {
                failures.push(format!("stale golden {} has no request", golden.display()));
            }
        }
        for golden in sorted_entries(&expected_dir.join("overrides")) {
            let name = golden.file_name().expect("file name");
            if !pack.join("overrides").join(name).exists() {
                failures.push(format!(
                    "stale golden {} has no override request",
                    golden.display()
                ));
            }
        }
    }
    assert!(packs >= 4, "expected at least four packs, found {packs}");
    assert!(
        failures.is_empty(),
        "{} golden failures:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(requests > 0);
}
