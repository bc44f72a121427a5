//! Merkle inclusion and consistency proofs (RFC 9162 §2.1.3 and §2.1.4): which nodes a
//! proof needs, how a store assembles it, and how anyone verifies it.
//!
//! The module has three layers, each usable on its own:
//!
//! 1. **Index math.** [`inclusion_plan`] and [`consistency_plan`] name the perfect nodes
//!    ([`NodeId`]) a proof is made of, without touching a hash, so a disk-backed store reads
//!    exactly those nodes and nothing else.
//! 2. **Assembly.** [`prove_inclusion`] and [`prove_consistency`] fetch the planned nodes
//!    from a [`NodeSource`] and turn them into the proof path; [`prove_inclusion_at_edge`]
//!    and [`prove_consistency_at_edge`] do the same with the tree size's [`RightEdge`]
//!    computed once, so a store that serves many proofs at one size hashes nothing.
//! 3. **Verification.** [`verify_inclusion`] and [`verify_consistency`] are literal
//!    transcriptions of RFC 9162 §2.1.3.2 and §2.1.4.2, with the edge cases of
//!    transparency-dev/merkle; the `_bytes` variants take hashes whose length has not been
//!    checked yet, straight from the wire.
//!
//! Verification never panics, whatever it is given.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::indexing_slicing))]

use std::fmt;
use std::ops::Range;

use crate::hash::{Hash, HashAlg};
use crate::index::{EntryIndex, NodeId, TreeSize};
use crate::merkle::{Frontier, fold_from_right};

// ---------------------------------------------------------------------------------------
// Index math
// ---------------------------------------------------------------------------------------

/// A proof's index math could not be done: the request names no valid proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The entry is not in a tree of this size (every entry is out of range of size 0).
    #[error("entry index {index} is not in a tree of size {size}")]
    IndexOutOfRange {
        /// The entry asked for.
        index: EntryIndex,
        /// The tree size asked for.
        size: TreeSize,
    },
    /// A consistency proof from a larger tree to a smaller one.
    #[error("old tree size {old} is greater than new tree size {new}")]
    OldSizeGreaterThanNew {
        /// The old (first) tree size.
        old: TreeSize,
        /// The new (second) tree size.
        new: TreeSize,
    },
    /// A consistency proof from the empty tree, which RFC 9162 does not define and
    /// verifiers reject.
    #[error("a consistency proof needs a non-empty old tree")]
    OldSizeZero,
}

/// The perfect nodes a proof is made of, and how they turn into the proof path.
///
/// The proof path, leaf-to-root as RFC 9162 orders it, is [`ProofPlan::nodes`] in order,
/// except that the nodes in [`ProofPlan::rehash`], when there is such a range, are replaced
/// by one hash: the node that the right edge of the tree has instead of a perfect sibling.
/// With `h[a..b]` the hashes of the nodes in that range (left to right, decreasing level),
/// that hash is `H(0x01 ‖ h[a] ‖ H(0x01 ‖ h[a+1] ‖ … H(0x01 ‖ h[b-2] ‖ h[b-1])))`.
///
/// Every node is perfect (all its leaves are inside the tree), so it never changes as the
/// tree grows. A proof has at most 64 hashes, and a rehash range at most 63 nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofPlan {
    nodes: Vec<NodeId>,
    // INVARIANT: `None`, or a range of at least two nodes within `nodes`.
    rehash: Option<Range<usize>>,
}

/// [`ProofPlan::assemble`] got a different number of hashes than the plan has nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the proof plan has {expected} nodes, got {got} hashes")]
pub struct NodeCountMismatch {
    /// The number of nodes in the plan.
    pub expected: usize,
    /// The number of hashes given.
    pub got: usize,
}

impl ProofPlan {
    /// The nodes to fetch, in proof order.
    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }

    /// The positions in [`ProofPlan::nodes`] whose hashes are folded into one proof hash,
    /// if any.
    pub fn rehash(&self) -> Option<Range<usize>> {
        self.rehash.clone()
    }

    /// The number of hashes in the finished proof path.
    pub fn proof_len(&self) -> usize {
        match &self.rehash {
            None => self.nodes.len(),
            Some(range) => self.nodes.len() - range.len() + 1,
        }
    }

    /// Turns the hashes of [`ProofPlan::nodes`], in the same order, into the proof path.
    ///
    /// # Errors
    ///
    /// [`NodeCountMismatch`] if `hashes` is not as long as the plan.
    pub fn assemble(&self, alg: HashAlg, hashes: &[Hash]) -> Result<Vec<Hash>, NodeCountMismatch> {
        let mismatch = NodeCountMismatch {
            expected: self.nodes.len(),
            got: hashes.len(),
        };
        if hashes.len() != self.nodes.len() {
            return Err(mismatch);
        }
        let Some(range) = &self.rehash else {
            return Ok(hashes.to_vec());
        };
        let (before, rest) = hashes.split_at_checked(range.start).ok_or(mismatch)?;
        let (folded, after) = rest.split_at_checked(range.len()).ok_or(mismatch)?;
        let mut path = Vec::with_capacity(self.proof_len());
        path.extend_from_slice(before);
        path.push(fold_from_right(alg, folded).ok_or(mismatch)?);
        path.extend_from_slice(after);
        Ok(path)
    }

    /// Appends the nodes of one proof hash: a perfect sibling, or the nodes to fold for a
    /// sibling cut by the end of the tree.
    fn push_step(&mut self, step: Step, size: u64) {
        match step {
            Step::Perfect(id) => self.nodes.push(id),
            Step::Truncated { level } => {
                // The node straddles the end of the tree. Its part inside the tree is
                // covered by the tree's own compact-range nodes below `level`, one per set
                // bit of `size` under `level`: fewer than 64 of them.
                let start = self.nodes.len();
                self.nodes.extend(
                    Frontier::ids_for(TreeSize(size)).filter(|id| u32::from(id.level) < level),
                );
                if self.nodes.len() - start > 1 {
                    self.rehash = Some(start..self.nodes.len());
                }
            }
        }
    }
}

