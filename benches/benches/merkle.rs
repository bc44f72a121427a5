//! Criterion benchmarks of the Merkle core (`vouch-ledger-core`), with `rs_merkle` as a
//! peer on the same leaves in the same run.
//!
//! Groups: leaf hashing at 64 B to 4 KiB (bytes of throughput), frontier append, and at
//! 1,000,000 leaves in a `MemoryTree`: tree building, inclusion and consistency proof
//! generation and verification. `rs_merkle` builds the same tree from the same leaf hashes
//! and proves and verifies the same inclusion proofs (it has no consistency proofs); its
//! node hash calls the very same `HashAlg::node_hash`, so the ratios compare tree and proof
//! machinery, not hash implementations.
//!
//! Run with `cargo bench -p vouch-benches --bench merkle`; results are in
//! `docs/benchmarks.md`.

/// The allocator the `vouch` binary uses, so that what is measured is what runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use vouch_ledger_core::proof::{
    ConsistencyProof, InclusionProof, prove_consistency, prove_inclusion, verify_consistency,
    verify_inclusion,
};
use vouch_ledger_core::{EntryIndex, Frontier, Hash, HashAlg, MemoryTree, TreeSize};

/// Leaves in the large tree: not a power of two, so proofs have a right edge to rehash.
const LARGE: u64 = 1_000_000;

/// Distinct proof targets cycled through by the proof benchmarks.
const TARGETS: usize = 1024;

/// `rs_merkle` over our own node hash, RFC 6962 shaped (a lone left node is promoted).
macro_rules! rs_hasher {
    ($name:ident, $alg:expr) => {
        #[derive(Clone)]
        struct $name;

        impl rs_merkle::Hasher for $name {
            type Hash = [u8; 32];

            fn hash(data: &[u8]) -> [u8; 32] {
                $alg.leaf_hash(data).0
            }

            fn concat_and_hash(left: &[u8; 32], right: Option<&[u8; 32]>) -> [u8; 32] {
                match right {
                    Some(right) => $alg.node_hash(&Hash(*left), &Hash(*right)).0,
                    None => *left,
                }
            }
        }
    };
}

rs_hasher!(RsBlake3, HashAlg::Blake3);
rs_hasher!(RsSha256, HashAlg::Sha256);

fn leaf_hashes(alg: HashAlg, n: u64) -> Vec<Hash> {
    (0..n).map(|i| alg.leaf_hash(&i.to_le_bytes())).collect()
}

/// A fixed pseudo-random sequence of values below `bound` (a 64-bit LCG), the same in every
/// run and for both implementations.
fn targets(bound: u64, seed: u64) -> Vec<u64> {
    let mut x = seed;
    (0..TARGETS)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 11) % bound
        })
        .collect()
}

fn leaf_hashing(c: &mut Criterion) {
    let mut group = c.benchmark_group("leaf_hash");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for len in [64usize, 256, 1024, 4096] {
        let data = vec![0xa5u8; len];
        group.throughput(Throughput::Bytes(len as u64));
        for alg in HashAlg::ALL {
            group.bench_with_input(BenchmarkId::new(alg.name(), len), &data, |b, data| {
                b.iter(|| alg.leaf_hash(black_box(data)));
            });
        }
    }
    group.finish();
}

fn frontier_append(c: &mut Criterion) {
    let mut group = c.benchmark_group("frontier_append");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(1));
    for alg in HashAlg::ALL {
        let leaves = leaf_hashes(alg, 4096);
        group.bench_function(alg.name(), |b| {
            let mut frontier = Frontier::new(alg);
            let mut next = leaves.iter().cycle();
            b.iter(|| {
                let leaf = *next.next().unwrap_or(&leaves[0]);
                frontier.push(black_box(leaf), |id, hash| {
                    black_box((id, hash));
                });
            });
        });
    }
    group.finish();
}

