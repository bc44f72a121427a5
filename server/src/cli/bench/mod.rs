//! `vouch bench`: a load generator for the gRPC API.
//!
//! Without `--server` it starts an embedded server (`crate::server::start` on `127.0.0.1:0`
//! with a temporary data directory, removed at the end), so one command measures a machine.
//! With `--server` it calls that server instead, with `--token` and the TLS flags, writing to
//! ledger `bench` (created with `--hash` if missing) unless `--ledger` names another: the
//! entries it appends stay, as every entry does.
//!
//! A run: set up (create or open the ledger; pre-fill it and have a checkpoint cover it for
//! proof workloads; publish the 50-policy bundle for `decide`), warm up (`--warmup`, not
//! measured), then `--concurrency` tasks call back to back over `--connections` HTTP/2
//! connections until `--duration` or `--requests` is reached (a run is always bounded: 10 s
//! when neither is given). Every call is timed on the client, from just before it is sent to
//! its answer, into HDR histograms per operation and per second. The report
//! ([`report::Report`]) holds throughput, latency percentiles, errors by gRPC code and the
//! environment; it is printed as a table, or as JSON with `--json`, and `--plot` draws it as
//! an SVG ([`svg`]). `docs/benchmarks.md` documents the JSON schema and the figures.

pub mod report;
pub mod svg;
pub mod workloads;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, Parser as _};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinSet;
use tonic::{Code, Status};

use self::report::{Environment, MixPart, Recorder, Report};
use self::workloads::{BUNDLE_NAME, CONTENT_TYPE, Mix, Op, Payloads, Rng, Workload};
use super::GlobalArgs;
use super::client::{connect_error, status_error};
use super::exit::Coded;
use super::serve::{DurabilityArg, HashArg};
use crate::client::{BearerToken, Client, ClientTls, MAX_RESPONSE_BYTES, PolicyClient};
use crate::config::{Config, DurabilityMode, HashName};
use crate::proto::v1 as pb;
use crate::proto::v1::ledger_service_client::LedgerServiceClient;

/// The run's length when neither `--duration` nor `--requests` is given.
const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// The ledger `vouch bench` uses unless `--ledger` names another.
const DEFAULT_LEDGER: &str = "bench";
/// Entries per `AppendBatch` while pre-filling.
const PREFILL_BATCH: usize = 500;
/// Pre-fill batches in flight.
const PREFILL_IN_FLIGHT: usize = 4;
/// A run in which no call completes for this long is stopped with an error.
const STALL: Duration = Duration::from_secs(30);

/// What `vouch bench --help` adds below the options.
const AFTER_HELP: &str = "\
Without --server, vouch bench starts an embedded server on 127.0.0.1 with a temporary data
directory, removed at the end, so one command measures a machine. With --server it calls
that server (--token, TLS flags) and writes to ledger `bench` unless --ledger names another,
creating it with --hash if missing; the entries it appends stay there.

Examples:
  vouch bench                                    64 concurrent appends for 10 s, fsync
  vouch bench batch --batch-size 1000 -c 4       batches of 1,000
  vouch bench inclusion --json                   proofs, JSON report
  vouch bench mix --mix append=70,inclusion=20,decide=10 --plot mix.svg";

