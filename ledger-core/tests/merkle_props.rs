//! Property tests of the Merkle core against simple reference models.
//!
//! The references: a naive recursive RFC 6962 `MTH`, `PATH` and `SUBPROOF` written from the
//! RFC's definitions, recursive verifiers derived from the same definitions (independent of
//! the RFC 9162 algorithms under test), and `rs_merkle` as a second oracle for roots and
//! inclusion proofs, with SHA-256 and BLAKE3 both hashed straight from their crates.
// The references keep the RFC's names: `m`, `n`, `k`, `D`, `b`.
#![allow(clippy::many_single_char_names)]
// Tree sizes here are below a few thousand: `u64` to `usize` never truncates.
#![allow(clippy::cast_possible_truncation)]

use proptest::prelude::*;
use sha2::Digest as _;
use vouch_ledger_core::proof::{
    ConsistencyProof, InclusionProof, consistency_plan, inclusion_plan, prove_consistency,
    prove_inclusion, verify_consistency, verify_inclusion,
};
use vouch_ledger_core::{
    EntryIndex, Frontier, Hash, HashAlg, MemoryTree, NodeId, NodeSource as _, TreeSize,
    VerifyError, root_from_leaf_hashes,
};

// ---------------------------------------------------------------------------------------
// Reference models, straight from RFC 6962 §2.1
// ---------------------------------------------------------------------------------------

/// The largest power of two smaller than `n` (`n > 1`).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// `H(0x01 ‖ left ‖ right)`, hashed without the crate under test.
fn node(alg: HashAlg, left: &Hash, right: &Hash) -> Hash {
    let mut bytes = vec![0x01];
    bytes.extend_from_slice(&left.0);
    bytes.extend_from_slice(&right.0);
    Hash(raw_digest(alg, &bytes))
}

fn raw_digest(alg: HashAlg, bytes: &[u8]) -> [u8; 32] {
    match alg {
        HashAlg::Sha256 => sha2::Sha256::digest(bytes).into(),
        HashAlg::Blake3 => *blake3::hash(bytes).as_bytes(),
    }
}

/// `MTH(D[n])`.
fn mth(alg: HashAlg, d: &[Hash]) -> Hash {
    match d {
        [] => Hash(raw_digest(alg, b"")),
        [leaf] => *leaf,
        _ => {
            let k = split(d.len());
            node(alg, &mth(alg, &d[..k]), &mth(alg, &d[k..]))
        }
    }
}

/// `PATH(m, D[n])`, leaf-to-root.
fn path(alg: HashAlg, m: usize, d: &[Hash]) -> Vec<Hash> {
    if d.len() <= 1 {
        return Vec::new();
    }
    let k = split(d.len());
    if m < k {
        let mut p = path(alg, m, &d[..k]);
        p.push(mth(alg, &d[k..]));
        p
    } else {
        let mut p = path(alg, m - k, &d[k..]);
        p.push(mth(alg, &d[..k]));
        p
    }
}

/// `SUBPROOF(m, D[n], b)`.
fn subproof(alg: HashAlg, m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
    if m == d.len() {
        return if b { Vec::new() } else { vec![mth(alg, d)] };
    }
    let k = split(d.len());
    if m <= k {
        let mut p = subproof(alg, m, &d[..k], b);
        p.push(mth(alg, &d[k..]));
        p
    } else {
        let mut p = subproof(alg, m - k, &d[k..], false);
        p.push(mth(alg, &d[..k]));
        p
    }
}

/// The root an inclusion path leads to, by undoing the `PATH` recursion (the last proof
/// hash is the top-level sibling). `None` if the path does not fit the shape.
fn naive_inclusion_root(alg: HashAlg, m: u64, n: u64, leaf: Hash, p: &[Hash]) -> Option<Hash> {
    if m >= n {
        return None;
    }
    if n == 1 {
        return p.is_empty().then_some(leaf);
    }
    let (last, rest) = p.split_last()?;
    let k = split(usize::try_from(n).ok()?) as u64;
    if m < k {
        Some(node(
            alg,
            &naive_inclusion_root(alg, m, k, leaf, rest)?,
            last,
        ))
    } else {
        Some(node(
            alg,
            last,
            &naive_inclusion_root(alg, m - k, n - k, leaf, rest)?,
        ))
    }
}

