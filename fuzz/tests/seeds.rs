//! The seed corpus: valid inputs for every fuzz target, built from real data.
//!
//! `cargo test --manifest-path fuzz/Cargo.toml --test seeds` checks that every committed seed
//! matches what this file builds (so the seeds stay valid as the formats evolve); with
//! `VOUCH_FUZZ_WRITE_SEEDS=1` it writes them to `corpus/<target>/seed-<name>` instead.
//! Inputs libFuzzer finds are never committed; only these seeds are.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use vouch_fuzz::proof_pack;
use vouch_fuzz::recovery::{self, LEDGER};
use vouch_fuzz::{LOG_ORIGIN, log_signer, push_bytes, rotated_signer, scratch_dir};
use vouch_ledger_core::checkpoint::Checkpoint;
use vouch_ledger_core::entry::{EntryDraft, EntryKind};
use vouch_ledger_core::note::{Signer, sign_note};
use vouch_ledger_core::proof::{prove_consistency, prove_inclusion};
use vouch_ledger_core::{EntryIndex, Hash, HashAlg, MemoryTree, Timestamp, TreeSize};
use vouch_query::{DecisionRecord, Format, Request, SourceBundle, compile};
use vouch_server::proof_file::{CheckpointFile, ConsistencyProofFile, InclusionProofFile};
use vouch_server::proto::v1 as pb;

/// Seeds by target, then by name.
type Corpus = BTreeMap<&'static str, Vec<(String, Vec<u8>)>>;

fn envelope(
    kind: EntryKind,
    key: Option<&str>,
    content_type: &str,
    payload: &[u8],
    index: u64,
) -> Vec<u8> {
    let draft = EntryDraft::new(
        kind,
        key.map(str::to_owned),
        content_type.to_owned(),
        payload.to_vec(),
    )
    .expect("valid draft");
    let mut out = Vec::new();
    draft.encode_at(
        EntryIndex(index),
        Timestamp(1_750_000_000_000_000_000_u64.wrapping_add(index)),
        &mut out,
    );
    out
}

fn checkpoint_text(size: u64, root: Hash, extensions: &[&str]) -> String {
    let mut cp = Checkpoint::new(LOG_ORIGIN, TreeSize(size), root);
    cp.extensions = extensions.iter().map(|e| (*e).to_owned()).collect();
    cp.encode().expect("valid checkpoint")
}

fn with_selector(selector: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![selector];
    out.extend_from_slice(bytes);
    out
}

/// A tree of 7 SHA-256 leaves (valid envelopes) and its signed checkpoints.
struct Sample {
    alg: HashAlg,
    leaves: Vec<Vec<u8>>,
    tree: MemoryTree,
}

fn sample() -> Sample {
    let alg = HashAlg::Sha256;
    let leaves: Vec<Vec<u8>> = (0..7)
        .map(|i| {
            envelope(
                EntryKind::Record,
                None,
                "application/json",
                format!("{{\"n\":{i}}}").as_bytes(),
                i,
            )
        })
        .collect();
    let tree = MemoryTree::from_leaf_hashes(alg, leaves.iter().map(|l| alg.leaf_hash(l)));
    Sample { alg, leaves, tree }
}

fn signed_checkpoint(sample: &Sample, size: u64, signers: &[&Signer]) -> Vec<u8> {
    let root = sample.tree.root_at(TreeSize(size)).expect("root");
    sign_note(&checkpoint_text(size, root, &[]), signers).expect("signs")
}

fn envelope_seeds(c: &mut Corpus) {
    let seeds = c.entry("envelope_decode").or_default();
    seeds.push((
        "record".into(),
        envelope(EntryKind::Record, None, "application/json", b"{\"a\":1}", 0),
    ));
    seeds.push((
        "keyed-decision".into(),
        envelope(
            EntryKind::Decision,
            Some("req-42"),
            "text/plain",
            b"allow",
            41,
        ),
    ));
    seeds.push((
        "empty-policy".into(),
        envelope(EntryKind::Policy, None, "", b"", u64::MAX),
    ));
    let mut truncated = envelope(EntryKind::Exception, Some("k"), "a/b", b"payload", 3);
    truncated.truncate(truncated.len() - 2);
    seeds.push(("truncated".into(), truncated));
}