/// One hash of an authentication path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The sibling is a perfect node.
    Perfect(NodeId),
    /// The sibling at `level` straddles the end of the tree: the proof carries the hash of
    /// its part inside the tree.
    Truncated { level: u32 },
}

/// The steps of the path from the perfect node `(level, index)` up to the root of a tree of
/// `size` leaves (RFC 9162 `PATH`, generalised from leaves to perfect nodes): at each level,
/// the sibling of the current node if any of its leaves is in the tree.
// INVARIANT: `size >= 1` and the start node is a perfect node of the tree.
#[derive(Debug, Clone)]
struct PathSteps {
    level: u32,
    index: u64,
    size: u64,
}

impl Iterator for PathSteps {
    type Item = Step;

    fn next(&mut self) -> Option<Step> {
        while self.level < 64 {
            let level = self.level;
            // The last node of this level that holds any leaf of the tree.
            let last = (self.size - 1) >> level;
            if last == 0 {
                // The current node covers the whole tree: it is the root.
                return None;
            }
            let sibling = self.index ^ 1;
            self.index >>= 1;
            self.level += 1;
            if sibling > last {
                // No leaf of the tree under the sibling: the parent is the node itself.
                continue;
            }
            if sibling < self.size >> level {
                return Some(Step::Perfect(NodeId {
                    level: u8::try_from(level).ok()?,
                    index: sibling,
                }));
            }
            return Some(Step::Truncated { level });
        }
        None
    }
}

/// The path from perfect node `(level, index)` in a tree of `size >= 1` leaves.
fn path_steps(level: u32, index: u64, size: u64) -> PathSteps {
    PathSteps { level, index, size }
}

/// Which nodes prove that entry `index` is in the tree of `size` leaves (RFC 9162
/// §2.1.3.1 `PATH(index, D[size])`).
///
/// The plan has one proof hash per level at which the entry's ancestor has a sibling with
/// leaves in the tree, from the leaf up; at most one of them (the sibling that reaches past
/// the end of the tree) is a [`ProofPlan::rehash`] range.
///
/// # Errors
///
/// [`ProofError::IndexOutOfRange`] if `index >= size` (so always for size 0).
pub fn inclusion_plan(index: EntryIndex, size: TreeSize) -> Result<ProofPlan, ProofError> {
    if !size.contains(index) {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut plan = ProofPlan {
        nodes: Vec::with_capacity(64),
        rehash: None,
    };
    for step in path_steps(0, index.0, size.0) {
        plan.push_step(step, size.0);
    }
    Ok(plan)
}

/// The last perfect node of a tree of `old >= 1` leaves: the smallest subtree of its
/// compact range, `(L, k)` with `L` the number of trailing zero bits of `old`.
fn last_perfect_node(old: u64) -> (u32, u64) {
    let level = old.trailing_zeros();
    (level, (old - 1) >> level)
}

/// Which nodes prove that the tree of `old` leaves is a prefix of the tree of `new` leaves
/// (RFC 9162 §2.1.4.1 `PROOF(old, D[new])`).
///
/// With `(L, k)` the last perfect node of the old tree (`L` = trailing zero bits of `old`,
/// `k = (old - 1) >> L`), the proof is that node, left out when `old` is a power of two
/// (then it is the old root, which the verifier already has), followed by the path from
/// `(L, k)` to the root of the new tree. Equal sizes have the empty proof.
///
/// # Errors
///
/// [`ProofError::OldSizeGreaterThanNew`] if `old > new`, [`ProofError::OldSizeZero`] if
/// `old` is 0.
pub fn consistency_plan(old: TreeSize, new: TreeSize) -> Result<ProofPlan, ProofError> {
    if old > new {
        return Err(ProofError::OldSizeGreaterThanNew { old, new });
    }
    if old.0 == 0 {
        return Err(ProofError::OldSizeZero);
    }
    let mut plan = ProofPlan {
        nodes: Vec::with_capacity(64),
        rehash: None,
    };
    if old == new {
        return Ok(plan);
    }
    let (level, index) = last_perfect_node(old.0);
    if index != 0 {
        plan.nodes.push(NodeId {
            level: u8::try_from(level).unwrap_or(63),
            index,
        });
    }
    for step in path_steps(level, index, new.0) {
        plan.push_step(step, new.0);
    }
    Ok(plan)
}

/// The number of hashes in a valid inclusion proof for `index < size`.
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    path_steps(0, index, size).count()
}

/// The number of hashes in a valid consistency proof for `0 < old < new`.
fn consistency_proof_len(old: u64, new: u64) -> usize {
    let (level, index) = last_perfect_node(old);
    usize::from(index != 0) + path_steps(level, index, new).count()
}

// ---------------------------------------------------------------------------------------
// Assembly
// ---------------------------------------------------------------------------------------

/// Where proofs get their node hashes: a store of the tree's perfect nodes.
///
/// A node never changes once it is complete, so a source may serve a node of any tree size
/// it has reached. A store may serve level 0 by re-hashing the entry itself.
pub trait NodeSource {
    /// Why a node could not be read.
    type Error;

    /// The hash of one perfect node.
    ///
    /// # Errors
    ///
    /// Whatever the store fails with, including a node it does not have.
    fn node(&self, id: NodeId) -> Result<Hash, Self::Error>;

    /// The hashes of several perfect nodes, in the same order. Override this to batch reads.
    ///
    /// # Errors
    ///
    /// The first error [`NodeSource::node`] returns.
    fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, Self::Error> {
        ids.iter().map(|&id| self.node(id)).collect()
    }
}

impl<S: NodeSource + ?Sized> NodeSource for &S {
    type Error = S::Error;

    fn node(&self, id: NodeId) -> Result<Hash, S::Error> {
        (**self).node(id)
    }

    fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, S::Error> {
        (**self).nodes(ids)
    }
}