fn naive_verify_inclusion(
    alg: HashAlg,
    m: u64,
    n: u64,
    leaf: Hash,
    p: &[Hash],
    root: Hash,
) -> bool {
    naive_inclusion_root(alg, m, n, leaf, p) == Some(root)
}

/// The (old, new) subtree roots a consistency proof leads to, by undoing the `SUBPROOF`
/// recursion. `old_root` stands in for the subtree `SUBPROOF(m, D[m], true)` leaves out.
fn naive_consistency_roots(
    alg: HashAlg,
    m: u64,
    n: u64,
    b: bool,
    p: &[Hash],
    old_root: Hash,
) -> Option<(Hash, Hash)> {
    if m == n {
        return if b {
            p.is_empty().then_some((old_root, old_root))
        } else {
            match p {
                [h] => Some((*h, *h)),
                _ => None,
            }
        };
    }
    let (last, rest) = p.split_last()?;
    let k = split(usize::try_from(n).ok()?) as u64;
    if m <= k {
        let (old, new) = naive_consistency_roots(alg, m, k, b, rest, old_root)?;
        Some((old, node(alg, &new, last)))
    } else {
        let (old, new) = naive_consistency_roots(alg, m - k, n - k, false, rest, old_root)?;
        Some((node(alg, last, &old), node(alg, last, &new)))
    }
}

/// Consistency by the definitions, with transparency-dev's edge cases for sizes.
fn naive_verify_consistency(
    alg: HashAlg,
    m: u64,
    n: u64,
    p: &[Hash],
    old: Hash,
    new: Hash,
) -> bool {
    if m == 0 || m > n {
        return false;
    }
    if m == n {
        return p.is_empty() && old == new;
    }
    naive_consistency_roots(alg, m, n, true, p, old) == Some((old, new))
}

// ---------------------------------------------------------------------------------------
// rs_merkle as a second oracle
// ---------------------------------------------------------------------------------------

/// `rs_merkle` over SHA-256 with the RFC 6962 node prefix. A lone left node is promoted, as
/// RFC 6962 does.
#[derive(Clone)]
struct RsSha256;

impl rs_merkle::Hasher for RsSha256 {
    type Hash = [u8; 32];

    fn hash(data: &[u8]) -> [u8; 32] {
        sha2::Sha256::digest(data).into()
    }

    fn concat_and_hash(left: &[u8; 32], right: Option<&[u8; 32]>) -> [u8; 32] {
        match right {
            Some(right) => node(HashAlg::Sha256, &Hash(*left), &Hash(*right)).0,
            None => *left,
        }
    }
}

/// `rs_merkle` over BLAKE3 with the RFC 6962 node prefix.
#[derive(Clone)]
struct RsBlake3;

impl rs_merkle::Hasher for RsBlake3 {
    type Hash = [u8; 32];

    fn hash(data: &[u8]) -> [u8; 32] {
        *blake3::hash(data).as_bytes()
    }

    fn concat_and_hash(left: &[u8; 32], right: Option<&[u8; 32]>) -> [u8; 32] {
        match right {
            Some(right) => node(HashAlg::Blake3, &Hash(*left), &Hash(*right)).0,
            None => *left,
        }
    }
}

/// `rs_merkle`'s root and inclusion proof for `index` over `leaves`, and whether `rs_merkle`
/// accepts our `path` for it.
fn rs_merkle_oracle<H: rs_merkle::Hasher<Hash = [u8; 32]>>(
    leaves: &[Hash],
    index: usize,
    path: &[Hash],
) -> (Hash, Vec<Hash>, bool) {
    let raw: Vec<[u8; 32]> = leaves.iter().map(|h| h.0).collect();
    let tree = rs_merkle::MerkleTree::<H>::from_leaves(&raw);
    let root = tree.root().expect("a non-empty tree has a root");
    let proof = tree.proof(&[index]);
    let theirs = proof.proof_hashes().iter().map(|h| Hash(*h)).collect();
    let ours = rs_merkle::MerkleProof::<H>::new(path.iter().map(|h| h.0).collect());
    let accepted = ours.verify(root, &[index], &[raw[index]], leaves.len());
    (Hash(root), theirs, accepted)
}