/// `vouch bench`.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct BenchArgs {
    /// What to call.
    #[arg(value_enum, default_value_t = Workload::Append)]
    pub workload: Workload,
    /// Calls in flight at once (one task each).
    #[arg(long, short = 'c', default_value_t = 64, value_name = "N")]
    pub concurrency: usize,
    /// HTTP/2 connections the calls share, round robin (at most --concurrency).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub connections: usize,
    /// How long to measure (`10s`, `500ms`, `2m`; a bare number is seconds). Without it and
    /// without --requests: 10 s.
    #[arg(long, short = 'd', value_parser = parse_duration, value_name = "TIME")]
    pub duration: Option<Duration>,
    /// How many calls to measure (with --duration too, whichever comes first).
    #[arg(long, short = 'n', value_name = "N")]
    pub requests: Option<u64>,
    /// How long to call before measuring (not measured).
    #[arg(long, value_parser = parse_duration, default_value = "1s", value_name = "TIME")]
    pub warmup: Duration,
    /// Payload bytes of every appended entry.
    #[arg(long, default_value_t = 256, value_name = "BYTES")]
    pub payload_size: usize,
    /// Entries per `AppendBatch` call (the `batch` operation).
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub batch_size: usize,
    /// The operations of the `mix` workload and their weights.
    #[arg(long, value_name = "OP=WEIGHT,...", default_value = workloads::DEFAULT_MIX)]
    pub mix: String,
    /// The hash function of the ledger, when `vouch bench` creates it.
    #[arg(long, value_enum, value_name = "HASH")]
    pub hash: Option<HashArg>,
    /// The embedded server's durability (default fsync); `none` syncs nothing and is
    /// labelled as such in the output. A remote server keeps its own.
    #[arg(long, value_enum, value_name = "MODE")]
    pub durability: Option<DurabilityArg>,
    /// Create the ledger without the leaf-hash index (the embedded server's ledger, or a
    /// remote ledger that `vouch bench` creates): appends skip its sled updates, and proofs
    /// by leaf hash are refused.
    #[arg(long)]
    pub no_leaf_hash_index: bool,
    /// Entries the ledger should hold before proof workloads start (appended if it holds
    /// fewer).
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    pub prefill: u64,
    /// Also draw the latency over time and the latency distribution into this SVG file.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// The seed of the random choices (default: from the clock).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

/// `10s`, `250ms`, `2m`, `1.5` (seconds).
fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: expected a time such as 10s, 500ms or 2m"))?;
    if !v.is_finite() || v < 0.0 || v * scale > 86_400.0 {
        return Err(format!("{text:?}: expected a time from 0 to 24 hours"));
    }
    Ok(Duration::from_secs_f64(v * scale))
}

/// Whether `--server` (or `VOUCH_SERVER`) was given in `argv` rather than left at its
/// default.
fn server_given<I, T>(argv: I) -> bool
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::CommandFactory as _;
    use clap::parser::ValueSource;
    super::Cli::command()
        .try_get_matches_from(argv)
        .ok()
        .and_then(|m| {
            m.value_source("server").or_else(|| {
                m.subcommand_matches("bench")
                    .and_then(|b| b.value_source("server"))
            })
        })
        .is_some_and(|s| s != ValueSource::DefaultValue)
}

/// The validated settings of a run.
#[derive(Debug)]
struct Plan {
    workload: Workload,
    mix: Mix,
    concurrency: usize,
    connections: usize,
    duration: Option<Duration>,
    requests: Option<u64>,
    warmup: Duration,
    payload_size: usize,
    batch_size: usize,
    hash: HashName,
    durability: DurabilityMode,
    prefill: u64,
    leaf_hash_index: bool,
    remote: Option<String>,
    ledger: String,
    seed: u64,
}

