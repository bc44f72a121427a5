//! End-to-end tests of `vouch bench`: every workload against the embedded server with tiny
//! bounds, the JSON report's arithmetic (counts add up, entries per call, percentiles in
//! order), the SVG plot, a remote server, and usage errors.
//!
//! Nothing here asserts a speed: benchmarks report speed, tests check behaviour.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_precision_loss,
    reason = "tests; counts far below 2^52"
)]

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

const VOUCH: &str = env!("CARGO_BIN_EXE_vouch");
/// The longest one `vouch bench` may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(60);

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `vouch` with no `VOUCH_*` variables from the environment, within [`DEADLINE`].
fn vouch(args: &[&str]) -> Output {
    let mut cmd = Command::new(VOUCH);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("VOUCH_") {
            cmd.env_remove(key);
        }
    }
    let child = cmd.spawn().expect("spawn vouch");
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let Ok(out) = rx.recv_timeout(DEADLINE) else {
        let _ = Command::new("kill").arg("-9").arg(id.to_string()).status();
        panic!("vouch {args:?} did not finish in {DEADLINE:?}");
    };
    let out = out.expect("vouch ran");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `vouch bench <args> --json` and returns the report.
fn bench(args: &[&str]) -> Value {
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = vouch(&all);
    assert_eq!(
        out.code, 0,
        "vouch {all:?} failed:\nstdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", out.stdout))
}

fn u(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("not an unsigned integer: {v}"))
}

/// The latency percentiles of `l` are positive and in order.
#[track_caller]
fn assert_percentiles(l: &Value) {
    let order = ["min_us", "p50_us", "p90_us", "p99_us", "p99_9_us", "max_us"];
    let values: Vec<u64> = order.iter().map(|k| u(&l[k])).collect();
    assert!(values[0] > 0, "a zero latency: {l}");
    assert!(
        values.windows(2).all(|w| w[0] <= w[1]),
        "percentiles out of order: {l}"
    );
    let mean = l["mean_us"].as_f64().unwrap();
    assert!(
        mean >= values[0] as f64 && mean <= values[5] as f64,
        "the mean is outside [min, max]: {l}"
    );
}