fn checkpoint_seeds(c: &mut Corpus, sample: &Sample) {
    let root = sample.tree.root_at(TreeSize(7)).expect("root");
    let seeds = c.entry("checkpoint_parse").or_default();
    seeds.push(("size-7".into(), checkpoint_text(7, root, &[]).into_bytes()));
    seeds.push((
        "extensions".into(),
        checkpoint_text(7, root, &["ext one", "— two"]).into_bytes(),
    ));
    seeds.push((
        "empty-tree".into(),
        checkpoint_text(0, sample.alg.empty_root(), &[]).into_bytes(),
    ));
}

fn note_seeds(c: &mut Corpus, sample: &Sample) {
    let log = log_signer();
    let rotated = rotated_signer();
    let stranger = Signer::from_seed("example.com/other", &[3; 32]).expect("signer");
    let seeds = c.entry("note_open").or_default();
    seeds.push((
        "signed".into(),
        with_selector(0, &signed_checkpoint(sample, 7, &[&log])),
    ));
    seeds.push((
        "two-keys".into(),
        with_selector(0, &signed_checkpoint(sample, 3, &[&log, &rotated])),
    ));
    seeds.push((
        "stranger-first".into(),
        with_selector(0, &signed_checkpoint(sample, 5, &[&stranger, &log])),
    ));
    seeds.push((
        "unverified".into(),
        with_selector(0, &signed_checkpoint(sample, 5, &[&stranger])),
    ));
    // Odd selector: the target signs the text itself, then appends what follows 0xff.
    let root = sample.tree.root_at(TreeSize(7)).expect("root");
    let mut sign_mode = with_selector(1, checkpoint_text(7, root, &[]).as_bytes());
    sign_mode.push(0xff);
    sign_mode.extend_from_slice(stranger.sign("x\n").expect("signs").as_bytes());
    seeds.push(("sign-then-append".into(), sign_mode));
}

fn proof_seeds(c: &mut Corpus, sample: &Sample) {
    let alg = sample.alg;
    let seeds = c.entry("proof_verify").or_default();
    // Mode 0: a genuine inclusion proof of entry 4 in the tree of 7.
    let proof = prove_inclusion(alg, EntryIndex(4), TreeSize(7), &sample.tree).expect("proves");
    let mut raw = vec![0, 1];
    raw.extend_from_slice(&4u64.to_le_bytes());
    raw.extend_from_slice(&7u64.to_le_bytes());
    push_bytes(&mut raw, alg.leaf_hash(&sample.leaves[4]).as_bytes());
    push_bytes(
        &mut raw,
        sample.tree.root_at(TreeSize(7)).expect("root").as_bytes(),
    );
    for p in &proof.path {
        push_bytes(&mut raw, p.as_bytes());
    }
    seeds.push(("inclusion-4-of-7".into(), raw));
    // Mode 1: a genuine consistency proof from 3 to 7.
    let proof = prove_consistency(alg, TreeSize(3), TreeSize(7), &sample.tree).expect("proves");
    let mut raw = vec![1, 1];
    raw.extend_from_slice(&3u64.to_le_bytes());
    raw.extend_from_slice(&7u64.to_le_bytes());
    push_bytes(
        &mut raw,
        sample.tree.root_at(TreeSize(3)).expect("root").as_bytes(),
    );
    push_bytes(
        &mut raw,
        sample.tree.root_at(TreeSize(7)).expect("root").as_bytes(),
    );
    for p in &proof.path {
        push_bytes(&mut raw, p.as_bytes());
    }
    seeds.push(("consistency-3-to-7".into(), raw));
    // Modes 2 and 3: a tree of 100 leaves, then one mutation each.
    let mut tree = vec![2, 1];
    tree.extend_from_slice(&99u16.to_le_bytes());
    push_bytes(&mut tree, b"salt");
    tree.extend_from_slice(&37u16.to_le_bytes());
    tree.extend_from_slice(&77u16.to_le_bytes());
    tree.extend_from_slice(&[11, 0xff]); // AddSecond(-1)
    seeds.push(("tree-inclusion".into(), tree));
    let mut tree = vec![3, 0];
    tree.extend_from_slice(&99u16.to_le_bytes());
    push_bytes(&mut tree, b"salt");
    tree.extend_from_slice(&12u16.to_le_bytes());
    tree.extend_from_slice(&80u16.to_le_bytes());
    tree.extend_from_slice(&[4, 0, 1]); // Swap(0, 1)
    seeds.push(("tree-consistency".into(), tree));
}