impl Plan {
    fn new(global: &GlobalArgs, args: &BenchArgs, remote: bool) -> anyhow::Result<Self> {
        let usage = |m: String| anyhow::Error::from(Coded::usage(m));
        if args.concurrency == 0 {
            return Err(usage("--concurrency must be at least 1".into()));
        }
        if args.batch_size == 0 {
            return Err(usage("--batch-size must be at least 1".into()));
        }
        if args.requests == Some(0) || args.duration == Some(Duration::ZERO) {
            return Err(usage("--requests and --duration must be above zero".into()));
        }
        if args.payload_size > vouch_ledger_core::entry::MAX_PAYLOAD_LEN {
            return Err(usage(format!(
                "--payload-size {} is above the envelope's limit of {} bytes",
                args.payload_size,
                vouch_ledger_core::entry::MAX_PAYLOAD_LEN
            )));
        }
        let mix = match Op::from_workload(args.workload) {
            Some(op) => Mix::single(op),
            None => Mix::parse(&args.mix).map_err(|e| usage(format!("--mix: {e}")))?,
        };
        if remote && args.durability.is_some() {
            return Err(usage(
                "--durability applies to the embedded server only; a remote server keeps the durability it was started with"
                    .into(),
            ));
        }
        if args.connections == 0 {
            return Err(usage("--connections must be at least 1".into()));
        }
        let connections = args.connections.min(args.concurrency);
        let duration = match (args.duration, args.requests) {
            (None, None) => Some(DEFAULT_DURATION),
            (d, _) => d,
        };
        let seed = args.seed.unwrap_or_else(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            u64::try_from(now.as_nanos() % u128::from(u64::MAX)).unwrap_or(1)
                ^ u64::from(std::process::id())
        });
        Ok(Self {
            workload: args.workload,
            mix,
            concurrency: args.concurrency,
            connections,
            duration,
            requests: args.requests,
            warmup: args.warmup,
            payload_size: args.payload_size,
            batch_size: args.batch_size,
            hash: match args.hash {
                Some(HashArg::Sha256) => HashName::Sha256,
                Some(HashArg::Blake3) | None => HashName::Blake3,
            },
            durability: match args.durability {
                Some(DurabilityArg::Fsync) | None => DurabilityMode::Fsync,
                Some(DurabilityArg::Interval) => DurabilityMode::Interval,
                Some(DurabilityArg::None) => DurabilityMode::None,
            },
            prefill: args.prefill,
            leaf_hash_index: !args.no_leaf_hash_index,
            remote: remote.then(|| global.server.clone()),
            ledger: global
                .ledger
                .clone()
                .unwrap_or_else(|| DEFAULT_LEDGER.to_owned()),
            seed,
        })
    }
}

/// Runs `vouch bench`.
///
/// # Errors
///
/// Usage errors, a server that cannot be started or reached, a failed set-up call, a run
/// in which no call completes for 30 s, or an output file that cannot be written. Failed
/// calls during the run are counted in the report, not returned.
pub fn run(global: &GlobalArgs, args: &BenchArgs) -> anyhow::Result<()> {
    let report = measure_in_process(global, args, server_given(std::env::args_os()))?;
    if let Some(path) = &args.plot {
        std::fs::write(path, svg::render(&report))
            .with_context(|| format!("writing the plot to {}", path.display()))?;
    }
    if global.json {
        super::output::json(&serde_json::to_value(&report)?)?;
    } else {
        super::output::write_stdout(&report.render())?;
    }
    Ok(())
}

fn measure_in_process(
    global: &GlobalArgs,
    args: &BenchArgs,
    remote: bool,
) -> anyhow::Result<Report> {
    let plan = Plan::new(global, args, remote)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("vouch-bench")
        .build()?;
    runtime.block_on(bench(global, &plan))
}

/// Runs `vouch bench` with `args` (what follows `vouch bench` on a command line) in this
/// process and returns its report without printing it or writing a plot: for benchmark
/// programs that put Vouch's figures next to other systems' in one run.
///
/// # Errors
///
/// As `vouch bench`: usage errors, a server that cannot be started or reached, a failed
/// set-up call, a stalled run.
pub fn report_for(args: &[&str]) -> anyhow::Result<Report> {
    let argv: Vec<&str> = ["vouch", "bench"].iter().chain(args).copied().collect();
    let cli = super::Cli::try_parse_from(&argv).map_err(|e| Coded::usage(e.to_string()))?;
    let super::Command::Bench(bench_args) = cli.command else {
        unreachable!("the arguments start with the bench subcommand");
    };
    measure_in_process(&cli.global, &bench_args, server_given(&argv))
}

/// The embedded server and its data directory, or nothing for a remote one.
struct Embedded {
    server: crate::server::RunningServer,
    _dir: tempfile::TempDir,
}