/// Checks what every report must satisfy and returns it: `requests` calls, no error,
/// entries per operation as promised, percentiles in order, the timeline adding up.
#[track_caller]
fn check(r: &Value, requests: u64, batch: u64) {
    assert_eq!(r["schema"], "vouch-bench/1");
    assert_eq!(u(&r["requests"]), requests, "{r}");
    assert_eq!(u(&r["ok"]), requests, "{r}");
    assert_eq!(u(&r["errors"]), 0, "{r}");
    assert_eq!(r["errors_by_code"], serde_json::json!({}), "{r}");
    assert_percentiles(&r["latency_us"]);
    let ops = r["operations"].as_array().unwrap();
    assert!(!ops.is_empty());
    let mut sum = (0, 0);
    for op in ops {
        let per_call = match op["op"].as_str().unwrap() {
            "append" | "append-wait" | "decide" => 1,
            "batch" => batch,
            "inclusion" | "consistency" => 0,
            other => panic!("unknown operation {other}"),
        };
        assert_eq!(u(&op["entries"]), u(&op["ok"]) * per_call, "{op}");
        assert_eq!(u(&op["requests"]), u(&op["ok"]) + u(&op["errors"]));
        assert_percentiles(&op["latency_us"]);
        sum.0 += u(&op["requests"]);
        sum.1 += u(&op["entries"]);
    }
    assert_eq!(sum, (requests, u(&r["entries"])), "{r}");
    let per_second: u64 = r["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| u(&s["requests"]))
        .sum();
    assert_eq!(per_second, requests, "the timeline does not add up: {r}");
    let points: Vec<u64> = r["distribution"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| u(&p["latency_us"]))
        .collect();
    assert_eq!(points.len(), 15);
    assert!(points.windows(2).all(|w| w[0] <= w[1]), "{points:?}");
    let secs = r["elapsed_seconds"].as_f64().unwrap();
    assert!(secs > 0.0);
    let rate = r["entries_per_second"].as_f64().unwrap();
    let expected = u(&r["entries"]) as f64 / secs;
    assert!(
        (rate - expected).abs() <= 0.1 + expected * 1e-3,
        "entries/s {rate} is not entries / elapsed {expected}"
    );
    let e = &r["environment"];
    assert_eq!(e["server"], "embedded");
    assert!(u(&e["cores"]) >= 1);
    assert_eq!(u(&e["request_limit"]), requests);
}

const SMALL: [&str; 8] = [
    "--requests",
    "200",
    "--concurrency",
    "4",
    "--warmup",
    "0",
    "--prefill",
    "300",
];

fn small(workload: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec![workload.to_owned()];
    args.extend(SMALL.iter().map(|s| (*s).to_owned()));
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

fn run_small(workload: &str, extra: &[&str]) -> Value {
    let args = small(workload, extra);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    bench(&refs)
}

#[test]
fn append_is_durable_by_default() {
    let r = run_small("append", &[]);
    check(&r, 200, 1);
    let e = &r["environment"];
    assert_eq!(e["workload"], "append");
    assert_eq!(e["durability"], "fsync");
    assert_eq!(e["durable"], true);
    assert_eq!(e["hash"], "blake3");
    assert_eq!(e["leaf_hash_index"], true);
    assert_eq!(u(&e["concurrency"]), 4);
    assert_eq!(u(&e["connections"]), 1);
    assert_eq!(u(&r["entries"]), 200);
    let g = &r["engine"];
    assert_eq!(u(&g["entries_appended"]), 200, "{g}");
    assert!(u(&g["group_commits"]) >= 1 && u(&g["group_commits"]) <= 200);
}

#[test]
fn batch_appends_batch_size_entries_per_call() {
    let r = run_small(
        "batch",
        &[
            "--batch-size",
            "7",
            "--durability",
            "none",
            "--no-leaf-hash-index",
            "--connections",
            "2",
        ],
    );
    check(&r, 200, 7);
    assert_eq!(r["environment"]["leaf_hash_index"], false);
    assert_eq!(u(&r["environment"]["connections"]), 2);
    assert_eq!(u(&r["entries"]), 1400);
    assert_eq!(r["environment"]["durable"], false);
    assert_eq!(u(&r["engine"]["entries_appended"]), 1400);
}

#[test]
fn append_wait_gets_checkpoints() {
    let r = run_small("append-wait", &["--durability", "none"]);
    check(&r, 200, 1);
}

#[test]
fn inclusion_prefills_a_small_ledger() {
    let r = run_small("inclusion", &["--durability", "none", "--hash", "sha256"]);
    check(&r, 200, 0);
    let e = &r["environment"];
    assert_eq!(e["hash"], "sha256");
    assert_eq!(u(&e["ledger_size_before"]), 0);
    assert!(u(&e["prefilled"]) >= 300, "{e}");
    assert!(u(&e["proof_tree_size"]) >= 300, "{e}");
    assert_eq!(u(&r["entries"]), 0);
}

#[test]
fn consistency_proves_from_random_sizes() {
    let r = run_small("consistency", &["--durability", "none"]);
    check(&r, 200, 0);
    assert!(u(&r["environment"]["proof_tree_size"]) >= 300);
}

#[test]
fn decide_records_a_new_decision_every_call() {
    let r = run_small("decide", &["--durability", "none"]);
    check(&r, 200, 1);
    // The bundle is published first: 200 decisions and one policy entry.
    assert_eq!(u(&r["engine"]["entries_appended"]), 200);
}

#[test]
fn mix_runs_every_weighted_operation_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("bench.svg");
    let r = run_small(
        "mix",
        &[
            "--durability",
            "none",
            "--mix",
            "append=40,batch=10,inclusion=20,consistency=10,decide=20",
            "--batch-size",
            "3",
            "--plot",
            plot.to_str().unwrap(),
        ],
    );
    check(&r, 200, 3);
    let names: Vec<&str> = r["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["op"].as_str().unwrap())
        .collect();
    // 200 draws: each weighted operation shows up (a miss has odds below 1e-9).
    assert_eq!(
        names,
        ["append", "batch", "inclusion", "consistency", "decide"]
    );
    let mix: Vec<(String, u64)> = r["environment"]["mix"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["op"].as_str().unwrap().to_owned(), u(&m["weight"])))
        .collect();
    assert_eq!(mix[0], ("append".to_owned(), 40));
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert_well_formed(&svg);
    assert!(svg.contains("Latency over time") && svg.contains("Latency by percentile"));
    assert!(
        svg.contains("<polyline"),
        "no latency line in the plot: {svg}"
    );
    assert!(
        svg.contains("NOT synced"),
        "durability none is not labelled"
    );
}

/// A small check that `svg` is one well-formed element tree: every tag closes in order,
/// attribute values are quoted, and text holds no bare `<` or `&`.
fn assert_well_formed(svg: &str) {
    assert!(svg.starts_with("<svg "), "{svg}");
    assert!(svg.trim_end().ends_with("</svg>"));
    let mut stack: Vec<String> = Vec::new();
    let mut rest = svg;
    let mut roots = 0;
    while let Some(open) = rest.find('<') {
        let text = &rest[..open];
        for (i, _) in text.match_indices('&') {
            let entity = &text[i..];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                    .iter()
                    .any(|e| entity.starts_with(e)),
                "a bare & in text: {text}"
            );
        }
        let close = rest[open..].find('>').expect("an unclosed tag") + open;
        let tag = &rest[open + 1..close];
        assert!(!tag.contains('<'), "a < inside a tag: {tag}");
        assert_eq!(tag.matches('"').count() % 2, 0, "unbalanced quotes: {tag}");
        if let Some(name) = tag.strip_prefix('/') {
            let top = stack
                .pop()
                .unwrap_or_else(|| panic!("</{name}> closes nothing"));
            assert_eq!(top, name.trim(), "</{name}> closes <{top}>");
        } else {
            let name: String = tag
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect();
            assert!(!name.is_empty(), "a tag without a name: {tag}");
            if stack.is_empty() {
                roots += 1;
            }
            if !tag.ends_with('/') {
                stack.push(name);
            }
        }
        rest = &rest[close + 1..];
    }
    assert!(stack.is_empty(), "unclosed elements: {stack:?}");
    assert_eq!(roots, 1, "more than one root element");
}