fn proof_file_seeds(c: &mut Corpus, sample: &Sample) {
    let alg = sample.alg;
    let log = log_signer();
    let note = |size| String::from_utf8(signed_checkpoint(sample, size, &[&log])).expect("utf-8");
    let proof = prove_inclusion(alg, EntryIndex(2), TreeSize(7), &sample.tree).expect("proves");
    let inclusion = InclusionProofFile {
        ledger: "default".into(),
        hash: alg,
        index: EntryIndex(2),
        tree_size: TreeSize(7),
        leaf_hash: alg.leaf_hash(&sample.leaves[2]),
        leaf_bytes: Some(sample.leaves[2].clone()),
        path: proof.path,
        checkpoint: note(7),
    };
    let proof = prove_consistency(alg, TreeSize(5), TreeSize(7), &sample.tree).expect("proves");
    let consistency = ConsistencyProofFile {
        ledger: "default".into(),
        hash: alg,
        old_size: TreeSize(5),
        new_size: TreeSize(7),
        path: proof.path,
        old_checkpoint: Some(note(5)),
        new_checkpoint: note(7),
    };
    let checkpoint = CheckpointFile {
        ledger: "default".into(),
        hash: alg,
        origin: LOG_ORIGIN.into(),
        tree_size: TreeSize(7),
        root_hash: sample.tree.root_at(TreeSize(7)).expect("root"),
        note: note(7),
    };
    let seeds = c.entry("proof_file").or_default();
    seeds.push(("inclusion".into(), inclusion.to_json().into_bytes()));
    seeds.push(("consistency".into(), consistency.to_json().into_bytes()));
    seeds.push(("checkpoint".into(), checkpoint.to_json().into_bytes()));
}

fn proof_pack_seeds(c: &mut Corpus) {
    let packs = proof_pack::packs();
    let seeds = c.entry("proof_pack").or_default();
    // Documents: the whole input, verifying against the fixed log key.
    seeds.push(("anchored".into(), packs.anchored.to_json().into_bytes()));
    seeds.push(("latest".into(), packs.latest.to_json().into_bytes()));
    seeds.push(("allowed".into(), packs.allowed.to_json().into_bytes()));
    // Mode 0: a genuine pack (0 anchored, 1 latest, 2 allowed) and changes to it.
    seeds.push(("genuine".into(), vec![0, 0]));
    // Remove override 0; the latest checkpoint replaced by the pack's own: still verifies.
    seeds.push(("fewer-overrides".into(), vec![0, 0, 1, 0, 8, 1]));
    // Flip a byte of the decision's leaf and recompute its leaf hash.
    seeds.push(("rehashed-leaf".into(), vec![0, 0, 6, 0, 40, 0, 2, 1]));
    // The bundle entry taken from another pack, then renumbered.
    seeds.push(("spliced-bundle".into(), vec![0, 2, 16, 0, 2, 1, 1, 5, 1, 1]));
    // The request replaced by JSON with a number that is not an integer: refused.
    let mut float = vec![0, 1, 14, 1];
    push_bytes(&mut float, br#"{"n":2.2790121708605243e+274}"#);
    seeds.push(("float-request".into(), float));
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policies/high-risk-production")
}

fn policy_seeds(c: &mut Corpus) {
    let read = |p: &str| std::fs::read(examples().join(p)).expect("example file");
    let bundle_text = String::from_utf8(read("bundle.yaml")).expect("utf-8");
    let request_bytes = read("requests/block-one-approval.json");
    let bundle = compile(&SourceBundle::parse(&bundle_text, Format::Yaml).expect("parses"))
        .expect("compiles");
    let request = Request::from_json(&request_bytes).expect("request");
    let record = DecisionRecord::decide(&bundle, request);
    let overriding = String::from_utf8(read("overrides/granted-release-manager.json"))
        .expect("utf-8")
        .replace("@requests/block-one-approval.json", &record.id());
    let json_bundle = br#"{"version": 1, "name": "demo", "roles": ["Security"], "policies": [{"id": "prod", "when": {"environment": "production"}, "require": {"approvals": {"min": 1, "roles": {"Security": 1}}}}]}"#;
    let seeds = c.entry("policy_bundle").or_default();
    seeds.push((
        "yaml-bundle".into(),
        with_selector(0, bundle_text.as_bytes()),
    ));
    seeds.push(("json-bundle".into(), with_selector(1, json_bundle)));
    seeds.push(("request".into(), with_selector(2, &request_bytes)));
    seeds.push(("override".into(), with_selector(3, overriding.as_bytes())));
    seeds.push((
        "decision-record".into(),
        with_selector(4, &record.canonical_json()),
    ));
}

fn frame(body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).expect("small").to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len), body);
    let mut out = len.to_vec();
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(body);
    out
}

