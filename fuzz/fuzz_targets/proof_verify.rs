//! Inclusion and consistency proofs: the RFC 9162 verifiers against a recursive reference
//! written from RFC 6962's `PATH` and `SUBPROOF` definitions.
//!
//! Raw inputs (arbitrary algorithm, sizes, hashes of any length) go through the `_bytes`
//! verifiers, which must agree with the reference and never panic; the proof plans must have
//! the length the reference gives.
//!
//! Structured inputs build a `MemoryTree` of distinct fuzz-chosen leaves, take a genuine
//! proof, mutate it, and check the verdict. With distinct leaves every subtree hash is
//! distinct, so (barring a hash collision) a mutated proof verifies only if its path is
//! unchanged and its sizes have the same proof shape as the genuine ones. Those are the
//! documented RFC equivalences: the size is bound only through the root, so an inclusion
//! proof also verifies at another size (and index) whose path takes the same left/right
//! steps, and a consistency proof between equal sizes is the empty proof for any size
//! when the two roots are equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_fuzz::ByteReader;
use vouch_ledger_core::proof::{
    ConsistencyProof, InclusionProof, consistency_plan, inclusion_plan, prove_consistency,
    prove_inclusion, root_from_inclusion_proof, verify_consistency, verify_consistency_bytes,
    verify_inclusion, verify_inclusion_bytes,
};
use vouch_ledger_core::{EntryIndex, Hash, HashAlg, MemoryTree, TreeSize};

/// Largest tree the structured inputs build.
const MAX_LEAVES: u64 = 300;

// ---------------------------------------------------------------------------------------
// The reference, from RFC 6962 §2.1
// ---------------------------------------------------------------------------------------

/// The largest power of two smaller than `n` (`n > 1`), without overflow for any `u64`.
fn split(n: u64) -> u64 {
    debug_assert!(n > 1);
    1 << (63 - (n - 1).leading_zeros())
}

/// Which side a proof hash goes on at one step of an inclusion path (leaf to root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// The proof hash is the left child; the running hash the right.
    Left,
    /// The proof hash is the right child.
    Right,
}

/// The steps of `PATH(m, D[n])`, leaf to root.
fn inclusion_shape(m: u64, n: u64) -> Option<Vec<Side>> {
    if m >= n {
        return None;
    }
    let mut steps = Vec::new();
    let (mut m, mut n) = (m, n);
    while n > 1 {
        let k = split(n);
        if m < k {
            steps.push(Side::Right);
            n = k;
        } else {
            steps.push(Side::Left);
            m -= k;
            n -= k;
        }
    }
    steps.reverse();
    Some(steps)
}

/// The root an inclusion path leads to, by undoing the `PATH` recursion.
fn naive_inclusion_root(alg: HashAlg, m: u64, n: u64, leaf: Hash, path: &[Hash]) -> Option<Hash> {
    let shape = inclusion_shape(m, n)?;
    if shape.len() != path.len() {
        return None;
    }
    Some(
        shape
            .iter()
            .zip(path)
            .fold(leaf, |r, (side, p)| match side {
                Side::Left => alg.node_hash(p, &r),
                Side::Right => alg.node_hash(&r, p),
            }),
    )
}

/// One step of `SUBPROOF`, leaf to root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConsistencyStep {
    /// The walk starts from the old root (`SUBPROOF(m, D[m], true)`, empty in the proof).
    StartFromOldRoot,
    /// The walk starts from the first proof hash (`SUBPROOF(m, D[m], false)`).
    StartFromProof,
    /// The proof hash is a right sibling of the new tree only.
    NewOnly,
    /// The proof hash is a left sibling in both trees.
    Both,
}

/// The steps of `SUBPROOF(m, D[n], true)`, leaf to root; `None` outside `0 < m <= n`.
fn consistency_shape(m: u64, n: u64) -> Option<Vec<ConsistencyStep>> {
    if m == 0 || m > n {
        return None;
    }
    let mut steps = Vec::new();
    let (mut m, mut n, mut b) = (m, n, true);
    while m != n {
        let k = split(n);
        if m <= k {
            steps.push(ConsistencyStep::NewOnly);
            n = k;
        } else {
            steps.push(ConsistencyStep::Both);
            m -= k;
            n -= k;
            b = false;
        }
    }
    steps.push(if b {
        ConsistencyStep::StartFromOldRoot
    } else {
        ConsistencyStep::StartFromProof
    });
    steps.reverse();
    Some(steps)
}

/// The number of hashes of a consistency proof of that shape.
fn consistency_len(shape: &[ConsistencyStep]) -> usize {
    shape
        .iter()
        .filter(|s| **s != ConsistencyStep::StartFromOldRoot)
        .count()
}