async fn start_embedded(plan: &Plan) -> anyhow::Result<Embedded> {
    let dir = tempfile::Builder::new()
        .prefix("vouch-bench-")
        .tempdir()
        .context("creating the embedded server's temporary data directory")?;
    let mut config = Config::embedded_default();
    config.data_dir = dir.path().join("data");
    config.listen = ([127, 0, 0, 1], 0).into();
    config.metrics.enabled = false;
    config.storage.durability = plan.durability;
    config.default_hash = plan.hash;
    config.default_ledger.clone_from(&plan.ledger);
    config.storage.leaf_hash_index = plan.leaf_hash_index;
    config.shutdown_grace_ms = 5_000;
    let server = crate::server::start(config)
        .await
        .context("starting the embedded server")?;
    Ok(Embedded { server, _dir: dir })
}

/// The clients of one connection.
#[derive(Clone)]
struct Clients {
    ledger: Client,
    policy: PolicyClient,
}

async fn connect(
    global: &GlobalArgs,
    url: &str,
    remote: bool,
    n: usize,
) -> anyhow::Result<Vec<Clients>> {
    let tls = if remote && (global.tls_ca.is_some() || global.tls_cert.is_some()) {
        let pair = global.tls_cert.as_deref().zip(global.tls_key.as_deref());
        Some(ClientTls::from_files(global.tls_ca.as_deref(), pair).map_err(|e| connect_error(&e))?)
    } else {
        None
    };
    let token = if remote {
        global.token.as_deref()
    } else {
        None
    };
    let interceptor = BearerToken::new(token).map_err(|e| connect_error(&e))?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let channel = crate::client::channel(url, tls.clone())
            .await
            .map_err(|e| connect_error(&e))?;
        out.push(Clients {
            ledger: LedgerServiceClient::with_interceptor(channel.clone(), interceptor.clone())
                .max_decoding_message_size(MAX_RESPONSE_BYTES)
                .max_encoding_message_size(usize::MAX),
            policy: crate::client::policy_client(channel, interceptor.clone()),
        });
    }
    Ok(out)
}

/// The ledger as the server describes it, created first if a remote server lacks it.
async fn ledger_info(c: &mut Clients, plan: &Plan, url: &str) -> anyhow::Result<pb::LedgerInfo> {
    let get = pb::GetLedgerRequest {
        ledger: plan.ledger.clone(),
    };
    match c.ledger.get_ledger(get.clone()).await {
        Ok(info) => {
            let info = info.into_inner();
            let want = match plan.hash {
                HashName::Blake3 => pb::HashAlgorithm::Blake3,
                HashName::Sha256 => pb::HashAlgorithm::Sha256,
            };
            if plan.remote.is_some() && info.hash != i32::from(want) {
                eprintln!(
                    "note: ledger {:?} exists with hash {}; --hash applies only when vouch bench creates the ledger",
                    plan.ledger,
                    hash_name(info.hash)
                );
            }
            Ok(info)
        }
        Err(s) if s.code() == Code::NotFound => {
            let hash = match plan.hash {
                HashName::Blake3 => pb::HashAlgorithm::Blake3,
                HashName::Sha256 => pb::HashAlgorithm::Sha256,
            };
            c.ledger
                .create_ledger(pb::CreateLedgerRequest {
                    name: plan.ledger.clone(),
                    hash: hash.into(),
                    disable_leaf_hash_index: !plan.leaf_hash_index,
                    ..Default::default()
                })
                .await
                .map_err(|s| status_error(&s, url))
                .with_context(|| format!("creating ledger {:?}", plan.ledger))?;
            Ok(c.ledger
                .get_ledger(get)
                .await
                .map_err(|s| status_error(&s, url))?
                .into_inner())
        }
        Err(s) => Err(status_error(&s, url)).context("describing the ledger"),
    }
}

fn hash_name(value: i32) -> &'static str {
    match pb::HashAlgorithm::try_from(value) {
        Ok(pb::HashAlgorithm::Sha256) => "sha256",
        Ok(pb::HashAlgorithm::Blake3) => "blake3",
        _ => "unknown",
    }
}

/// What every worker of a run shares and never changes.
struct Context {
    mix: Mix,
    ledger: String,
    payloads: Payloads,
    batch_size: usize,
    nonce: u64,
    /// Proof targets are drawn below this checkpoint size.
    proof_bound: u64,
    /// The next payload or request number, across phases, so that none repeats.
    seq: AtomicU64,
}

