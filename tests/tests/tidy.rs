//! Tidy checks over the whole source tree: habits the project keeps that the compiler does
//! not enforce.
//!
//! - Every `.rs` file opens with a `//!` header saying what it is for.
//! - No test is hidden with `#[ignore]`.
//! - Every crate that may forbid `unsafe` code does so in its `lib.rs`.

use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives inside the workspace")
        .to_path_buf()
}

/// Every `.rs` file of the project, outside build output.
fn rust_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![workspace_root()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable source tree") {
            let path = entry.expect("readable directory entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                if !(name == "target" || name.starts_with('.') || name == "corpus") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn relative(path: &Path) -> String {
    path.strip_prefix(workspace_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn every_source_file_has_a_module_header() {
    let files = rust_files();
    assert!(
        files.len() > 50,
        "found only {} .rs files: is the walk broken?",
        files.len()
    );
    let missing: Vec<String> = files
        .iter()
        .filter(|p| {
            let text = std::fs::read_to_string(p).expect("source files are UTF-8");
            let first = text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with("#!["))
                .unwrap_or("");
            !first.starts_with("//!")
        })
        .map(|p| relative(p))
        .collect();
    assert!(
        missing.is_empty(),
        "these files do not open with a `//!` header saying what they are for:\n{}",
        missing.join("\n")
    );
}

#[test]
fn no_test_is_ignored() {
    let needle = ["#[", "ignore", "]"].concat();
    let offenders: Vec<String> = rust_files()
        .iter()
        .filter(|p| {
            std::fs::read_to_string(p)
                .expect("source files are UTF-8")
                .lines()
                .any(|l| l.trim_start().starts_with(&needle))
        })
        .map(|p| relative(p))
        .collect();
    assert!(
        offenders.is_empty(),
        "an ignored test hides a failure; fix it or delete it:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn crates_forbid_unsafe_code_except_storage() {
    for krate in ["ledger-core", "query", "server", "benches", "tests"] {
        let lib = workspace_root().join(krate).join("src/lib.rs");
        let text = std::fs::read_to_string(&lib).expect("every crate has a lib.rs");
        assert!(
            text.contains("#![forbid(unsafe_code)]"),
            "{} must forbid unsafe code",
            relative(&lib)
        );
    }
    // Storage denies it (workspace lint) and allows it in exactly one module.
    let storage = workspace_root().join("storage/src");
    let allowing: Vec<String> = std::fs::read_dir(&storage)
        .expect("storage sources")
        .map(|e| e.expect("entry").path())
        .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains("#![allow(unsafe_code)]")))
        .map(|p| relative(&p))
        .collect();
    assert_eq!(allowing, vec!["storage/src/mapped.rs".to_owned()]);
}