/// Consistency by the definitions, with transparency-dev's edge cases for sizes.
fn naive_verify_consistency(
    alg: HashAlg,
    m: u64,
    n: u64,
    path: &[Hash],
    old_root: Hash,
    new_root: Hash,
) -> bool {
    if m == 0 || m > n {
        return false;
    }
    if m == n {
        return path.is_empty() && old_root == new_root;
    }
    let Some(shape) = consistency_shape(m, n) else {
        return false;
    };
    if consistency_len(&shape) != path.len() {
        return false;
    }
    let mut path = path.iter();
    let (mut old, mut new) = (Hash([0; 32]), Hash([0; 32]));
    for step in shape {
        match step {
            ConsistencyStep::StartFromOldRoot => (old, new) = (old_root, old_root),
            ConsistencyStep::StartFromProof => {
                let Some(p) = path.next() else { return false };
                (old, new) = (*p, *p);
            }
            ConsistencyStep::NewOnly => {
                let Some(p) = path.next() else { return false };
                new = alg.node_hash(&new, p);
            }
            ConsistencyStep::Both => {
                let Some(p) = path.next() else { return false };
                old = alg.node_hash(p, &old);
                new = alg.node_hash(p, &new);
            }
        }
    }
    old == old_root && new == new_root
}

// ---------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------

/// A change to a genuine proof: its two sizes (index and size, or old and new size) and path.
#[derive(Debug)]
enum Mutation {
    FlipBit {
        at: u16,
        bit: u8,
    },
    Remove(u8),
    Insert(u8, [u8; 32]),
    Duplicate(u8),
    Swap(u8, u8),
    Truncate(u8),
    Replace(u8, [u8; 32]),
    /// Replaces a path hash with a leaf of the tree (a plausible wrong sibling).
    ReplaceWithLeaf(u8, u16),
    SetFirst(u64),
    SetSecond(u64),
    AddFirst(i8),
    AddSecond(i8),
    RotateFirst(u8),
    RotateSecond(u8),
}

impl Mutation {
    fn read(r: &mut ByteReader<'_>) -> Mutation {
        match r.u8() % 14 {
            0 => Mutation::FlipBit {
                at: r.u16(),
                bit: r.u8(),
            },
            1 => Mutation::Remove(r.u8()),
            2 => Mutation::Insert(r.u8(), r.array()),
            3 => Mutation::Duplicate(r.u8()),
            4 => Mutation::Swap(r.u8(), r.u8()),
            5 => Mutation::Truncate(r.u8()),
            6 => Mutation::Replace(r.u8(), r.array()),
            7 => Mutation::ReplaceWithLeaf(r.u8(), r.u16()),
            8 => Mutation::SetFirst(r.u64()),
            9 => Mutation::SetSecond(r.u64()),
            10 => Mutation::AddFirst(i8::from_le_bytes([r.u8()])),
            11 => Mutation::AddSecond(i8::from_le_bytes([r.u8()])),
            12 => Mutation::RotateFirst(r.u8()),
            _ => Mutation::RotateSecond(r.u8()),
        }
    }
}

/// A tree of `1 + leaves % MAX_LEAVES` distinct leaves derived from `salt`.
#[derive(Debug)]
struct TreeSpec<'a> {
    sha256: bool,
    leaves: u16,
    salt: &'a [u8],
}

impl<'a> TreeSpec<'a> {
    fn read(r: &mut ByteReader<'a>) -> Self {
        TreeSpec {
            sha256: r.u8() & 1 == 1,
            leaves: r.u16(),
            salt: r.bytes(),
        }
    }
}

fn read_mutations(r: &mut ByteReader<'_>) -> Vec<Mutation> {
    let mut out = Vec::new();
    while !r.is_empty() && out.len() < 8 {
        out.push(Mutation::read(r));
    }
    out
}

fn read_hashes<'a>(r: &mut ByteReader<'a>) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    while !r.is_empty() && out.len() < 80 {
        out.push(r.bytes());
    }
    out
}

fn alg(sha256: bool) -> HashAlg {
    if sha256 {
        HashAlg::Sha256
    } else {
        HashAlg::Blake3
    }
}

fn slot(at: u8, len: usize) -> Option<usize> {
    (len > 0).then(|| usize::from(at) % len)
}