fn rs_merkle_root(alg: HashAlg, leaves: &[Hash]) -> Hash {
    let raw: Vec<[u8; 32]> = leaves.iter().map(|h| h.0).collect();
    let root = match alg {
        HashAlg::Sha256 => rs_merkle::MerkleTree::<RsSha256>::from_leaves(&raw).root(),
        HashAlg::Blake3 => rs_merkle::MerkleTree::<RsBlake3>::from_leaves(&raw).root(),
    };
    Hash(root.expect("a non-empty tree has a root"))
}

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

fn other(alg: HashAlg) -> HashAlg {
    match alg {
        HashAlg::Blake3 => HashAlg::Sha256,
        HashAlg::Sha256 => HashAlg::Blake3,
    }
}

fn leaves(alg: HashAlg, seed: u64, n: usize) -> Vec<Hash> {
    (0..n as u64)
        .map(|i| {
            let mut bytes = seed.to_le_bytes().to_vec();
            bytes.extend_from_slice(&i.to_le_bytes());
            alg.leaf_hash(&bytes)
        })
        .collect()
}

fn any_alg() -> impl Strategy<Value = HashAlg> {
    prop_oneof![Just(HashAlg::Blake3), Just(HashAlg::Sha256)]
}

/// The perfect nodes of a tree of `size` leaves.
fn perfect_nodes(size: u64) -> Vec<NodeId> {
    let mut ids = Vec::new();
    for level in 0..64u8 {
        let count = size >> level;
        if count == 0 {
            break;
        }
        ids.extend((0..count).map(|i| NodeId::new(level, i)));
    }
    ids
}

/// `cases` cases, unless `PROPTEST_CASES` asks for another number (for long runs).
fn config(cases: u32) -> ProptestConfig {
    let default = ProptestConfig::default();
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() {
        default.cases
    } else {
        cases
    };
    ProptestConfig { cases, ..default }
}