/// A proof could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProveError<E> {
    /// The request names no valid proof.
    #[error(transparent)]
    Plan(#[from] ProofError),
    /// The node source failed.
    #[error("cannot read a Merkle node")]
    Source(#[source] E),
    /// The node source answered with the wrong number of hashes.
    #[error("node source answered with the wrong number of hashes")]
    NodeCount(#[from] NodeCountMismatch),
}

/// An inclusion proof (RFC 9162 §2.1.3): `path` proves that the leaf at `index` is in the
/// tree of `size` leaves.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InclusionProof {
    /// The entry the proof is for.
    pub index: EntryIndex,
    /// The size of the tree whose root the proof leads to.
    pub size: TreeSize,
    /// The sibling hashes, leaf-to-root (RFC 9162 `inclusion_path`).
    pub path: Vec<Hash>,
}

/// A consistency proof (RFC 9162 §2.1.4): `path` proves that the tree of `old_size` leaves
/// is a prefix of the tree of `new_size` leaves.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConsistencyProof {
    /// The size of the earlier tree.
    pub old_size: TreeSize,
    /// The size of the later tree.
    pub new_size: TreeSize,
    /// The proof hashes, leaf-to-root (RFC 9162 `consistency_path`).
    pub path: Vec<Hash>,
}

/// Builds the inclusion proof for entry `index` in the tree of `size` leaves.
///
/// # Errors
///
/// [`ProveError::Plan`] if `index >= size`, [`ProveError::Source`] if a node cannot be
/// read, [`ProveError::NodeCount`] if the source answers with the wrong number of hashes.
pub fn prove_inclusion<S: NodeSource + ?Sized>(
    alg: HashAlg,
    index: EntryIndex,
    size: TreeSize,
    source: &S,
) -> Result<InclusionProof, ProveError<S::Error>> {
    let plan = inclusion_plan(index, size)?;
    let hashes = source.nodes(plan.nodes()).map_err(ProveError::Source)?;
    let path = plan.assemble(alg, &hashes)?;
    Ok(InclusionProof { index, size, path })
}

/// Builds the consistency proof from the tree of `old` leaves to the tree of `new` leaves.
///
/// # Errors
///
/// [`ProveError::Plan`] if `old > new` or `old == 0`, [`ProveError::Source`] if a node
/// cannot be read, [`ProveError::NodeCount`] if the source answers with the wrong number
/// of hashes.
pub fn prove_consistency<S: NodeSource + ?Sized>(
    alg: HashAlg,
    old: TreeSize,
    new: TreeSize,
    source: &S,
) -> Result<ConsistencyProof, ProveError<S::Error>> {
    let plan = consistency_plan(old, new)?;
    let hashes = source.nodes(plan.nodes()).map_err(ProveError::Source)?;
    let path = plan.assemble(alg, &hashes)?;
    Ok(ConsistencyProof {
        old_size: old,
        new_size: new,
        path,
    })
}

/// The right edge of one tree size: the fold of every suffix of its compact range.
///
/// A proof at size `n` whose path has a sibling cut by the end of the tree
/// ([`ProofPlan::rehash`]) folds the last few nodes of `n`'s compact range into one hash:
/// always a suffix of [`Frontier::ids_for`]`(n)`. `RightEdge` holds all those suffix folds
/// (and the root, the fold of the whole range), so that every later proof at that size reads
/// only its perfect siblings and hashes nothing. It is built from the frontier once per size
/// at the cost of computing the root, and holds at most 64 hashes.
///
/// The hashes are only as good as the frontier it was built from: compare
/// [`RightEdge::root`] with a trusted root.
///
/// ```
/// use vouch_ledger_core::{HashAlg, MemoryTree, TreeSize};
/// use vouch_ledger_core::proof::{RightEdge, prove_inclusion, prove_inclusion_at_edge};
///
/// let alg = HashAlg::Sha256;
/// let tree = MemoryTree::from_leaf_hashes(alg, (0u8..13).map(|i| alg.leaf_hash(&[i])));
/// let edge = RightEdge::new(&tree.frontier_at(TreeSize(13)).unwrap());
/// assert_eq!(edge.root(), tree.root());
/// for i in 0..13 {
///     let index = vouch_ledger_core::EntryIndex(i);
///     assert_eq!(
///         prove_inclusion_at_edge(&edge, index, &tree).unwrap(),
///         prove_inclusion(alg, index, TreeSize(13), &tree).unwrap(),
///     );
/// }
/// ```
// INVARIANT: `folds.len() == size.count_ones()`, and `folds[j]` is the fold from the right
// of the hashes of the nodes `j..` of `Frontier::ids_for(size)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RightEdge {
    alg: HashAlg,
    size: TreeSize,
    folds: Vec<Hash>,
}

impl RightEdge {
    /// The right edge of the frontier's tree.
    pub fn new(frontier: &Frontier) -> Self {
        let alg = frontier.alg();
        // Fold from the right: each node's fold is H(node ‖ fold of the nodes after it).
        let mut folds: Vec<Hash> = Vec::with_capacity(frontier.nodes().len());
        let mut right: Option<Hash> = None;
        for node in frontier.nodes().iter().rev() {
            let fold = match right {
                None => *node,
                Some(right) => alg.node_hash(node, &right),
            };
            folds.push(fold);
            right = Some(fold);
        }
        folds.reverse();
        Self {
            alg,
            size: frontier.size(),
            folds,
        }
    }

    /// The hash function.
    pub fn alg(&self) -> HashAlg {
        self.alg
    }

    /// The tree size this edge belongs to.
    pub fn size(&self) -> TreeSize {
        self.size
    }

    /// The root of the tree of [`RightEdge::size`] leaves.
    pub fn root(&self) -> Hash {
        self.folds
            .first()
            .copied()
            .unwrap_or_else(|| self.alg.empty_root())
    }

    /// The fold of the last `count` nodes of the compact range, if it has that many.
    fn fold_of_last(&self, count: usize) -> Option<Hash> {
        let start = self.folds.len().checked_sub(count)?;
        self.folds.get(start).copied()
    }