fn entry(ctx: &Context, seq: u64) -> pb::EntryInput {
    pb::EntryInput {
        kind: pb::EntryKind::Record.into(),
        content_type: CONTENT_TYPE.to_owned(),
        payload: ctx.payloads.make(seq),
        ..Default::default()
    }
}

/// A prepared call.
enum Call {
    Append(pb::AppendRequest),
    Batch(pb::AppendBatchRequest),
    Inclusion(pb::GetInclusionProofRequest),
    Consistency(pb::GetConsistencyProofRequest),
    Decide(pb::DecideRequest),
}

fn prepare(ctx: &Context, op: Op, rng: &mut Rng) -> Call {
    match op {
        Op::Append | Op::AppendWait => Call::Append(pb::AppendRequest {
            ledger: ctx.ledger.clone(),
            entry: Some(entry(ctx, ctx.seq.fetch_add(1, Ordering::Relaxed))),
            wait_for_checkpoint: op == Op::AppendWait,
        }),
        Op::Batch => {
            let first = ctx.seq.fetch_add(ctx.batch_size as u64, Ordering::Relaxed);
            Call::Batch(pb::AppendBatchRequest {
                ledger: ctx.ledger.clone(),
                entries: (first..first + ctx.batch_size as u64)
                    .map(|s| entry(ctx, s))
                    .collect(),
                wait_for_checkpoint: false,
            })
        }
        Op::Inclusion => Call::Inclusion(pb::GetInclusionProofRequest {
            ledger: ctx.ledger.clone(),
            target: Some(pb::get_inclusion_proof_request::Target::Index(
                rng.below(ctx.proof_bound),
            )),
            tree_size: 0,
        }),
        Op::Consistency => Call::Consistency(pb::GetConsistencyProofRequest {
            ledger: ctx.ledger.clone(),
            old_size: 1 + rng.below(ctx.proof_bound),
            new_size: 0,
        }),
        Op::Decide => Call::Decide(pb::DecideRequest {
            ledger: ctx.ledger.clone(),
            bundle: Some(pb::BundleRef {
                r#ref: Some(pb::bundle_ref::Ref::Name(BUNDLE_NAME.to_owned())),
            }),
            request_json: workloads::decide_request(
                ctx.nonce,
                ctx.seq.fetch_add(1, Ordering::Relaxed),
            ),
            ..Default::default()
        }),
    }
}

/// Sends a call and checks that the answer is what the operation promises; an answer that
/// is not counts as an `INTERNAL` error.
async fn send(c: &mut Clients, call: Call, op: Op, batch_size: usize) -> Result<(), Status> {
    let bad = |what: &str| Err(Status::internal(format!("unexpected answer: {what}")));
    match call {
        Call::Append(r) => {
            let a = c.ledger.append(r).await?.into_inner();
            if a.receipt.is_none() {
                return bad("no receipt");
            }
            if op == Op::AppendWait && (a.checkpoint.is_none() || a.inclusion_proof.is_none()) {
                return bad("no checkpoint or inclusion proof");
            }
        }
        Call::Batch(r) => {
            let a = c.ledger.append_batch(r).await?.into_inner();
            if a.receipts.len() != batch_size {
                return bad("a receipt count other than the batch size");
            }
        }
        Call::Inclusion(r) => {
            let p = c.ledger.get_inclusion_proof(r).await?.into_inner();
            if p.tree_size == 0 {
                return bad("an inclusion proof at size 0");
            }
        }
        Call::Consistency(r) => {
            let p = c.ledger.get_consistency_proof(r).await?.into_inner();
            if p.new_size < p.old_size {
                return bad("a consistency proof to a smaller size");
            }
        }
        Call::Decide(r) => {
            let d = c.policy.decide(r).await?.into_inner();
            if d.duplicate || d.receipt.is_none() {
                return bad("a duplicate decision or no receipt");
            }
        }
    }
    Ok(())
}