fn recovery_seeds(c: &mut Corpus) {
    let scratch = scratch_dir("seeds");
    let files = recovery::template(&scratch.path().join("template"));
    let ledger = PathBuf::from("ledgers").join(LEDGER);
    let file = |p: &Path| {
        files
            .iter()
            .find(|(q, _)| q == p)
            .map(|(_, b)| b.clone())
            .expect("file in the template")
    };
    let active = recovery::active_segment(&files);
    let segment = file(&active);
    let checkpoints = file(&ledger.join("checkpoints.dat"));
    let offsets = file(&ledger.join("offsets.dat"));
    let head = file(&ledger.join("index.head"));
    let meta = file(&ledger.join("ledger.json"));
    let first_index = u64::from_le_bytes(segment[16..24].try_into().expect("8 bytes"));
    let mut next = Vec::new();
    recovery::draft(6).encode_at(EntryIndex(6), recovery::timestamp(), &mut next);
    let mut first = Vec::new();
    recovery::draft(first_index).encode_at(
        EntryIndex(first_index),
        recovery::timestamp(),
        &mut first,
    );
    let last_note = {
        // The last frame of checkpoints.dat: walk the frames after the 32-byte header.
        let mut at = 32;
        let mut last = Vec::new();
        while at + 8 <= checkpoints.len() {
            let len = u32::from_le_bytes(checkpoints[at..at + 4].try_into().expect("4")) as usize;
            last = checkpoints[at + 8..at + 8 + len].to_vec();
            at += 8 + len;
        }
        last
    };
    let cut = |n: usize| u16::try_from(n).expect("small").to_le_bytes();
    let with = |selector: u8, cut: [u8; 2], payload: &[u8]| {
        let mut out = vec![selector];
        out.extend_from_slice(&cut);
        out.extend_from_slice(payload);
        out
    };
    let record = |body: &[u8]| {
        let mut out = Vec::new();
        push_bytes(&mut out, body);
        out
    };
    let seeds = c.entry("segment_recovery").or_default();
    seeds.push(("segment-raw".into(), with(0, cut(0), &segment)));
    seeds.push(("segment-intact".into(), with(1, cut(segment.len()), b"")));
    seeds.push((
        "segment-torn".into(),
        with(1, cut(segment.len()), &frame(&next)[..10]),
    ));
    seeds.push((
        "segment-next-entry".into(),
        with(2, cut(segment.len()), &record(&next)),
    ));
    let mut renumbered = first_index.to_le_bytes().to_vec();
    renumbered.extend_from_slice(&record(&first));
    seeds.push(("segment-header".into(), with(3, cut(0), &renumbered)));
    seeds.push(("checkpoints-raw".into(), with(4, cut(0), &checkpoints)));
    seeds.push((
        "checkpoints-torn".into(),
        with(5, cut(checkpoints.len()), &frame(&last_note)[..12]),
    ));
    seeds.push((
        "checkpoints-repeat".into(),
        with(6, cut(checkpoints.len()), &record(&last_note)),
    ));
    seeds.push((
        "offsets-record".into(),
        with(7, cut(32 + 8), &offsets[40..48]),
    ));
    seeds.push((
        "offsets-raw".into(),
        with(8, cut(0), &offsets[..32 + 8 * 6]),
    ));
    seeds.push(("head-covered".into(), with(9, cut(16), &head[16..24])));
    seeds.push(("node".into(), with(10, cut(32), &[0; 32])));
    seeds.push(("ledger-json".into(), with(11, cut(0), &meta)));
}