// ---------------------------------------------------------------------------------------
// Trees and frontiers
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(64))]

    /// Every way of computing a root agrees, at every size, with the naive MTH.
    #[test]
    fn roots_agree_at_every_size(alg in any_alg(), seed in any::<u64>(), n in 0usize..200) {
        let d = leaves(alg, seed, n);
        let tree = MemoryTree::from_leaf_hashes(alg, d.iter().copied());
        let mut frontier = Frontier::new(alg);
        prop_assert_eq!(frontier.root(), mth(alg, &[]));
        for size in 1..=n {
            frontier.push(d[size - 1], |_, _| {});
            let want = mth(alg, &d[..size]);
            prop_assert_eq!(frontier.root(), want, "frontier at {}", size);
            prop_assert_eq!(tree.root_at(TreeSize(size as u64)), Ok(want), "tree at {}", size);
        }
        prop_assert_eq!(tree.root(), mth(alg, &d));
        prop_assert_eq!(root_from_leaf_hashes(alg, &d), mth(alg, &d));
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// Large trees: the naive MTH, rs_merkle (both hash functions) and our three roots
    /// agree at the full size and at a random smaller size; the frontier matches the tree
    /// at every size.
    #[test]
    fn large_roots_agree_with_the_references(
        alg in any_alg(),
        seed in any::<u64>(),
        n in 1usize..3000,
        pick in any::<u64>(),
    ) {
        let d = leaves(alg, seed, n);
        let tree = MemoryTree::from_leaf_hashes(alg, d.iter().copied());
        let mut frontier = Frontier::new(alg);
        for (i, leaf) in d.iter().enumerate() {
            frontier.push(*leaf, |_, _| {});
            prop_assert_eq!(Ok(frontier.root()), tree.root_at(TreeSize(i as u64 + 1)));
        }
        let smaller = 1 + (pick % n as u64) as usize;
        for size in [n, smaller] {
            let want = mth(alg, &d[..size]);
            prop_assert_eq!(rs_merkle_root(alg, &d[..size]), want, "rs_merkle at {}", size);
            prop_assert_eq!(root_from_leaf_hashes(alg, &d[..size]), want);
            prop_assert_eq!(tree.root_at(TreeSize(size as u64)), Ok(want));
        }
        prop_assert_eq!(frontier.root(), mth(alg, &d));
    }

    /// `push` reports the leaf and then exactly the interior nodes it completes, each with
    /// the hash the tree stores; over all pushes, that is every perfect node once.
    #[test]
    fn on_node_reports_exactly_the_perfect_nodes(
        alg in any_alg(),
        seed in any::<u64>(),
        n in 0usize..1500,
    ) {
        let d = leaves(alg, seed, n);
        let tree = MemoryTree::from_leaf_hashes(alg, d.iter().copied());
        let mut frontier = Frontier::new(alg);
        let mut all = Vec::new();
        for (k, leaf) in d.iter().enumerate() {
            let mut reported = Vec::new();
            frontier.push(*leaf, |id, hash| reported.push((id, hash)));
            // The nodes whose last leaf is k: (l, (k + 1) / 2^l - 1) for every 2^l dividing k + 1.
            let size = k as u64 + 1;
            let want: Vec<NodeId> = (0..64u8)
                .take_while(|&l| size.is_multiple_of(1u64 << l))
                .map(|l| NodeId::new(l, (size >> l) - 1))
                .collect();
            let got: Vec<NodeId> = reported.iter().map(|(id, _)| *id).collect();
            prop_assert_eq!(got, want);
            for (id, hash) in &reported {
                prop_assert_eq!(tree.node(*id), Ok(*hash));
                let (a, b) = (id.first_leaf() as usize, id.end_leaf() as usize);
                prop_assert_eq!(mth(alg, &d[a..b]), *hash);
            }
            all.extend(reported.into_iter().map(|(id, _)| id));
        }
        all.sort_unstable();
        let mut want = perfect_nodes(n as u64);
        want.sort_unstable();
        prop_assert_eq!(all, want);
    }

    /// A frontier restored from a tree's stored nodes continues exactly like one that was
    /// pushed all along: same reported nodes, same state, same roots.
    #[test]
    fn restored_frontier_continues_identically(
        alg in any_alg(),
        seed in any::<u64>(),
        n in 1usize..2000,
        cut in any::<u64>(),
    ) {
        let d = leaves(alg, seed, n);
        let tree = MemoryTree::from_leaf_hashes(alg, d.iter().copied());
        let s = (cut % (n as u64 + 1)) as usize;
        let mut live = Frontier::new(alg);
        for leaf in &d[..s] {
            live.push(*leaf, |_, _| {});
        }
        let ids: Vec<NodeId> = Frontier::ids_for(TreeSize(s as u64)).collect();
        prop_assert_eq!(&ids, &live.node_ids().collect::<Vec<_>>());
        let hashes = tree.nodes(&ids).expect("the tree has its own nodes");
        prop_assert_eq!(&hashes, &live.nodes().to_vec());
        let mut restored = Frontier::restore(alg, TreeSize(s as u64), hashes).unwrap();
        prop_assert_eq!(&restored, &live);
        for leaf in &d[s..] {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            live.push(*leaf, |id, h| a.push((id, h)));
            restored.push(*leaf, |id, h| b.push((id, h)));
            prop_assert_eq!(a, b);
            prop_assert_eq!(restored.root(), live.root());
        }
        prop_assert_eq!(&restored, &live);
        prop_assert_eq!(restored.root(), tree.root());
        // One hash too many or too few is refused.
        let mut wrong = live.nodes().to_vec();
        wrong.push(alg.empty_root());
        prop_assert!(Frontier::restore(alg, live.size(), wrong).is_err());
    }
}

// ---------------------------------------------------------------------------------------
// Inclusion proofs
// ---------------------------------------------------------------------------------------