/// The bounds of one phase and its counters.
struct Phase {
    until: Option<Instant>,
    limit: Option<u64>,
    issued: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    stop: AtomicBool,
}

async fn worker(
    ctx: Arc<Context>,
    phase: Arc<Phase>,
    mut clients: Clients,
    mut rng: Rng,
    start: Instant,
) -> Recorder {
    let mut rec = Recorder::new();
    loop {
        if phase.stop.load(Ordering::Relaxed) || phase.until.is_some_and(|u| Instant::now() >= u) {
            break;
        }
        if phase
            .limit
            .is_some_and(|n| phase.issued.fetch_add(1, Ordering::Relaxed) >= n)
        {
            break;
        }
        let op = ctx.mix.pick(rng.next_u64());
        let call = prepare(&ctx, op, &mut rng);
        let sent = Instant::now();
        let result = send(&mut clients, call, op, ctx.batch_size).await;
        let done = Instant::now();
        match result {
            Ok(()) => rec.ok(
                op,
                op.entries(ctx.batch_size),
                done.duration_since(start),
                done.duration_since(sent),
            ),
            Err(s) => {
                phase.failed.fetch_add(1, Ordering::Relaxed);
                rec.error(op, s.code(), done.duration_since(start));
            }
        }
        phase.completed.fetch_add(1, Ordering::Relaxed);
    }
    rec
}

fn progress_bar(len: u64, what: &str, quiet: bool) -> ProgressBar {
    let target = if quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    let style = ProgressStyle::with_template(&format!("{what} [{{bar:30}}] {{msg}}"))
        .map(|s| s.progress_chars("=> "));
    if let Ok(style) = style {
        bar.set_style(style);
    }
    bar
}