/// Applies mutations to (first, second, path).
fn mutate(
    mutations: &[Mutation],
    leaves: &[Hash],
    first: &mut u64,
    second: &mut u64,
    path: &mut Vec<Hash>,
) {
    for m in mutations.iter().take(8) {
        match *m {
            Mutation::FlipBit { at, bit } => {
                if let Some(i) = slot((at / 32) as u8, path.len()) {
                    path[i].0[usize::from(at % 32)] ^= 1 << (bit % 8);
                }
            }
            Mutation::Remove(at) => {
                if let Some(i) = slot(at, path.len()) {
                    path.remove(i);
                }
            }
            Mutation::Insert(at, hash) => {
                if path.len() < 70 {
                    let i = usize::from(at) % (path.len() + 1);
                    path.insert(i, Hash(hash));
                }
            }
            Mutation::Duplicate(at) => {
                if let Some(i) = slot(at, path.len()) {
                    if path.len() < 70 {
                        path.insert(i, path[i]);
                    }
                }
            }
            Mutation::Swap(a, b) => {
                if let (Some(a), Some(b)) = (slot(a, path.len()), slot(b, path.len())) {
                    path.swap(a, b);
                }
            }
            Mutation::Truncate(len) => path.truncate(usize::from(len)),
            Mutation::Replace(at, hash) => {
                if let Some(i) = slot(at, path.len()) {
                    path[i] = Hash(hash);
                }
            }
            Mutation::ReplaceWithLeaf(at, leaf) => {
                if let Some(i) = slot(at, path.len()) {
                    path[i] = leaves[usize::from(leaf) % leaves.len()];
                }
            }
            Mutation::SetFirst(v) => *first = v,
            Mutation::SetSecond(v) => *second = v,
            Mutation::AddFirst(d) => *first = first.wrapping_add_signed(i64::from(d)),
            Mutation::AddSecond(d) => *second = second.wrapping_add_signed(i64::from(d)),
            Mutation::RotateFirst(s) => *first = first.rotate_left(u32::from(s % 64)),
            Mutation::RotateSecond(s) => *second = second.rotate_left(u32::from(s % 64)),
        }
    }
}

fn build(tree: &TreeSpec<'_>) -> (HashAlg, Vec<Hash>, MemoryTree) {
    let alg = alg(tree.sha256);
    let n = 1 + u64::from(tree.leaves) % MAX_LEAVES;
    let leaves: Vec<Hash> = (0..n)
        .map(|i| {
            let mut bytes = tree.salt.to_vec();
            bytes.extend_from_slice(&i.to_le_bytes());
            alg.leaf_hash(&bytes)
        })
        .collect();
    let memory = MemoryTree::from_leaf_hashes(alg, leaves.iter().copied());
    (alg, leaves, memory)
}

// ---------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------

fn raw_inclusion(alg: HashAlg, index: u64, size: u64, leaf: &[u8], path: &[&[u8]], root: &[u8]) {
    let verdict = verify_inclusion_bytes(alg, EntryIndex(index), TreeSize(size), leaf, path, root);
    let hashes: Option<Vec<Hash>> = path.iter().map(|p| Hash::from_slice(p).ok()).collect();
    let parsed = (
        Hash::from_slice(leaf).ok(),
        Hash::from_slice(root).ok(),
        hashes,
    );
    let (Some(leaf), Some(root), Some(path)) = parsed else {
        assert!(verdict.is_err(), "a malformed hash verified");
        return;
    };
    let reference = naive_inclusion_root(alg, index, size, leaf, &path);
    let ours = root_from_inclusion_proof(alg, EntryIndex(index), TreeSize(size), &leaf, &path);
    assert_eq!(
        ours.ok(),
        reference,
        "inclusion root differs from the reference"
    );
    assert_eq!(verdict.is_ok(), reference == Some(root));
    if let Ok(plan) = inclusion_plan(EntryIndex(index), TreeSize(size)) {
        let shape = inclusion_shape(index, size).expect("a plan exists only for index < size");
        assert_eq!(plan.proof_len(), shape.len(), "inclusion plan length");
    } else {
        assert!(inclusion_shape(index, size).is_none());
    }
}

fn raw_consistency(
    alg: HashAlg,
    old: u64,
    new: u64,
    path: &[&[u8]],
    old_root: &[u8],
    new_root: &[u8],
) {
    let verdict =
        verify_consistency_bytes(alg, TreeSize(old), TreeSize(new), path, old_root, new_root);
    if old != 0 && old == new {
        // Equal sizes compare the roots byte for byte, whatever their length.
        assert_eq!(verdict.is_ok(), path.is_empty() && old_root == new_root);
        return;
    }
    let hashes: Option<Vec<Hash>> = path.iter().map(|p| Hash::from_slice(p).ok()).collect();
    let parsed = (
        Hash::from_slice(old_root).ok(),
        Hash::from_slice(new_root).ok(),
        hashes,
    );
    let (Some(old_root), Some(new_root), Some(path)) = parsed else {
        assert!(verdict.is_err(), "a malformed hash verified");
        return;
    };
    let reference = naive_verify_consistency(alg, old, new, &path, old_root, new_root);
    assert_eq!(
        verdict.is_ok(),
        reference,
        "consistency differs from the reference: {verdict:?}"
    );
    match consistency_plan(TreeSize(old), TreeSize(new)) {
        Ok(plan) => {
            let shape = consistency_shape(old, new).expect("a plan exists only for 0 < old <= new");
            assert_eq!(
                plan.proof_len(),
                consistency_len(&shape),
                "consistency plan length"
            );
        }
        Err(_) => assert!(consistency_shape(old, new).is_none()),
    }
}