    /// The proof path of `plan` (a plan at this edge's size): the planned nodes outside the
    /// rehash range come from `source`, the folded hash from the edge.
    fn assemble<S: NodeSource + ?Sized>(
        &self,
        plan: &ProofPlan,
        source: &S,
    ) -> Result<Vec<Hash>, ProveError<S::Error>> {
        let Some(range) = plan.rehash() else {
            let hashes = source.nodes(plan.nodes()).map_err(ProveError::Source)?;
            return Ok(plan.assemble(self.alg, &hashes)?);
        };
        let mismatch = NodeCountMismatch {
            expected: plan.nodes().len(),
            got: plan.nodes().len() - range.len() + 1,
        };
        let (before, rest) = plan.nodes().split_at_checked(range.start).ok_or(mismatch)?;
        let after = rest.get(range.len()..).ok_or(mismatch)?;
        let folded = self.fold_of_last(range.len()).ok_or(mismatch)?;
        let mut ids = Vec::with_capacity(before.len() + after.len());
        ids.extend_from_slice(before);
        ids.extend_from_slice(after);
        let mut path = source.nodes(&ids).map_err(ProveError::Source)?;
        if path.len() != ids.len() {
            return Err(NodeCountMismatch {
                expected: ids.len(),
                got: path.len(),
            }
            .into());
        }
        path.insert(range.start, folded);
        Ok(path)
    }
}

/// [`prove_inclusion`] at the size of `edge`, taking the folded right-edge sibling (if the
/// path has one) from the edge instead of reading and hashing its nodes.
///
/// # Errors
///
/// As [`prove_inclusion`].
pub fn prove_inclusion_at_edge<S: NodeSource + ?Sized>(
    edge: &RightEdge,
    index: EntryIndex,
    source: &S,
) -> Result<InclusionProof, ProveError<S::Error>> {
    let plan = inclusion_plan(index, edge.size)?;
    let path = edge.assemble(&plan, source)?;
    Ok(InclusionProof {
        index,
        size: edge.size,
        path,
    })
}

/// [`prove_consistency`] from `old` to the size of `edge`, taking the folded right-edge
/// sibling (if the proof has one) from the edge.
///
/// # Errors
///
/// As [`prove_consistency`].
pub fn prove_consistency_at_edge<S: NodeSource + ?Sized>(
    edge: &RightEdge,
    old: TreeSize,
    source: &S,
) -> Result<ConsistencyProof, ProveError<S::Error>> {
    let plan = consistency_plan(old, edge.size)?;
    let path = edge.assemble(&plan, source)?;
    Ok(ConsistencyProof {
        old_size: old,
        new_size: edge.size,
        path,
    })
}

// ---------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------

/// Which hash of a proof was malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HashField {
    /// The leaf hash being proven.
    LeafHash,
    /// The root of an inclusion proof.
    Root,
    /// The old root of a consistency proof.
    OldRoot,
    /// The new root of a consistency proof.
    NewRoot,
    /// The proof path hash at this position (0-based).
    Path(usize),
}

impl fmt::Display for HashField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HashField::LeafHash => f.write_str("leaf hash"),
            HashField::Root => f.write_str("root"),
            HashField::OldRoot => f.write_str("old root"),
            HashField::NewRoot => f.write_str("new root"),
            HashField::Path(i) => write!(f, "proof hash {i}"),
        }
    }
}

/// Why a proof did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The entry is not in a tree of this size (RFC 9162 §2.1.3.2 step 1).
    #[error("entry index {index} is not in a tree of size {size}")]
    IndexOutOfRange {
        /// The index the proof claims.
        index: EntryIndex,
        /// The tree size the proof claims.
        size: TreeSize,
    },
    /// The proof has the wrong number of hashes for its index and sizes (the RFC 9162
    /// checks on `sn` and on an empty consistency path).
    #[error("the proof has {got} hashes, expected {expected}")]
    WrongProofLength {
        /// The length of a valid proof for these sizes.
        expected: usize,
        /// The length of the proof given.
        got: usize,
    },
    /// The inclusion proof leads to a different root.
    #[error("the inclusion proof leads to a different root")]
    RootMismatch,
    /// A consistency proof from a larger tree to a smaller one.
    #[error("old tree size {old} is greater than new tree size {new}")]
    OldSizeGreaterThanNew {
        /// The old (first) tree size.
        old: TreeSize,
        /// The new (second) tree size.
        new: TreeSize,
    },
    /// A consistency proof from the empty tree.
    #[error("a consistency proof needs a non-empty old tree")]
    OldSizeZero,
    /// A non-empty consistency proof between trees of the same size.
    #[error("trees of equal size need an empty consistency proof, got {got} hashes")]
    NonEmptyProofForEqualSizes {
        /// The length of the proof given.
        got: usize,
    },
    /// Two trees of the same size with different roots.
    #[error("trees of equal size have different roots")]
    EqualSizesDifferentRoots,
    /// The consistency proof does not lead to the old root.
    #[error("the consistency proof does not lead to the old root")]
    OldRootMismatch,
    /// The consistency proof does not lead to the new root.
    #[error("the consistency proof does not lead to the new root")]
    NewRootMismatch,
    /// A hash was not 32 bytes long.
    #[error("the {field} is {len} bytes long, expected 32")]
    MalformedHash {
        /// Which hash.
        field: HashField,
        /// Its length in bytes.
        len: usize,
    },
}

/// `LSB(x)` of RFC 9162: whether the least significant bit is set.
const fn lsb(x: u64) -> bool {
    x & 1 == 1
}