/// Runs the workers until the phase's bound; returns the measured time and the merged
/// recorder.
async fn phase(
    ctx: &Arc<Context>,
    clients: &[Clients],
    concurrency: usize,
    bound: (Option<Duration>, Option<u64>),
    seed: u64,
    label: &str,
) -> anyhow::Result<(Duration, Recorder)> {
    let start = Instant::now();
    let phase = Arc::new(Phase {
        until: bound.0.map(|d| start + d),
        limit: bound.1,
        issued: AtomicU64::new(0),
        completed: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let by_time = bound.1.is_none();
    let len = match bound {
        (_, Some(n)) => n,
        (Some(d), None) => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
        (None, None) => 0,
    };
    let bar = progress_bar(len, label, false);
    let mut set = JoinSet::new();
    for i in 0..concurrency {
        set.spawn(worker(
            ctx.clone(),
            phase.clone(),
            clients[i % clients.len()].clone(),
            Rng::new(seed ^ (i as u64).wrapping_mul(0xa076_1d64_78bd_642f)),
            start,
        ));
    }
    let mut total = Recorder::new();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut last = (0u64, Instant::now());
    loop {
        tokio::select! {
            joined = set.join_next() => match joined {
                Some(Ok(rec)) => total.merge(&rec),
                Some(Err(e)) => {
                    set.abort_all();
                    anyhow::bail!("a load task failed: {e}");
                }
                None => break,
            },
            _ = tick.tick() => {
                let done = phase.completed.load(Ordering::Relaxed);
                let secs = start.elapsed().as_secs_f64();
                #[allow(clippy::cast_precision_loss, reason = "counts stay far below 2^52")]
                let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
                bar.set_position(if by_time {
                    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX).min(len)
                } else {
                    done.min(len)
                });
                bar.set_message(format!(
                    "{done} calls, {rate:.0}/s, {} errors, {:.1} s",
                    phase.failed.load(Ordering::Relaxed),
                    secs
                ));
                if done != last.0 {
                    last = (done, Instant::now());
                } else if last.1.elapsed() >= STALL {
                    phase.stop.store(true, Ordering::Relaxed);
                    set.abort_all();
                    bar.finish_and_clear();
                    anyhow::bail!(
                        "no call completed for {} s; stopped (is the server overloaded or stuck?)",
                        STALL.as_secs()
                    );
                }
            }
        }
    }
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    Ok((elapsed, total))
}

/// Appends until the ledger holds `target` entries and a checkpoint covers them; returns
/// the entries appended and the checkpoint's size.
async fn prefill(
    c: &Clients,
    ctx: &Context,
    size: u64,
    target: u64,
    url: &str,
) -> anyhow::Result<(u64, u64)> {
    let missing = target.saturating_sub(size);
    let bar = progress_bar(missing, "pre-filling", false);
    let mut appended = 0u64;
    let mut in_flight = JoinSet::new();
    while appended < missing || !in_flight.is_empty() {
        while appended < missing && in_flight.len() < PREFILL_IN_FLIGHT {
            let n = (missing - appended).min(PREFILL_BATCH as u64);
            let first = ctx.seq.fetch_add(n, Ordering::Relaxed);
            let last = appended + n == missing;
            let request = pb::AppendBatchRequest {
                ledger: ctx.ledger.clone(),
                entries: (first..first + n).map(|s| entry(ctx, s)).collect(),
                wait_for_checkpoint: last,
            };
            let mut client = c.ledger.clone();
            in_flight.spawn(async move { client.append_batch(request).await });
            appended += n;
        }
        if let Some(done) = in_flight.join_next().await {
            done.context("a pre-fill task failed")?
                .map_err(|s| status_error(&s, url))
                .context("pre-filling the ledger")?;
            bar.inc(PREFILL_BATCH as u64);
        }
    }
    bar.finish_and_clear();
    let mut ledger = c.ledger.clone();
    let checkpoint = |client: &mut Client| {
        let mut client = client.clone();
        let ledger = ctx.ledger.clone();
        async move {
            client
                .get_checkpoint(pb::GetCheckpointRequest {
                    ledger,
                    tree_size: 0,
                })
                .await
                .map(|r| r.into_inner().tree_size)
        }
    };
    let mut covered = checkpoint(&mut ledger)
        .await
        .map_err(|s| status_error(&s, url))?;
    if covered < target.min(size + appended) || covered == 0 {
        // A ledger that already held enough entries may lack a checkpoint over them: one
        // more append that waits for a checkpoint makes one.
        ledger
            .append(pb::AppendRequest {
                ledger: ctx.ledger.clone(),
                entry: Some(entry(ctx, ctx.seq.fetch_add(1, Ordering::Relaxed))),
                wait_for_checkpoint: true,
            })
            .await
            .map_err(|s| status_error(&s, url))
            .context("appending the entry that makes a checkpoint")?;
        appended += 1;
        covered = checkpoint(&mut ledger)
            .await
            .map_err(|s| status_error(&s, url))?;
    }
    Ok((appended, covered))
}

async fn bench(global: &GlobalArgs, plan: &Plan) -> anyhow::Result<Report> {
    let embedded = match plan.remote {
        Some(_) => None,
        None => Some(start_embedded(plan).await?),
    };
    let url = match (&plan.remote, &embedded) {
        (Some(url), _) => url.clone(),
        (None, Some(e)) => e.server.grpc_url(),
        (None, None) => unreachable!("a run has a remote or an embedded server"),
    };
    let result = measure(global, plan, &url, embedded.as_ref()).await;
    if let Some(e) = embedded {
        e.server
            .shutdown()
            .await
            .context("shutting the embedded server down")?;
    }
    result
}

async fn measure(
    global: &GlobalArgs,
    plan: &Plan,
    url: &str,
    embedded: Option<&Embedded>,
) -> anyhow::Result<Report> {
    let mut clients = connect(global, url, plan.remote.is_some(), plan.connections).await?;
    let info = ledger_info(&mut clients[0], plan, url).await?;
    let mut ctx = Context {
        mix: plan.mix.clone(),
        ledger: plan.ledger.clone(),
        payloads: Payloads::new(plan.payload_size, plan.seed),
        batch_size: plan.batch_size,
        nonce: plan.seed,
        proof_bound: 0,
        seq: AtomicU64::new(0),
    };
    let (prefilled, proof_bound) = if plan.mix.needs_entries() {
        prefill(&clients[0], &ctx, info.size, plan.prefill.max(1), url).await?
    } else {
        (0, 0)
    };
    ctx.proof_bound = proof_bound;
    if plan.mix.decides() {
        clients[0]
            .policy
            .publish_bundle(pb::PublishBundleRequest {
                ledger: plan.ledger.clone(),
                source: workloads::bundle_yaml(),
                ..Default::default()
            })
            .await
            .map_err(|s| status_error(&s, url))
            .context("publishing the benchmark bundle")?;
    }
    let ctx = Arc::new(ctx);
    if !plan.warmup.is_zero() {
        let (_, warm) = phase(
            &ctx,
            &clients,
            plan.concurrency,
            (Some(plan.warmup), None),
            plan.seed.rotate_left(17),
            "warming up",
        )
        .await?;
        drop(warm);
    }
    let ledger_handle = embedded.and_then(|e| e.server.registry().get(&plan.ledger).ok());
    let before_stats = ledger_handle.as_ref().map(|l| l.stats());
    let load_before = report::load_average();
    let (elapsed, total) = phase(
        &ctx,
        &clients,
        plan.concurrency,
        (plan.duration, plan.requests),
        plan.seed,
        "measuring",
    )
    .await?;
    let load_after = report::load_average();
    let engine = ledger_handle
        .as_ref()
        .zip(before_stats)
        .map(|(l, before)| report::Engine::between(&before, &l.stats()));
    let durability = match (embedded, plan.durability) {
        (Some(_), DurabilityMode::Fsync) => "fsync".to_owned(),
        (Some(_), DurabilityMode::None) => "none".to_owned(),
        // A remote server's own mode, and the interval with its length.
        _ => info.durability.clone(),
    };
    let environment = Environment {
        version: env!("CARGO_PKG_VERSION"),
        cores: std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        server: if embedded.is_some() {
            "embedded"
        } else {
            "remote"
        },
        url: url.to_owned(),
        ledger: plan.ledger.clone(),
        hash: hash_name(info.hash).to_owned(),
        leaf_hash_index: info.leaf_hash_index,
        durable: durability == "fsync",
        durability,
        workload: plan.workload.name(),
        mix: plan
            .mix
            .parts()
            .iter()
            .map(|(op, weight)| MixPart {
                op: op.name(),
                weight: *weight,
            })
            .collect(),
        concurrency: plan.concurrency,
        connections: plan.connections,
        payload_bytes: plan.payload_size,
        batch_size: plan.batch_size,
        warmup_seconds: plan.warmup.as_secs_f64(),
        duration_seconds: plan.duration.map(|d| d.as_secs_f64()),
        request_limit: plan.requests,
        ledger_size_before: info.size,
        prefilled,
        proof_tree_size: proof_bound,
        load_average_before: load_before,
        load_average_after: load_after,
    };
    let mut report = Report::new(environment, elapsed, &total);
    report.engine = engine;
    Ok(report)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        for bad in ["", "s", "ten", "-1s", "2h", "100000000"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn report_for_runs_in_process() {
        let r = report_for(&[
            "batch",
            "--requests",
            "20",
            "--concurrency",
            "2",
            "--batch-size",
            "5",
            "--warmup",
            "0",
            "--durability",
            "none",
        ])
        .unwrap();
        assert_eq!((r.requests, r.ok, r.entries), (20, 20, 100));
        assert_eq!(r.environment.server, "embedded");
        assert_eq!(r.engine.map(|e| e.entries_appended), Some(100));
    }

    #[test]
    fn a_server_flag_means_remote() {
        assert!(server_given(["vouch", "bench", "--server", "http://x:1"]));
        assert!(server_given(["vouch", "--server=http://x:1", "bench"]));
        assert!(!server_given(["vouch", "bench", "--json"]));
        let err =
            report_for(&["--server", "http://127.0.0.1:1", "--durability", "none"]).unwrap_err();
        assert!(err.to_string().contains("embedded server only"), "{err}");
    }
}