fn tree_inclusion(tree: &TreeSpec<'_>, index: u16, size: u16, mutations: &[Mutation]) {
    let (alg, leaves, memory) = build(tree);
    let n = leaves.len() as u64;
    let size = 1 + u64::from(size) % n;
    let index = u64::from(index) % size;
    let proof = prove_inclusion(alg, EntryIndex(index), TreeSize(size), &memory).expect("proves");
    let root = memory.root_at(TreeSize(size)).expect("root");
    let leaf = leaves[index as usize];
    assert_eq!(verify_inclusion(alg, &leaf, &proof, &root), Ok(()));

    let (mut index2, mut size2, mut path2) = (index, size, proof.path.clone());
    mutate(mutations, &leaves, &mut index2, &mut size2, &mut path2);
    let mutated = InclusionProof {
        index: EntryIndex(index2),
        size: TreeSize(size2),
        path: path2,
    };
    let ok = verify_inclusion(alg, &leaf, &mutated, &root).is_ok();
    let reference = naive_inclusion_root(alg, index2, size2, leaf, &mutated.path) == Some(root);
    assert_eq!(
        ok, reference,
        "inclusion verdict differs from the reference"
    );
    let same_path = mutated.path == proof.path;
    let same_shape = inclusion_shape(index2, size2) == inclusion_shape(index, size);
    assert_eq!(
        ok,
        same_path && same_shape,
        "mutated inclusion proof {mutated:?} of {proof:?}: verified {ok}"
    );
}

fn tree_consistency(tree: &TreeSpec<'_>, old: u16, new: u16, mutations: &[Mutation]) {
    let (alg, leaves, memory) = build(tree);
    let n = leaves.len() as u64;
    let new = 1 + u64::from(new) % n;
    let old = 1 + u64::from(old) % new;
    let proof = prove_consistency(alg, TreeSize(old), TreeSize(new), &memory).expect("proves");
    let old_root = memory.root_at(TreeSize(old)).expect("root");
    let new_root = memory.root_at(TreeSize(new)).expect("root");
    assert_eq!(
        verify_consistency(alg, &proof, &old_root, &new_root),
        Ok(())
    );

    let (mut old2, mut new2, mut path2) = (old, new, proof.path.clone());
    mutate(mutations, &leaves, &mut old2, &mut new2, &mut path2);
    let mutated = ConsistencyProof {
        old_size: TreeSize(old2),
        new_size: TreeSize(new2),
        path: path2,
    };
    let ok = verify_consistency(alg, &mutated, &old_root, &new_root).is_ok();
    let reference = naive_verify_consistency(alg, old2, new2, &mutated.path, old_root, new_root);
    assert_eq!(
        ok, reference,
        "consistency verdict differs from the reference"
    );
    let equal_sizes = old == new && old2 == new2 && old2 != 0 && mutated.path.is_empty();
    let same = mutated.path == proof.path
        && consistency_shape(old2, new2).is_some()
        && consistency_shape(old2, new2) == consistency_shape(old, new);
    assert_eq!(
        ok,
        equal_sizes || same,
        "mutated consistency proof {mutated:?} of {proof:?}: verified {ok}"
    );
}

// The input: a mode byte, then that mode's fields (see the `read` functions).
fuzz_target!(|data: &[u8]| {
    let mut r = ByteReader(data);
    match r.u8() % 4 {
        0 => {
            let alg = alg(r.u8() & 1 == 1);
            let (index, size) = (r.u64(), r.u64());
            let (leaf, root) = (r.bytes(), r.bytes());
            let path = read_hashes(&mut r);
            raw_inclusion(alg, index, size, leaf, &path, root);
        }
        1 => {
            let alg = alg(r.u8() & 1 == 1);
            let (old, new) = (r.u64(), r.u64());
            let (old_root, new_root) = (r.bytes(), r.bytes());
            let path = read_hashes(&mut r);
            raw_consistency(alg, old, new, &path, old_root, new_root);
        }
        2 => {
            let tree = TreeSpec::read(&mut r);
            let (index, size) = (r.u16(), r.u16());
            let mutations = read_mutations(&mut r);
            tree_inclusion(&tree, index, size, &mutations);
        }
        _ => {
            let tree = TreeSpec::read(&mut r);
            let (old, new) = (r.u16(), r.u16());
            let mutations = read_mutations(&mut r);
            tree_consistency(&tree, old, new, &mutations);
        }
    }
});