/// Runs RFC 9162 §2.1.3.2 steps 1 to 4 and the `sn` half of step 5: the root that the
/// inclusion proof for `leaf_hash` at `index` in a tree of `size` leaves leads to.
///
/// # Errors
///
/// [`VerifyError::IndexOutOfRange`] if `index >= size`,
/// [`VerifyError::WrongProofLength`] if the path is too long or too short.
pub fn root_from_inclusion_proof(
    alg: HashAlg,
    index: EntryIndex,
    size: TreeSize,
    leaf_hash: &Hash,
    path: &[Hash],
) -> Result<Hash, VerifyError> {
    let wrong_length = || VerifyError::WrongProofLength {
        expected: inclusion_proof_len(index.0, size.0),
        got: path.len(),
    };
    // 1. Compare leaf_index from the inclusion_proof_v2 structure against tree_size. If
    //    leaf_index is greater than or equal to tree_size, then fail the proof
    //    verification.
    if index.0 >= size.0 {
        return Err(VerifyError::IndexOutOfRange { index, size });
    }
    // 2. Set fn to leaf_index and sn to tree_size - 1.
    let mut fn_ = index.0;
    let mut sn = size.0 - 1;
    // 3. Set r to hash.
    let mut r = *leaf_hash;
    // 4. For each value p in the inclusion_path array:
    for p in path {
        // a. If sn is 0, then stop the iteration and fail the proof verification.
        if sn == 0 {
            return Err(wrong_length());
        }
        // b. If LSB(fn) is set, or if fn is equal to sn, then:
        if lsb(fn_) || fn_ == sn {
            // i. Set r to HASH(0x01 || p || r).
            r = alg.node_hash(p, &r);
            // ii. If LSB(fn) is not set, then right-shift both fn and sn equally until
            //     either LSB(fn) is set or fn is 0.
            if !lsb(fn_) {
                while !(lsb(fn_) || fn_ == 0) {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            // Otherwise:
            // i. Set r to HASH(0x01 || r || p).
            r = alg.node_hash(&r, p);
        }
        // c. Finally, right-shift both fn and sn one time.
        fn_ >>= 1;
        sn >>= 1;
    }
    // 5. Compare sn to 0. (The comparison of r with root_hash is the caller's.)
    if sn != 0 {
        return Err(wrong_length());
    }
    Ok(r)
}

/// Verifies an inclusion proof exactly as RFC 9162 §2.1.3.2 says: `leaf_hash` is the
/// leaf at `proof.index` in the tree of `proof.size` leaves whose root is `root`.
///
/// The tree size is bound only through the root: trees of different sizes can share the
/// shape of a proof, so take the size and the root from the same signed checkpoint.
///
/// # Errors
///
/// [`VerifyError::IndexOutOfRange`] if the index is not below the size (always for size
/// 0), [`VerifyError::WrongProofLength`] if the path is too long or too short,
/// [`VerifyError::RootMismatch`] if the path leads to another root.
pub fn verify_inclusion(
    alg: HashAlg,
    leaf_hash: &Hash,
    proof: &InclusionProof,
    root: &Hash,
) -> Result<(), VerifyError> {
    let r = root_from_inclusion_proof(alg, proof.index, proof.size, leaf_hash, &proof.path)?;
    // 5. (continued) Compare r against the root_hash. If sn is equal to 0 and r and the
    //    root_hash are equal, then the log has proven the inclusion of hash. Otherwise, fail
    //    the proof verification.
    if r == *root {
        Ok(())
    } else {
        Err(VerifyError::RootMismatch)
    }
}

/// Verifies a consistency proof: the tree of `proof.old_size` leaves with root `old_root`
/// is a prefix of the tree of `proof.new_size` leaves with root `new_root`.
///
/// Before the RFC 9162 §2.1.4.2 algorithm, which is defined for `0 < old < new`, the edge
/// cases are decided as transparency-dev/merkle's `VerifyConsistency` does, in this order:
/// `old > new` fails; `old == 0` fails (even `0 → 0`: nothing about the empty tree needs
/// proving); `old == new` succeeds if and only if the proof is empty and the roots are
/// equal.
///
/// # Errors
///
/// [`VerifyError::OldSizeGreaterThanNew`], [`VerifyError::OldSizeZero`],
/// [`VerifyError::NonEmptyProofForEqualSizes`] and
/// [`VerifyError::EqualSizesDifferentRoots`] for the edge cases above;
/// [`VerifyError::WrongProofLength`] if the path is empty, too long or too short;
/// [`VerifyError::OldRootMismatch`] or [`VerifyError::NewRootMismatch`] if it leads to
/// other roots.
pub fn verify_consistency(
    alg: HashAlg,
    proof: &ConsistencyProof,
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), VerifyError> {
    let (first, second, path) = (proof.old_size.0, proof.new_size.0, proof.path.as_slice());
    if let Some(verdict) = equal_or_invalid_sizes(
        proof.old_size,
        proof.new_size,
        path.len(),
        old_root.as_bytes(),
        new_root.as_bytes(),
    ) {
        return verdict;
    }
    // From here on 0 < first < second.
    let wrong_length = || VerifyError::WrongProofLength {
        expected: consistency_proof_len(first, second),
        got: path.len(),
    };
    // 1. If consistency_path is an empty array, stop and fail the proof verification.
    if path.is_empty() {
        return Err(wrong_length());
    }
    // 2. If first is an exact power of 2, then prepend first_hash to the consistency_path
    //    array.
    let prepended = first.is_power_of_two().then_some(old_root);
    let mut consistency_path = prepended.into_iter().chain(path);
    // 3. Set fn to first - 1 and sn to second - 1.
    let mut fn_ = first - 1;
    let mut sn = second - 1;
    // 4. If LSB(fn) is set, then right-shift both fn and sn equally until LSB(fn) is not
    //    set.
    while lsb(fn_) {
        fn_ >>= 1;
        sn >>= 1;
    }
    // 5. Set both fr and sr to the first value in the consistency_path array.
    let Some(first_value) = consistency_path.next() else {
        return Err(wrong_length());
    };
    let mut fr = *first_value;
    let mut sr = *first_value;
    // 6. For each subsequent value c in the consistency_path array:
    for c in consistency_path {
        // a. If sn is 0, then stop the iteration and fail the proof verification.
        if sn == 0 {
            return Err(wrong_length());
        }
        // b. If LSB(fn) is set, or if fn is equal to sn, then:
        if lsb(fn_) || fn_ == sn {
            // i. Set fr to HASH(0x01 || c || fr).
            fr = alg.node_hash(c, &fr);
            //    Set sr to HASH(0x01 || c || sr).
            sr = alg.node_hash(c, &sr);
            // ii. If LSB(fn) is not set, then right-shift both fn and sn equally until
            //     either LSB(fn) is set or fn is 0.
            if !lsb(fn_) {
                while !(lsb(fn_) || fn_ == 0) {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            // Otherwise:
            // i. Set sr to HASH(0x01 || sr || c).
            sr = alg.node_hash(&sr, c);
        }
        // c. Finally, right-shift both fn and sn one time.
        fn_ >>= 1;
        sn >>= 1;
    }
    // 7. After completing iterating through the consistency_path array as described above,
    //    verify that the fr calculated is equal to the first_hash supplied, that the sr
    //    calculated is equal to the second_hash supplied and that sn is 0.
    if sn != 0 {
        return Err(wrong_length());
    }
    if fr != *old_root {
        return Err(VerifyError::OldRootMismatch);
    }
    if sr != *new_root {
        return Err(VerifyError::NewRootMismatch);
    }
    Ok(())
}

/// The consistency verdict for every case outside RFC 9162 §2.1.4.2 (`0 < old < new`), or
/// `None` to run the RFC algorithm. Roots are compared as bytes, without a length check,
/// as transparency-dev/merkle does for equal sizes.
fn equal_or_invalid_sizes(
    old: TreeSize,
    new: TreeSize,
    path_len: usize,
    old_root: &[u8],
    new_root: &[u8],
) -> Option<Result<(), VerifyError>> {
    if old > new {
        return Some(Err(VerifyError::OldSizeGreaterThanNew { old, new }));
    }
    if old.0 == 0 {
        return Some(Err(VerifyError::OldSizeZero));
    }
    if old == new {
        if path_len != 0 {
            return Some(Err(VerifyError::NonEmptyProofForEqualSizes {
                got: path_len,
            }));
        }
        if old_root != new_root {
            return Some(Err(VerifyError::EqualSizesDifferentRoots));
        }
        return Some(Ok(()));
    }
    None
}

/// Parses one hash of unchecked length.
fn parse_hash(bytes: &[u8], field: HashField) -> Result<Hash, VerifyError> {
    Hash::from_slice(bytes).map_err(|_| VerifyError::MalformedHash {
        field,
        len: bytes.len(),
    })
}

/// Parses a proof path of unchecked hash lengths.
fn parse_path<P: AsRef<[u8]>>(path: &[P]) -> Result<Vec<Hash>, VerifyError> {
    path.iter()
        .enumerate()
        .map(|(i, p)| parse_hash(p.as_ref(), HashField::Path(i)))
        .collect()
}

/// [`verify_inclusion`] for hashes whose lengths have not been checked yet: succeeds if
/// and only if every hash is 32 bytes long and RFC 9162 §2.1.3.2 verification succeeds.
///
/// # Errors
///
/// [`VerifyError::MalformedHash`] if a hash is not 32 bytes long, otherwise as
/// [`verify_inclusion`].
pub fn verify_inclusion_bytes<P: AsRef<[u8]>>(
    alg: HashAlg,
    index: EntryIndex,
    size: TreeSize,
    leaf_hash: &[u8],
    path: &[P],
    root: &[u8],
) -> Result<(), VerifyError> {
    let leaf_hash = parse_hash(leaf_hash, HashField::LeafHash)?;
    let root = parse_hash(root, HashField::Root)?;
    let proof = InclusionProof {
        index,
        size,
        path: parse_path(path)?,
    };
    verify_inclusion(alg, &leaf_hash, &proof, &root)
}

/// [`verify_consistency`] for hashes whose lengths have not been checked yet.
///
/// For equal sizes the roots are compared byte for byte whatever their length, as
/// transparency-dev/merkle does; otherwise every hash must be 32 bytes long.
///
/// # Errors
///
/// As [`verify_consistency`], and [`VerifyError::MalformedHash`] if a hash the RFC 9162
/// algorithm needs is not 32 bytes long.
pub fn verify_consistency_bytes<P: AsRef<[u8]>>(
    alg: HashAlg,
    old_size: TreeSize,
    new_size: TreeSize,
    path: &[P],
    old_root: &[u8],
    new_root: &[u8],
) -> Result<(), VerifyError> {
    if let Some(verdict) =
        equal_or_invalid_sizes(old_size, new_size, path.len(), old_root, new_root)
    {
        return verdict;
    }
    let old_root = parse_hash(old_root, HashField::OldRoot)?;
    let new_root = parse_hash(new_root, HashField::NewRoot)?;
    let proof = ConsistencyProof {
        old_size,
        new_size,
        path: parse_path(path)?,
    };
    verify_consistency(alg, &proof, &old_root, &new_root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::MemoryTree;

    /// Whether a node is perfect and inside a tree of `size` leaves.
    fn inside(id: NodeId, size: u64) -> bool {
        u32::from(id.level) < 64 && (u128::from(id.index) + 1) << id.level <= u128::from(size)
    }

    fn max_proof_len(size: u64) -> usize {
        // Bit length of `size - 1`: the height of the tree.
        (64 - (size - 1).leading_zeros()) as usize
    }

    #[test]
    fn inclusion_plans_for_a_seven_leaf_tree() {
        // Leaves 0..7; the right edge is (1, 2) = {4, 5} and leaf 6.
        let plan = inclusion_plan(EntryIndex(0), TreeSize(7)).unwrap();
        assert_eq!(
            plan.nodes(),
            &[
                NodeId::new(0, 1),
                NodeId::new(1, 1),
                NodeId::new(1, 2),
                NodeId::new(0, 6)
            ]
        );
        assert_eq!(plan.rehash(), Some(2..4));
        assert_eq!(plan.proof_len(), 3);

        let plan = inclusion_plan(EntryIndex(6), TreeSize(7)).unwrap();
        assert_eq!(plan.nodes(), &[NodeId::new(1, 2), NodeId::new(2, 0)]);
        assert_eq!(plan.rehash(), None);

        let plan = inclusion_plan(EntryIndex(4), TreeSize(5)).unwrap();
        assert_eq!(plan.nodes(), &[NodeId::new(2, 0)]);
    }

    #[test]
    fn consistency_plans() {
        // Old size 6 = 4 + 2: its last perfect node is (1, 2).
        let plan = consistency_plan(TreeSize(6), TreeSize(8)).unwrap();
        assert_eq!(
            plan.nodes(),
            &[NodeId::new(1, 2), NodeId::new(1, 3), NodeId::new(2, 0)]
        );
        // Old size 4 is a power of two: the old root is left out.
        let plan = consistency_plan(TreeSize(4), TreeSize(7)).unwrap();
        assert_eq!(plan.nodes(), &[NodeId::new(1, 2), NodeId::new(0, 6)]);
        assert_eq!(plan.rehash(), Some(0..2));
        assert_eq!(plan.proof_len(), 1);
        assert_eq!(
            consistency_plan(TreeSize(5), TreeSize(5)).unwrap().nodes(),
            &[]
        );
        assert_eq!(
            consistency_plan(TreeSize(0), TreeSize(5)),
            Err(ProofError::OldSizeZero)
        );
        assert_eq!(
            consistency_plan(TreeSize(0), TreeSize(0)),
            Err(ProofError::OldSizeZero)
        );
        assert_eq!(
            consistency_plan(TreeSize(6), TreeSize(5)),
            Err(ProofError::OldSizeGreaterThanNew {
                old: TreeSize(6),
                new: TreeSize(5)
            })
        );
    }

    #[test]
    fn inclusion_plan_rejects_indexes_outside_the_tree() {
        for (index, size) in [(0, 0), (5, 5), (u64::MAX, 1), (u64::MAX, u64::MAX)] {
            assert_eq!(
                inclusion_plan(EntryIndex(index), TreeSize(size)),
                Err(ProofError::IndexOutOfRange {
                    index: EntryIndex(index),
                    size: TreeSize(size)
                })
            );
        }
    }

    /// Sizes around every power of two, and the extremes.
    fn interesting_sizes() -> Vec<u64> {
        let mut sizes = vec![1, 2, 3, 5, 7, 1_000_000, u64::MAX, u64::MAX - 1];
        for bit in 0..64 {
            let p = 1u64 << bit;
            sizes.extend([p - 1, p, p + 1, p | (p >> 1), p | 1]);
        }
        sizes.retain(|&s| s > 0);
        sizes
    }

    #[test]
    fn plan_nodes_are_perfect_inside_the_tree_and_logarithmic() {
        for size in interesting_sizes() {
            let indexes = [0, 1, size / 3, size / 2, size.saturating_sub(2), size - 1];
            for index in indexes.into_iter().filter(|&i| i < size) {
                let plan = inclusion_plan(EntryIndex(index), TreeSize(size)).unwrap();
                assert!(plan.proof_len() <= max_proof_len(size));
                assert_eq!(plan.proof_len(), inclusion_proof_len(index, size));
                assert!(plan.nodes().len() <= 64 + 63, "{size} {index}");
                for id in plan.nodes() {
                    assert!(inside(*id, size), "{id} outside size {size}");
                    assert!(!NodeId::leaf(EntryIndex(index)).eq(id));
                }
                if let Some(range) = plan.rehash() {
                    assert!(range.len() >= 2 && range.end <= plan.nodes().len());
                }
            }
            for old in [1, 2, 3, size / 2, size - 1, size]
                .into_iter()
                .filter(|&o| o > 0 && o <= size)
            {
                let plan = consistency_plan(TreeSize(old), TreeSize(size)).unwrap();
                assert!(plan.proof_len() <= max_proof_len(size) + 1);
                if old < size {
                    assert_eq!(plan.proof_len(), consistency_proof_len(old, size));
                }
                for id in plan.nodes() {
                    assert!(inside(*id, size), "{id} outside size {size}");
                }
            }
        }
    }

    #[test]
    fn perfect_trees_need_no_rehash() {
        for bit in 0..64 {
            let size = 1u64 << bit;
            for index in [0, size / 2, size - 1] {
                let plan = inclusion_plan(EntryIndex(index), TreeSize(size)).unwrap();
                assert_eq!(plan.rehash(), None);
                assert_eq!(plan.nodes().len(), bit);
            }
        }
    }

    #[test]
    fn assemble_checks_the_count_and_folds_the_range() {
        let alg = HashAlg::Sha256;
        let plan = inclusion_plan(EntryIndex(0), TreeSize(7)).unwrap();
        let h: Vec<Hash> = (0u8..4).map(|i| alg.leaf_hash(&[i])).collect();
        assert_eq!(
            plan.assemble(alg, &h[..3]),
            Err(NodeCountMismatch {
                expected: 4,
                got: 3
            })
        );
        assert_eq!(
            plan.assemble(alg, &h).unwrap(),
            vec![h[0], h[1], alg.node_hash(&h[2], &h[3])]
        );
    }

    #[test]
    fn prove_reports_a_missing_node() {
        let tree = MemoryTree::from_leaf_hashes(
            HashAlg::Blake3,
            (0u8..3).map(|i| HashAlg::Blake3.leaf_hash(&[i])),
        );
        let err = prove_inclusion(HashAlg::Blake3, EntryIndex(0), TreeSize(4), &tree);
        assert!(matches!(err, Err(ProveError::Source(_))), "{err:?}");
        let err = prove_consistency(HashAlg::Blake3, TreeSize(4), TreeSize(3), &tree);
        assert!(matches!(
            err,
            Err(ProveError::Plan(ProofError::OldSizeGreaterThanNew { .. }))
        ));
    }

    #[test]
    fn edge_proofs_equal_plain_proofs_at_every_size() {
        for alg in HashAlg::ALL {
            let tree = MemoryTree::from_leaf_hashes(alg, (0u8..70).map(|i| alg.leaf_hash(&[i])));
            let empty = RightEdge::new(&Frontier::new(alg));
            assert_eq!(empty.root(), alg.empty_root());
            let err = prove_inclusion_at_edge(&empty, EntryIndex(0), &tree);
            assert!(matches!(err, Err(ProveError::Plan(_))), "{err:?}");
            for size in 1..=70 {
                let size = TreeSize(size);
                let edge = RightEdge::new(&tree.frontier_at(size).unwrap());
                assert_eq!(edge.size(), size);
                assert_eq!(edge.alg(), alg);
                assert_eq!(edge.root(), tree.root_at(size).unwrap(), "root at {size}");
                for i in 0..size.0 {
                    let i = EntryIndex(i);
                    assert_eq!(
                        prove_inclusion_at_edge(&edge, i, &tree).unwrap(),
                        prove_inclusion(alg, i, size, &tree).unwrap(),
                        "inclusion of {i} at {size}"
                    );
                }
                for old in 1..=size.0 {
                    let old = TreeSize(old);
                    assert_eq!(
                        prove_consistency_at_edge(&edge, old, &tree).unwrap(),
                        prove_consistency(alg, old, size, &tree).unwrap(),
                        "consistency from {old} to {size}"
                    );
                }
                let beyond = prove_inclusion_at_edge(&edge, EntryIndex(size.0), &tree);
                assert!(matches!(beyond, Err(ProveError::Plan(_))), "{beyond:?}");
            }
        }
    }

    /// A node source that counts the nodes it is asked for, and can drop one hash from
    /// every answer.
    struct Counting<'a> {
        tree: &'a MemoryTree,
        read: std::cell::Cell<usize>,
        drop_one: bool,
    }

    impl NodeSource for Counting<'_> {
        type Error = crate::merkle::MemoryTreeError;

        fn node(&self, id: NodeId) -> Result<Hash, Self::Error> {
            self.read.set(self.read.get() + 1);
            self.tree.node(id)
        }

        fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, Self::Error> {
            let mut hashes = ids
                .iter()
                .map(|&id| self.node(id))
                .collect::<Result<Vec<_>, _>>()?;
            if self.drop_one {
                hashes.pop();
            }
            Ok(hashes)
        }
    }

    #[test]
    fn edge_proofs_read_only_the_perfect_siblings() {
        let alg = HashAlg::Blake3;
        let tree = MemoryTree::from_leaf_hashes(alg, (0u8..7).map(|i| alg.leaf_hash(&[i])));
        let edge = RightEdge::new(&tree.frontier_at(TreeSize(7)).unwrap());
        let source = Counting {
            tree: &tree,
            read: std::cell::Cell::new(0),
            drop_one: false,
        };
        // Leaf 0 of 7: siblings (0, 1), (1, 1) and the right edge {(1, 2), (0, 6)}.
        let proof = prove_inclusion_at_edge(&edge, EntryIndex(0), &source).unwrap();
        assert_eq!(proof.path.len(), 3);
        assert_eq!(
            source.read.get(),
            2,
            "the two right-edge nodes come from the edge"
        );
        source.read.set(0);
        prove_inclusion(alg, EntryIndex(0), TreeSize(7), &source).unwrap();
        assert_eq!(source.read.get(), 4);

        let short = Counting {
            drop_one: true,
            ..source
        };
        let err = prove_inclusion_at_edge(&edge, EntryIndex(0), &short);
        assert!(matches!(err, Err(ProveError::NodeCount(_))), "{err:?}");
        let err = prove_consistency_at_edge(&edge, TreeSize(3), &short);
        assert!(matches!(err, Err(ProveError::NodeCount(_))), "{err:?}");
    }

    #[test]
    fn verification_never_panics_at_the_extremes() {
        let alg = HashAlg::Sha256;
        let h = alg.leaf_hash(b"x");
        for (index, size) in [
            (0, 0),
            (u64::MAX, u64::MAX),
            (u64::MAX - 1, u64::MAX),
            (0, u64::MAX),
        ] {
            for len in [0, 1, 63, 64, 65, 200] {
                let proof = InclusionProof {
                    index: EntryIndex(index),
                    size: TreeSize(size),
                    path: vec![h; len],
                };
                assert!(verify_inclusion(alg, &h, &proof, &h).is_err());
            }
        }
        for (old, new) in [
            (0, 0),
            (1, u64::MAX),
            (u64::MAX - 1, u64::MAX),
            (u64::MAX, u64::MAX),
        ] {
            for len in [0, 1, 64, 65, 200] {
                let proof = ConsistencyProof {
                    old_size: TreeSize(old),
                    new_size: TreeSize(new),
                    path: vec![h; len],
                };
                let verdict = verify_consistency(alg, &proof, &h, &h);
                assert_eq!(
                    verdict.is_ok(),
                    old == new && old != 0 && len == 0,
                    "{old} {new} {len}"
                );
            }
        }
    }

    #[test]
    fn display_is_lowercase_without_a_trailing_period() {
        let errors = [
            VerifyError::IndexOutOfRange {
                index: EntryIndex(3),
                size: TreeSize(2),
            },
            VerifyError::WrongProofLength {
                expected: 2,
                got: 3,
            },
            VerifyError::RootMismatch,
            VerifyError::OldSizeZero,
            VerifyError::MalformedHash {
                field: HashField::Path(2),
                len: 12,
            },
        ];
        for e in errors {
            let text = e.to_string();
            assert!(text.starts_with(|c: char| c.is_lowercase()), "{text}");
            assert!(!text.ends_with('.'), "{text}");
        }
        assert_eq!(
            VerifyError::MalformedHash {
                field: HashField::Path(2),
                len: 12
            }
            .to_string(),
            "the proof hash 2 is 12 bytes long, expected 32"
        );
    }
}