/// Checks one inclusion proof and all of its mutations.
fn check_inclusion(
    alg: HashAlg,
    d: &[Hash],
    tree: &MemoryTree,
    size: usize,
    index: usize,
    r: [u64; 4],
) -> Result<(), TestCaseError> {
    let (n, i) = (size as u64, index as u64);
    let leaf = d[index];
    let root = mth(alg, &d[..size]);
    let proof = prove_inclusion(alg, EntryIndex(i), TreeSize(n), tree).unwrap();
    let want_path = path(alg, index, &d[..size]);
    prop_assert_eq!(&proof.path, &want_path, "PATH({}, D[{}])", index, size);
    prop_assert_eq!(
        proof.path.len(),
        inclusion_plan(EntryIndex(i), TreeSize(n))
            .unwrap()
            .proof_len()
    );
    prop_assert_eq!(verify_inclusion(alg, &leaf, &proof, &root), Ok(()));
    prop_assert!(naive_verify_inclusion(alg, i, n, leaf, &proof.path, root));

    // rs_merkle builds the same path and accepts ours.
    let (rs_root, rs_path, accepted) = match alg {
        HashAlg::Sha256 => rs_merkle_oracle::<RsSha256>(&d[..size], index, &proof.path),
        HashAlg::Blake3 => rs_merkle_oracle::<RsBlake3>(&d[..size], index, &proof.path),
    };
    prop_assert_eq!(rs_root, root);
    prop_assert_eq!(&rs_path, &proof.path);
    prop_assert!(accepted);

    let len = proof.path.len();
    let verify = |p: &InclusionProof| verify_inclusion(alg, &leaf, p, &root);
    let with_path = |path: Vec<Hash>| InclusionProof {
        path,
        ..proof.clone()
    };
    let wrong_length = |got| Err(VerifyError::WrongProofLength { expected: len, got });
    let junk = alg.leaf_hash(&r[0].to_le_bytes());

    if len > 0 {
        let j = (r[0] % len as u64) as usize;
        // A flipped bit in any path hash.
        let mut flipped = proof.path.clone();
        flipped[j].0[(r[1] % 32) as usize] ^= 1 << (r[2] % 8);
        prop_assert_eq!(verify(&with_path(flipped)), Err(VerifyError::RootMismatch));
        // A dropped hash.
        let mut dropped = proof.path.clone();
        dropped.remove(j);
        prop_assert_eq!(verify(&with_path(dropped)), wrong_length(len - 1));
        // A duplicated hash.
        let mut duplicated = proof.path.clone();
        duplicated.insert(j, proof.path[j]);
        prop_assert_eq!(verify(&with_path(duplicated)), wrong_length(len + 1));
    }
    // An added hash, anywhere.
    let mut added = proof.path.clone();
    added.insert((r[1] % (len as u64 + 1)) as usize, junk);
    prop_assert_eq!(verify(&with_path(added)), wrong_length(len + 1));
    // Two hashes swapped.
    if len >= 2 {
        let a = (r[2] % len as u64) as usize;
        let b = (a + 1 + (r[3] % (len as u64 - 1)) as usize) % len;
        let mut swapped = proof.path.clone();
        swapped.swap(a, b);
        prop_assert_eq!(verify(&with_path(swapped)), Err(VerifyError::RootMismatch));
    }
    // Another index in the tree: never the same proof shape, so it always fails.
    if n > 1 {
        let other_index = (i + 1 + r[3] % (n - 1)) % n;
        let moved = InclusionProof {
            index: EntryIndex(other_index),
            ..proof.clone()
        };
        prop_assert!(verify(&moved).is_err());
        prop_assert!(!naive_verify_inclusion(
            alg,
            other_index,
            n,
            leaf,
            &proof.path,
            root
        ));
    }
    // An index outside the tree.
    let outside = InclusionProof {
        index: EntryIndex(n + r[0] % 3),
        ..proof.clone()
    };
    prop_assert_eq!(
        verify(&outside),
        Err(VerifyError::IndexOutOfRange {
            index: outside.index,
            size: TreeSize(n)
        })
    );
    // Another size. The size is bound only through the root, so a size whose proof has the
    // same shape leads to the same root; the recursive reference decides which do.
    for other_size in [
        n + 1,
        n + 1 + r[1] % (n + 1),
        n.saturating_sub(1),
        1 + r[2] % (2 * n),
    ] {
        if other_size == n {
            continue;
        }
        let resized = InclusionProof {
            size: TreeSize(other_size),
            ..proof.clone()
        };
        let ours = verify(&resized).is_ok();
        prop_assert_eq!(
            ours,
            naive_verify_inclusion(alg, i, other_size, leaf, &proof.path, root),
            "size {} -> {}",
            n,
            other_size
        );
        if ours {
            prop_assert_eq!(
                inclusion_plan(EntryIndex(i), TreeSize(other_size))
                    .unwrap()
                    .proof_len(),
                len
            );
        }
    }
    // A wrong root, a wrong leaf, the other hash function.
    prop_assert_eq!(
        verify_inclusion(alg, &leaf, &proof, &junk),
        Err(VerifyError::RootMismatch)
    );
    prop_assert_eq!(
        verify_inclusion(alg, &junk, &proof, &root),
        Err(VerifyError::RootMismatch)
    );
    if len > 0 {
        prop_assert_eq!(
            verify_inclusion(other(alg), &leaf, &proof, &root),
            Err(VerifyError::RootMismatch)
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn inclusion_proofs_verify_and_mutations_fail(
        alg in any_alg(),
        seed in any::<u64>(),
        n in 1usize..3000,
        picks in any::<[u64; 2]>(),
        r in any::<[u64; 4]>(),
    ) {
        let d = leaves(alg, seed, n);
        let tree = MemoryTree::from_leaf_hashes(alg, d.iter().copied());
        let size = 1 + (picks[0] % n as u64) as usize;
        let index = (picks[1] % size as u64) as usize;
        check_inclusion(alg, &d, &tree, size, index, r)?;
        // The edges of the same tree too.
        check_inclusion(alg, &d, &tree, n, n - 1, r)?;
        check_inclusion(alg, &d, &tree, n, 0, r)?;
    }
}

// ---------------------------------------------------------------------------------------
// Consistency proofs
// ---------------------------------------------------------------------------------------

/// Checks one consistency proof and all of its mutations.
fn check_consistency(
    alg: HashAlg,
    d: &[Hash],
    tree: &MemoryTree,
    old: usize,
    new: usize,
    r: [u64; 4],
) -> Result<(), TestCaseError> {
    let (m, n) = (old as u64, new as u64);
    let old_root = mth(alg, &d[..old]);
    let new_root = mth(alg, &d[..new]);
    let proof = prove_consistency(alg, TreeSize(m), TreeSize(n), tree).unwrap();
    let want = subproof(alg, old, &d[..new], true);
    prop_assert_eq!(&proof.path, &want, "PROOF({}, D[{}])", old, new);
    prop_assert_eq!(
        proof.path.len(),
        consistency_plan(TreeSize(m), TreeSize(n))
            .unwrap()
            .proof_len()
    );
    prop_assert_eq!(
        verify_consistency(alg, &proof, &old_root, &new_root),
        Ok(())
    );
    prop_assert!(naive_verify_consistency(
        alg,
        m,
        n,
        &proof.path,
        old_root,
        new_root
    ));

    let len = proof.path.len();
    let verify = |p: &ConsistencyProof| verify_consistency(alg, p, &old_root, &new_root);
    let with_path = |path: Vec<Hash>| ConsistencyProof {
        path,
        ..proof.clone()
    };
    let too_long = |got| {
        if m == n {
            Err(VerifyError::NonEmptyProofForEqualSizes { got })
        } else {
            Err(VerifyError::WrongProofLength { expected: len, got })
        }
    };
    let junk = alg.leaf_hash(&r[0].to_le_bytes());
    let is_root_mismatch = |v: Result<(), VerifyError>| {
        matches!(
            v,
            Err(VerifyError::OldRootMismatch | VerifyError::NewRootMismatch)
        )
    };

    if len > 0 {
        let j = (r[0] % len as u64) as usize;
        let mut flipped = proof.path.clone();
        flipped[j].0[(r[1] % 32) as usize] ^= 1 << (r[2] % 8);
        prop_assert!(is_root_mismatch(verify(&with_path(flipped))));
        let mut dropped = proof.path.clone();
        dropped.remove(j);
        prop_assert_eq!(
            verify(&with_path(dropped)),
            Err(VerifyError::WrongProofLength {
                expected: len,
                got: len - 1
            })
        );
        let mut duplicated = proof.path.clone();
        duplicated.insert(j, proof.path[j]);
        prop_assert_eq!(verify(&with_path(duplicated)), too_long(len + 1));
    }
    let mut added = proof.path.clone();
    added.insert((r[1] % (len as u64 + 1)) as usize, junk);
    prop_assert_eq!(verify(&with_path(added)), too_long(len + 1));
    if len >= 2 {
        let a = (r[2] % len as u64) as usize;
        let b = (a + 1 + (r[3] % (len as u64 - 1)) as usize) % len;
        let mut swapped = proof.path.clone();
        swapped.swap(a, b);
        prop_assert!(is_root_mismatch(verify(&with_path(swapped))));
    }
    // Other sizes: the recursive reference decides, as for inclusion.
    let sizes = [
        (m + 1, n),
        (m.saturating_sub(1), n),
        (m, n + 1),
        (m, n.saturating_sub(1)),
        (1 + r[1] % n, n),
        (m, m + r[2] % (2 * n)),
        (n, m),
    ];
    for (m2, n2) in sizes {
        if (m2, n2) == (m, n) {
            continue;
        }
        let resized = ConsistencyProof {
            old_size: TreeSize(m2),
            new_size: TreeSize(n2),
            ..proof.clone()
        };
        let ours = verify(&resized);
        prop_assert_eq!(
            ours.is_ok(),
            naive_verify_consistency(alg, m2, n2, &proof.path, old_root, new_root),
            "{}->{} as {}->{}: {:?}",
            m,
            n,
            m2,
            n2,
            ours
        );
    }
    // Wrong roots, swapped roots, the other hash function.
    if m == n {
        prop_assert_eq!(
            verify_consistency(alg, &proof, &junk, &new_root),
            Err(VerifyError::EqualSizesDifferentRoots)
        );
        // Nothing is hashed for equal sizes, so the hash function does not matter.
        prop_assert_eq!(
            verify_consistency(other(alg), &proof, &old_root, &new_root),
            Ok(())
        );
    } else {
        // When the old size is a power of two the old root is itself the first proof
        // hash, so a wrong one shows up as a new-root mismatch.
        let wrong_old = verify_consistency(alg, &proof, &junk, &new_root);
        if m.is_power_of_two() {
            prop_assert_eq!(wrong_old, Err(VerifyError::NewRootMismatch));
        } else {
            prop_assert_eq!(wrong_old, Err(VerifyError::OldRootMismatch));
        }
        prop_assert_eq!(
            verify_consistency(alg, &proof, &old_root, &junk),
            Err(VerifyError::NewRootMismatch)
        );
        prop_assert!(verify_consistency(alg, &proof, &new_root, &old_root).is_err());
        prop_assert!(is_root_mismatch(verify_consistency(
            other(alg),
            &proof,
            &old_root,
            &new_root
        )));
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn consistency_proofs_verify_and_mutations_fail(
        alg in any_alg(),
        seed in any::<u64>(),
        n in 1usize..3000,
        picks in any::<[u64; 2]>(),
        r in any::<[u64; 4]>(),
    ) {
        let d = leaves(alg, seed, n);
        let tree = MemoryTree::from_leaf_hashes(alg, d.iter().copied());
        let new = 1 + (picks[0] % n as u64) as usize;
        let old = 1 + (picks[1] % new as u64) as usize;
        check_consistency(alg, &d, &tree, old, new, r)?;
        check_consistency(alg, &d, &tree, new, new, r)?;
        check_consistency(alg, &d, &tree, 1, n, r)?;
        if n > 1 {
            check_consistency(alg, &d, &tree, n - 1, n, r)?;
        }
    }
}

/// Every pair of small sizes, exhaustively: plans, proofs and both verifiers agree with
/// the definitions.
#[test]
fn all_small_pairs_match_the_definitions() {
    for alg in HashAlg::ALL {
        let d = leaves(alg, 7, 70);
        let tree = MemoryTree::from_leaf_hashes(alg, d.iter().copied());
        for n in 1..=d.len() {
            let root = mth(alg, &d[..n]);
            for m in 0..n {
                let proof =
                    prove_inclusion(alg, EntryIndex(m as u64), TreeSize(n as u64), &tree).unwrap();
                assert_eq!(proof.path, path(alg, m, &d[..n]), "PATH({m}, D[{n}])");
                assert_eq!(verify_inclusion(alg, &d[m], &proof, &root), Ok(()));
            }
            for m in 1..=n {
                let proof =
                    prove_consistency(alg, TreeSize(m as u64), TreeSize(n as u64), &tree).unwrap();
                assert_eq!(
                    proof.path,
                    subproof(alg, m, &d[..n], true),
                    "PROOF({m}, D[{n}])"
                );
                assert_eq!(
                    verify_consistency(alg, &proof, &mth(alg, &d[..m]), &root),
                    Ok(())
                );
            }
        }
    }
}