fn grpc_seeds(c: &mut Corpus) {
    fn call(out: &mut Vec<u8>, selector: u8, message: &impl prost::Message) {
        out.push(selector);
        push_bytes(out, &message.encode_to_vec());
    }
    let entry = |payload: &[u8], key: &str| pb::EntryInput {
        kind: pb::EntryKind::Record.into(),
        idempotency_key: key.into(),
        content_type: "application/json".into(),
        payload: payload.to_vec(),
    };
    let seeds = c.entry("grpc_requests").or_default();
    let mut append = Vec::new();
    call(
        &mut append,
        3,
        &pb::AppendRequest {
            ledger: String::new(),
            entry: Some(entry(b"{}", "k1")),
            wait_for_checkpoint: true,
        },
    );
    call(
        &mut append,
        7,
        &pb::GetInclusionProofRequest {
            ledger: String::new(),
            target: Some(pb::get_inclusion_proof_request::Target::Index(0)),
            tree_size: 0,
        },
    );
    call(
        &mut append,
        5,
        &pb::GetEntryRequest {
            ledger: String::new(),
            index: 0,
        },
    );
    seeds.push(("append-prove-read".into(), append));
    let mut batch = Vec::new();
    call(
        &mut batch,
        4,
        &pb::AppendBatchRequest {
            ledger: "default".into(),
            entries: vec![entry(b"a", ""), entry(b"b", "k2")],
            wait_for_checkpoint: true,
        },
    );
    call(
        &mut batch,
        8,
        &pb::GetConsistencyProofRequest {
            ledger: String::new(),
            old_size: 1,
            new_size: 0,
        },
    );
    call(
        &mut batch,
        6,
        &pb::StreamEntriesRequest {
            ledger: String::new(),
            start: 0,
            end: 0,
        },
    );
    seeds.push(("batch-consistency-stream".into(), batch));
    let mut ledgers = Vec::new();
    call(
        &mut ledgers,
        0,
        &pb::CreateLedgerRequest {
            name: "second".into(),
            hash: pb::HashAlgorithm::Sha256.into(),
            origin: String::new(),
            disable_leaf_hash_index: false,
        },
    );
    call(&mut ledgers, 1, &pb::ListLedgersRequest {});
    call(
        &mut ledgers,
        2,
        &pb::GetLedgerRequest {
            ledger: "second".into(),
        },
    );
    call(
        &mut ledgers,
        9,
        &pb::GetCheckpointRequest {
            ledger: "second".into(),
            tree_size: 0,
        },
    );
    call(
        &mut ledgers,
        10,
        &pb::WatchCheckpointsRequest {
            ledger: String::new(),
        },
    );
    seeds.push(("create-list-watch".into(), ledgers));
    let mut by_hash = Vec::new();
    call(
        &mut by_hash,
        3,
        &pb::AppendRequest {
            ledger: String::new(),
            entry: Some(entry(b"x", "")),
            wait_for_checkpoint: true,
        },
    );
    call(
        &mut by_hash,
        7,
        &pb::GetInclusionProofRequest {
            ledger: String::new(),
            target: Some(pb::get_inclusion_proof_request::Target::LeafHash(vec![
                7;
                32
            ])),
            tree_size: 1,
        },
    );
    seeds.push(("prove-by-hash".into(), by_hash));
}

fn corpus() -> Corpus {
    let sample = sample();
    let mut c = Corpus::new();
    envelope_seeds(&mut c);
    checkpoint_seeds(&mut c, &sample);
    note_seeds(&mut c, &sample);
    proof_seeds(&mut c, &sample);
    proof_file_seeds(&mut c, &sample);
    proof_pack_seeds(&mut c);
    policy_seeds(&mut c);
    recovery_seeds(&mut c);
    grpc_seeds(&mut c);
    c
}

#[test]
fn seeds_match_the_committed_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let write = std::env::var_os("VOUCH_FUZZ_WRITE_SEEDS").is_some();
    for (target, seeds) in corpus() {
        let dir = root.join(target);
        for (name, bytes) in seeds {
            let path = dir.join(format!("seed-{name}"));
            if write {
                std::fs::create_dir_all(&dir).expect("create corpus dir");
                std::fs::write(&path, &bytes).expect("write seed");
            } else {
                let committed = std::fs::read(&path).unwrap_or_else(|e| {
                    panic!("{}: {e}; run with VOUCH_FUZZ_WRITE_SEEDS=1", path.display())
                });
                assert_eq!(
                    committed,
                    bytes,
                    "{} is stale; run with VOUCH_FUZZ_WRITE_SEEDS=1",
                    path.display()
                );
            }
        }
    }
}
