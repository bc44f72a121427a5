//! Known-answer tests: RFC 6962 / RFC 9162 SHA-256 vectors from transparency-dev/merkle.
//!
//! The vectors live in `tests/vectors/rfc6962_sha256.json` (copied unchanged from the
//! shared vector set, `source` fields included) and are compiled in with `include_str!`, so
//! a missing file fails the build instead of skipping. Every root and every proof is
//! rebuilt by our own prover from a [`MemoryTree`] and must equal the vector byte for byte;
//! every probe, valid or not, must give its `want_ok` under the semantics the file states.

use serde::Deserialize;
use sha2::Digest as _;
use vouch_ledger_core::proof::{
    self, ConsistencyProof, InclusionProof, prove_consistency, prove_inclusion, verify_consistency,
    verify_consistency_bytes, verify_inclusion, verify_inclusion_bytes,
};
use vouch_ledger_core::{EntryIndex, Frontier, Hash, HashAlg, MemoryTree, TreeSize};

const VECTORS: &str = include_str!("vectors/rfc6962_sha256.json");

const ALG: HashAlg = HashAlg::Sha256;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(clippy::struct_field_names)] // The field names are the JSON keys.
struct Vectors {
    description: String,
    source: Vec<serde_json::Value>,
    verification: String,
    hash_algorithm: String,
    leaf_hash: String,
    node_hash: String,
    empty_tree_root_hex: String,
    hasher_vectors: Vec<HasherVector>,
    leaves_hex: Vec<String>,
    leaf_hashes_hex: Vec<String>,
    roots: Vec<RootVector>,
    inclusion_proofs: Vec<InclusionVector>,
    consistency_proofs: Vec<ConsistencyVector>,
    all_pairs_sizes_1_to_8: AllPairs,
    probes: Probes,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HasherVector {
    desc: String,
    kind: String,
    input_hex: Option<String>,
    left_hex: Option<String>,
    right_hex: Option<String>,
    want_hex: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RootVector {
    size: u64,
    root_hex: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InclusionVector {
    index: u64,
    size: u64,
    #[serde(default)]
    leaf_hex: Option<String>,
    leaf_hash_hex: String,
    root_hex: String,
    proof: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyVector {
    size1: u64,
    size2: u64,
    root1_hex: String,
    root2_hex: String,
    proof: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllPairs {
    provenance: String,
    inclusion: Vec<InclusionVector>,
    consistency: Vec<ConsistencyVector>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Probes {
    semantics: serde_json::Value,
    inclusion: Vec<InclusionProbe>,
    consistency: Vec<ConsistencyProbe>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InclusionProbe {
    file: String,
    desc: String,
    index: u64,
    size: u64,
    leaf_hash_hex: String,
    root_hex: String,
    proof: Vec<String>,
    want_ok: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyProbe {
    file: String,
    desc: String,
    size1: u64,
    size2: u64,
    root1_hex: String,
    root2_hex: String,
    proof: Vec<String>,
    want_ok: bool,
}

fn vectors() -> Vectors {
    serde_json::from_str(VECTORS).expect("the vector file parses")
}

fn bytes(text: &str) -> Vec<u8> {
    hex::decode(text).expect("vector hex")
}

fn hash(text: &str) -> Hash {
    Hash::from_hex(text).expect("a 32-byte vector hash")
}

fn hashes(texts: &[String]) -> Vec<Hash> {
    texts.iter().map(|t| hash(t)).collect()
}

/// The tree over the eight standard leaves, built from their leaf hashes.
fn tree(v: &Vectors) -> MemoryTree {
    MemoryTree::from_leaf_hashes(ALG, v.leaves_hex.iter().map(|l| ALG.leaf_hash(&bytes(l))))
}

#[test]
fn the_file_is_the_sha256_set_with_its_provenance() {
    let v = vectors();
    assert_eq!(v.hash_algorithm, "SHA-256");
    assert!(v.description.contains("leaf-to-root"));
    assert!(v.leaf_hash.contains("0x00") && v.node_hash.contains("0x01"));
    assert!(!v.verification.is_empty() && !v.all_pairs_sizes_1_to_8.provenance.is_empty());
    assert!(
        v.source
            .iter()
            .any(|s| s.get("repo").and_then(|r| r.as_str()) == Some("transparency-dev/merkle"))
    );
    assert_eq!(v.leaves_hex.len(), 8);
    assert_eq!(v.roots.len(), 8);
    assert_eq!(v.all_pairs_sizes_1_to_8.inclusion.len(), 36);
    assert_eq!(v.all_pairs_sizes_1_to_8.consistency.len(), 36);
    assert_eq!(v.probes.inclusion.len(), 98);
    assert_eq!(v.probes.consistency.len(), 98);
    assert!(v.probes.semantics.get("inclusion").is_some());
    assert!(v.probes.semantics.get("consistency").is_some());
}

#[test]
fn hasher_vectors() {
    let v = vectors();
    assert_eq!(ALG.empty_root(), hash(&v.empty_tree_root_hex));
    let mut checked = 0;
    for hv in &v.hasher_vectors {
        let want = hash(&hv.want_hex);
        match hv.kind.as_str() {
            "empty_root" => assert_eq!(ALG.empty_root(), want, "{}", hv.desc),
            "leaf" => {
                let input = bytes(hv.input_hex.as_deref().expect("leaf input"));
                assert_eq!(ALG.leaf_hash(&input), want, "{}", hv.desc);
            }
            "node" => {
                // This vector hashes raw 4-byte children, which `HashAlg::node_hash` (32-byte
                // children only) cannot take. Check the formula SHA-256(0x01 ‖ left ‖ right)
                // against the vector, then check that `node_hash` computes that formula.
                let left = bytes(hv.left_hex.as_deref().expect("left"));
                let right = bytes(hv.right_hex.as_deref().expect("right"));
                let formula = |l: &[u8], r: &[u8]| -> [u8; 32] {
                    let mut h = sha2::Sha256::new();
                    h.update([0x01]);
                    h.update(l);
                    h.update(r);
                    h.finalize().into()
                };
                assert_eq!(formula(&left, &right), want.0, "{}", hv.desc);
                let (a, b) = (ALG.leaf_hash(&left), ALG.leaf_hash(&right));
                assert_eq!(ALG.node_hash(&a, &b).0, formula(&a.0, &b.0));
            }
            other => panic!("unknown hasher vector kind {other:?}"),
        }
        checked += 1;
    }
    assert_eq!(checked, 4);
}

#[test]
fn leaf_hashes_and_roots() {
    let v = vectors();
    for (leaf, want) in v.leaves_hex.iter().zip(&v.leaf_hashes_hex) {
        assert_eq!(ALG.leaf_hash(&bytes(leaf)), hash(want));
    }
    let tree = tree(&v);
    let leaves = hashes(&v.leaf_hashes_hex);
    let mut frontier = Frontier::new(ALG);
    for (r, leaf) in v.roots.iter().zip(&leaves) {
        frontier.push(*leaf, |_, _| {});
        assert_eq!(frontier.size(), TreeSize(r.size));
        let want = hash(&r.root_hex);
        assert_eq!(frontier.root(), want, "size {}", r.size);
        assert_eq!(tree.root_at(TreeSize(r.size)), Ok(want), "size {}", r.size);
        let size = usize::try_from(r.size).unwrap();
        assert_eq!(
            vouch_ledger_core::root_from_leaf_hashes(ALG, &leaves[..size]),
            want
        );
    }
}

fn check_inclusion(tree: &MemoryTree, c: &InclusionVector) {
    let what = format!("inclusion of {} in size {}", c.index, c.size);
    let root = hash(&c.root_hex);
    let leaf = hash(&c.leaf_hash_hex);
    if let Some(leaf_hex) = &c.leaf_hex {
        assert_eq!(ALG.leaf_hash(&bytes(leaf_hex)), leaf, "{what}");
    }
    assert_eq!(tree.root_at(TreeSize(c.size)), Ok(root), "{what}");
    let proof = prove_inclusion(ALG, EntryIndex(c.index), TreeSize(c.size), tree).unwrap();
    assert_eq!(proof.path, hashes(&c.proof), "{what}: generated path");
    assert_eq!(
        proof.path.len(),
        proof::inclusion_plan(EntryIndex(c.index), TreeSize(c.size))
            .unwrap()
            .proof_len()
    );
    assert_eq!(
        verify_inclusion(ALG, &leaf, &proof, &root),
        Ok(()),
        "{what}"
    );
}

fn check_consistency(tree: &MemoryTree, c: &ConsistencyVector) {
    let what = format!("consistency {} -> {}", c.size1, c.size2);
    let (old_root, new_root) = (hash(&c.root1_hex), hash(&c.root2_hex));
    assert_eq!(tree.root_at(TreeSize(c.size1)), Ok(old_root), "{what}");
    assert_eq!(tree.root_at(TreeSize(c.size2)), Ok(new_root), "{what}");
    let proof = prove_consistency(ALG, TreeSize(c.size1), TreeSize(c.size2), tree).unwrap();
    assert_eq!(proof.path, hashes(&c.proof), "{what}: generated path");
    assert_eq!(
        verify_consistency(ALG, &proof, &old_root, &new_root),
        Ok(()),
        "{what}"
    );
}

#[test]
fn inclusion_proofs() {
    let v = vectors();
    let tree = tree(&v);
    assert_eq!(v.inclusion_proofs.len(), 5);
    for c in &v.inclusion_proofs {
        check_inclusion(&tree, c);
    }
}

#[test]
fn consistency_proofs() {
    let v = vectors();
    let tree = tree(&v);
    assert_eq!(v.consistency_proofs.len(), 5);
    for c in &v.consistency_proofs {
        check_consistency(&tree, c);
    }
}

#[test]
fn all_pairs_sizes_1_to_8() {
    let v = vectors();
    let tree = tree(&v);
    let mut inclusion_pairs = Vec::new();
    for c in &v.all_pairs_sizes_1_to_8.inclusion {
        check_inclusion(&tree, c);
        inclusion_pairs.push((c.index, c.size));
    }
    let mut consistency_pairs = Vec::new();
    for c in &v.all_pairs_sizes_1_to_8.consistency {
        check_consistency(&tree, c);
        consistency_pairs.push((c.size1, c.size2));
    }
    // The file really covers every pair.
    inclusion_pairs.sort_unstable();
    consistency_pairs.sort_unstable();
    let all_inclusion: Vec<_> = (1..=8u64)
        .flat_map(|n| (0..n).map(move |i| (i, n)))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let all_consistency: Vec<_> = (1..=8u64)
        .flat_map(|n| (1..=n).map(move |m| (m, n)))
        .collect();
    assert_eq!(inclusion_pairs, all_inclusion);
    let mut all_consistency = all_consistency;
    all_consistency.sort_unstable();
    assert_eq!(consistency_pairs, all_consistency);
}

fn raw(texts: &[String]) -> Vec<Vec<u8>> {
    texts.iter().map(|t| bytes(t)).collect()
}

#[test]
fn inclusion_probes() {
    let v = vectors();
    let (mut ok, mut failed) = (0, 0);
    for p in &v.probes.inclusion {
        let got = verify_inclusion_bytes(
            ALG,
            EntryIndex(p.index),
            TreeSize(p.size),
            &bytes(&p.leaf_hash_hex),
            &raw(&p.proof),
            &bytes(&p.root_hex),
        );
        assert_eq!(got.is_ok(), p.want_ok, "{} ({}): {got:?}", p.desc, p.file);
        // Where every hash is well formed, the typed verifier must agree.
        let well_formed = [&p.leaf_hash_hex, &p.root_hex]
            .into_iter()
            .chain(&p.proof)
            .all(|h| h.len() == 64);
        if well_formed {
            let proof = InclusionProof {
                index: EntryIndex(p.index),
                size: TreeSize(p.size),
                path: hashes(&p.proof),
            };
            let typed = verify_inclusion(ALG, &hash(&p.leaf_hash_hex), &proof, &hash(&p.root_hex));
            assert_eq!(typed, got, "{} ({})", p.desc, p.file);
        }
        if p.want_ok { ok += 1 } else { failed += 1 }
    }
    assert_eq!((ok, failed), (6, 92));
}

#[test]
fn consistency_probes() {
    let v = vectors();
    let (mut ok, mut failed) = (0, 0);
    for p in &v.probes.consistency {
        let got = verify_consistency_bytes(
            ALG,
            TreeSize(p.size1),
            TreeSize(p.size2),
            &raw(&p.proof),
            &bytes(&p.root1_hex),
            &bytes(&p.root2_hex),
        );
        assert_eq!(got.is_ok(), p.want_ok, "{} ({}): {got:?}", p.desc, p.file);
        let well_formed = [&p.root1_hex, &p.root2_hex]
            .into_iter()
            .chain(&p.proof)
            .all(|h| h.len() == 64);
        if well_formed {
            let proof = ConsistencyProof {
                old_size: TreeSize(p.size1),
                new_size: TreeSize(p.size2),
                path: hashes(&p.proof),
            };
            let typed = verify_consistency(ALG, &proof, &hash(&p.root1_hex), &hash(&p.root2_hex));
            assert_eq!(typed, got, "{} ({})", p.desc, p.file);
        }
        if p.want_ok { ok += 1 } else { failed += 1 }
    }
    assert_eq!((ok, failed), (6, 92));
}

#[test]
fn probe_edge_cases_fail_for_the_stated_reason() {
    use vouch_ledger_core::VerifyError;
    let v = vectors();
    let h = hash(&v.leaf_hashes_hex[0]);
    // Size 0 never verifies.
    let empty = InclusionProof {
        index: EntryIndex(0),
        size: TreeSize(0),
        path: vec![],
    };
    assert_eq!(
        verify_inclusion(ALG, &h, &empty, &ALG.empty_root()),
        Err(VerifyError::IndexOutOfRange {
            index: EntryIndex(0),
            size: TreeSize(0)
        })
    );
    // Consistency from the empty tree never verifies, not even 0 -> 0.
    let zero = |new| ConsistencyProof {
        old_size: TreeSize(0),
        new_size: TreeSize(new),
        path: vec![],
    };
    let e = ALG.empty_root();
    assert_eq!(
        verify_consistency(ALG, &zero(0), &e, &e),
        Err(VerifyError::OldSizeZero)
    );
    assert_eq!(
        verify_consistency(ALG, &zero(1), &e, &h),
        Err(VerifyError::OldSizeZero)
    );
    // Equal sizes: roots compared byte for byte, even when they are not 32 bytes.
    assert_eq!(
        verify_consistency_bytes::<Vec<u8>>(
            ALG,
            TreeSize(1),
            TreeSize(1),
            &[],
            b"don't care 2",
            b"don't care 2"
        ),
        Ok(())
    );
    assert_eq!(
        verify_consistency_bytes::<Vec<u8>>(
            ALG,
            TreeSize(1),
            TreeSize(1),
            &[],
            b"don't care 1",
            b"don't care 2"
        ),
        Err(VerifyError::EqualSizesDifferentRoots)
    );
    assert_eq!(
        verify_consistency_bytes(ALG, TreeSize(1), TreeSize(1), &[h.0.to_vec()], &h.0, &h.0),
        Err(VerifyError::NonEmptyProofForEqualSizes { got: 1 })
    );
    assert_eq!(
        verify_consistency_bytes::<Vec<u8>>(ALG, TreeSize(2), TreeSize(1), &[], &h.0, &h.0),
        Err(VerifyError::OldSizeGreaterThanNew {
            old: TreeSize(2),
            new: TreeSize(1)
        })
    );
}
