//! No input panics: mutated bundles and requests are parsed, compiled and evaluated, and must
//! come back as values or errors, never as panics; pathological nesting is an error.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use proptest::prelude::*;
use vouch_query::{Format, Request, SourceBundle, compile, evaluate};

fn pack_file(pack: &str, file: &str) -> String {
    fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/policies")
            .join(pack)
            .join(file),
    )
    .expect("pack file")
}

/// Applies `edits` (position, replacement byte) and a truncation to `text`, keeping UTF-8.
fn mutate(text: &str, edits: &[(usize, u8)], cut: usize) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for (pos, byte) in edits {
        if !bytes.is_empty() {
            let i = pos % bytes.len();
            bytes[i] = *byte;
        }
    }
    bytes.truncate(bytes.len().saturating_sub(cut % 8));
    String::from_utf8_lossy(&bytes).into_owned()
}

const MUTATION_BYTES: &[u8] = b" \n:-[]{}\"'*&!|>#,0123456789axzTZ";

fn edits() -> impl Strategy<Value = Vec<(usize, u8)>> {
    proptest::collection::vec(
        (
            any::<usize>(),
            prop::sample::select(MUTATION_BYTES.to_vec()),
        ),
        0..6,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mutated_bundles_never_panic(edits in edits(), cut in any::<usize>(), pack in 0usize..4) {
        let pack = ["high-risk-production", "saas-release", "release-management", "supply-chain-gate"][pack];
        let text = mutate(&pack_file(pack, "bundle.yaml"), &edits, cut);
        if let Ok(source) = SourceBundle::parse(&text, Format::Yaml) {
            let _ = source.lint();
            if let Ok(bundle) = compile(&source) {
                let request = Request::from_json(pack_file("release-management", "requests/allow-production-in-window.json").as_bytes())
                    .expect("request parses");
                let _ = evaluate(&bundle, &request).canonical_json();
            }
        }
    }

    #[test]
    fn mutated_requests_never_panic(edits in edits(), cut in any::<usize>()) {
        let text = mutate(&pack_file("release-management", "requests/allow-production-emergency-with-review-obligation.json"), &edits, cut);
        let bundle = compile(&SourceBundle::parse(&pack_file("release-management", "bundle.yaml"), Format::Yaml).expect("parses"))
            .expect("compiles");
        if let Ok(request) = Request::from_json(text.as_bytes()) {
            let _ = evaluate(&bundle, &request).canonical_json();
        }
    }
}

#[test]
fn deep_nesting_is_an_error() {
    for text in [
        "[".repeat(100_000),
        format!("{}1{}", "[".repeat(5_000), "]".repeat(5_000)),
    ] {
        assert!(SourceBundle::parse(&text, Format::Yaml).is_err());
        assert!(SourceBundle::parse(&text, Format::Json).is_err());
        assert!(Request::from_json(text.as_bytes()).is_err());
    }
    let mut block = String::new();
    for i in 0..5_000 {
        block.push_str(&"  ".repeat(i % 50));
        block.push_str("- ");
    }
    assert!(SourceBundle::parse(&block, Format::Yaml).is_err());
}

#[test]
fn alias_bombs_are_refused() {
    let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 0..12 {
        let prev = if i == 0 {
            "a".to_owned()
        } else {
            format!("l{}", i - 1)
        };
        let _ = writeln!(
            text,
            "l{i}: &l{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]"
        );
    }
    assert!(SourceBundle::parse(&text, Format::Yaml).is_err());
}