#[test]
fn a_remote_server_gets_its_own_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut config = vouch_server::config::Config::embedded_default();
    config.data_dir = dir.path().join("data");
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.metrics.enabled = false;
    config.storage.durability = vouch_server::config::DurabilityMode::None;
    let server = runtime
        .block_on(vouch_server::server::start(config))
        .unwrap();
    let url = server.grpc_url();
    let r = bench(&[
        "append",
        "--server",
        &url,
        "--ledger",
        "load",
        "--hash",
        "sha256",
        "--requests",
        "50",
        "--concurrency",
        "2",
        "--warmup",
        "0",
    ]);
    assert_eq!(u(&r["requests"]), 50);
    let e = &r["environment"];
    assert_eq!(e["server"], "remote");
    assert_eq!(e["url"], url.as_str());
    assert_eq!(e["ledger"], "load");
    assert_eq!(e["hash"], "sha256");
    assert_eq!(e["durable"], false, "the server's own durability: none");
    assert!(r["engine"].is_null());
    let ledger = server.registry().get("load").unwrap();
    assert_eq!(ledger.size().0, 50);
    assert_eq!(ledger.hash_alg().name(), "sha256");
    runtime.block_on(server.shutdown()).unwrap();
}

#[test]
fn the_table_labels_durability_none() {
    let out = vouch(&[
        "bench",
        "append",
        "--requests",
        "20",
        "--concurrency",
        "2",
        "--warmup",
        "0",
        "--durability",
        "none",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.starts_with("WARNING: durability none"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("p99.9 ms"), "{}", out.stdout);
    assert!(out.stdout.contains("20 requests in"), "{}", out.stdout);
}

#[test]
fn usage_errors_exit_with_2() {
    for args in [
        &["bench", "--concurrency", "0"][..],
        &["bench", "--requests", "0"],
        &["bench", "--duration", "soon"],
        &["bench", "mix", "--mix", "append=1,fly=2"],
        &[
            "bench",
            "--server",
            "http://127.0.0.1:9",
            "--durability",
            "none",
        ],
        &["bench", "--batch-size", "0"],
        &["bench", "--connections", "0"],
        &["bench", "shuffle"],
    ] {
        let out = vouch(args);
        assert_eq!(out.code, 2, "{args:?}: {}{}", out.stdout, out.stderr);
    }
}