fn large_tree(c: &mut Criterion) {
    for alg in HashAlg::ALL {
        let leaves = leaf_hashes(alg, LARGE);
        let raw: Vec<[u8; 32]> = leaves.iter().map(|h| h.0).collect();

        // Building the whole tree once per iteration.
        let mut group = c.benchmark_group(format!("build_1m/{}", alg.name()));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(8))
            .throughput(Throughput::Elements(LARGE));
        group.bench_function("vouch_memory_tree", |b| {
            b.iter(|| MemoryTree::from_leaf_hashes(alg, black_box(&leaves).iter().copied()));
        });
        group.bench_function("rs_merkle", |b| match alg {
            HashAlg::Blake3 => {
                b.iter(|| rs_merkle::MerkleTree::<RsBlake3>::from_leaves(black_box(&raw)));
            }
            HashAlg::Sha256 => {
                b.iter(|| rs_merkle::MerkleTree::<RsSha256>::from_leaves(black_box(&raw)));
            }
        });
        group.finish();

        let tree = MemoryTree::from_leaf_hashes(alg, leaves.iter().copied());
        let size = TreeSize(LARGE);
        let root = tree.root();
        let indexes = targets(LARGE, 1);
        let olds: Vec<u64> = targets(LARGE - 1, 2).into_iter().map(|m| m + 1).collect();
        let inclusion: Vec<InclusionProof> = indexes
            .iter()
            .map(|&i| prove_inclusion(alg, EntryIndex(i), size, &tree).expect("in range"))
            .collect();
        let consistency: Vec<(ConsistencyProof, Hash)> = olds
            .iter()
            .map(|&m| {
                let proof = prove_consistency(alg, TreeSize(m), size, &tree).expect("in range");
                (proof, tree.root_at(TreeSize(m)).expect("in range"))
            })
            .collect();

        let mut group = c.benchmark_group(format!("proofs_1m/{}", alg.name()));
        group
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        let mut k = 0usize;
        group.bench_function("inclusion_prove/vouch", |b| {
            b.iter(|| {
                k = (k + 1) % TARGETS;
                prove_inclusion(alg, EntryIndex(indexes[k]), size, &tree)
            });
        });
        group.bench_function("inclusion_verify/vouch", |b| {
            b.iter(|| {
                k = (k + 1) % TARGETS;
                let proof = &inclusion[k];
                let leaf = &leaves[usize::try_from(proof.index.0).unwrap_or(0)];
                verify_inclusion(alg, leaf, black_box(proof), &root)
            });
        });
        group.bench_function("consistency_prove/vouch", |b| {
            b.iter(|| {
                k = (k + 1) % TARGETS;
                prove_consistency(alg, TreeSize(olds[k]), size, &tree)
            });
        });
        group.bench_function("consistency_verify/vouch", |b| {
            b.iter(|| {
                k = (k + 1) % TARGETS;
                let (proof, old_root) = &consistency[k];
                verify_consistency(alg, black_box(proof), old_root, &root)
            });
        });
        match alg {
            HashAlg::Blake3 => rs_inclusion::<RsBlake3>(&mut group, &raw, &indexes, &inclusion),
            HashAlg::Sha256 => rs_inclusion::<RsSha256>(&mut group, &raw, &indexes, &inclusion),
        }
        group.finish();
    }
}

/// `rs_merkle` proving and verifying the same inclusion proofs as Vouch.
fn rs_inclusion<H: rs_merkle::Hasher<Hash = [u8; 32]>>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    raw: &[[u8; 32]],
    indexes: &[u64],
    ours: &[InclusionProof],
) {
    let tree = rs_merkle::MerkleTree::<H>::from_leaves(raw);
    let root = tree.root().expect("non-empty");
    let idx: Vec<usize> = indexes
        .iter()
        .map(|&i| usize::try_from(i).expect("fits"))
        .collect();
    // Same proofs: rs_merkle's path equals ours hash for hash.
    let proofs: Vec<rs_merkle::MerkleProof<H>> = idx.iter().map(|&i| tree.proof(&[i])).collect();
    for (theirs, ours) in proofs.iter().zip(ours) {
        let ours: Vec<[u8; 32]> = ours.path.iter().map(|h| h.0).collect();
        assert_eq!(
            theirs.proof_hashes(),
            ours.as_slice(),
            "rs_merkle builds another proof"
        );
    }
    let mut k = 0usize;
    group.bench_function("inclusion_prove/rs_merkle", |b| {
        b.iter(|| {
            k = (k + 1) % TARGETS;
            tree.proof(black_box(&[idx[k]]))
        });
    });
    group.bench_function("inclusion_verify/rs_merkle", |b| {
        b.iter(|| {
            k = (k + 1) % TARGETS;
            black_box(&proofs[k]).verify(root, &[idx[k]], &[raw[idx[k]]], raw.len())
        });
    });
}

criterion_group!(benches, leaf_hashing, frontier_append, large_tree);
criterion_main!(benches);
