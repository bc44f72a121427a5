//! Merkle tree hashing (RFC 6962 §2.1 / RFC 9162 §2.1.1): the tree head of a list of leaf
//! hashes, the [`Frontier`] that appends in O(log n), and the in-memory [`MemoryTree`].
//!
//! The tree over `n` leaves is the one RFC 9162 §2.1.1 defines: for `n > 1`, with `k` the
//! largest power of two smaller than `n`,
//! `MTH(D[0:n]) = H(0x01 ‖ MTH(D[0:k]) ‖ MTH(D[k:n]))`, `MTH` of one leaf is its leaf hash
//! and `MTH` of no leaves is `H("")`.
//! Seen bottom-up, this is the complete binary tree over `2^64` leaf slots cut off at `n`:
//! every node whose leaves all lie in `0..n` is a *perfect* node ([`NodeId`]), and a node that
//! would straddle `n` is replaced by the right-to-left fold of the perfect nodes that cover
//! its part of `0..n`.
//! Perfect nodes never change once the tree has grown past them, which is what lets a store
//! persist them as they are completed and serve proofs without recomputing large ranges.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::indexing_slicing))]

use crate::hash::{Hash, HashAlg};
use crate::index::{EntryIndex, NodeId, TreeSize};
use crate::proof::NodeSource;

/// The Merkle tree head (RFC 6962 `MTH`) of the given leaf hashes, in order.
///
/// The empty list has the root [`HashAlg::empty_root`]. Runs in O(n) time and O(log n)
/// memory.
///
/// # Panics
///
/// Never: a slice cannot hold `u64::MAX` hashes.
pub fn root_from_leaf_hashes(alg: HashAlg, leaves: &[Hash]) -> Hash {
    let mut frontier = Frontier::new(alg);
    for leaf in leaves {
        frontier.push(*leaf, |_, _| {});
    }
    frontier.root()
}

/// Folds the roots of adjacent perfect subtrees, given left to right, into the hash of the
/// subtree they cover together: `H(h[0], H(h[1], … H(h[r-2], h[r-1])))`.
///
/// This is how RFC 6962 hashes a tree whose size is not a power of two: the subtrees of a
/// size's binary decomposition, largest (leftmost) first, combined from the right.
/// Returns `None` for an empty list.
pub(crate) fn fold_from_right(alg: HashAlg, hashes: &[Hash]) -> Option<Hash> {
    let mut rev = hashes.iter().rev();
    let last = *rev.next()?;
    Some(rev.fold(last, |acc, left| alg.node_hash(left, &acc)))
}

/// The perfect nodes whose leaves together are `0..size`, largest (leftmost) first: one per
/// set bit of `size`, the "compact range" `[0, size)`.
///
/// Returned by [`Frontier::ids_for`] and [`Frontier::node_ids`].
#[derive(Debug, Clone)]
pub struct FrontierIds {
    /// The set bits of the size not yet yielded.
    remaining: u64,
    /// The first leaf of the next node.
    next_leaf: u64,
}

impl Iterator for FrontierIds {
    type Item = NodeId;

    fn next(&mut self) -> Option<NodeId> {
        if self.remaining == 0 {
            return None;
        }
        let level = self.remaining.ilog2();
        let width = 1u64 << level;
        let id = NodeId {
            // `level <= 63` because `remaining != 0`.
            level: u8::try_from(level).ok()?,
            index: self.next_leaf >> level,
        };
        self.remaining &= !width;
        // Cannot overflow: the covered leaves stay below the original size.
        self.next_leaf += width;
        Some(id)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.remaining.count_ones() as usize;
        (n, Some(n))
    }
}

impl ExactSizeIterator for FrontierIds {}

/// The right edge of a Merkle tree (a compact range over `[0, size)`): the roots of the
/// perfect subtrees that make up the tree, one per set bit of the size, largest (leftmost)
/// first.
///
/// This is all that appending needs: a push hashes the new leaf into the frontier in
/// O(log n) time and the frontier never holds more than 64 hashes.
///
/// ```
/// use vouch_ledger_core::{HashAlg, TreeSize};
/// use vouch_ledger_core::merkle::{Frontier, root_from_leaf_hashes};
///
/// let alg = HashAlg::Sha256;
/// let leaves: Vec<_> = (0u8..5).map(|i| alg.leaf_hash(&[i])).collect();
/// let mut frontier = Frontier::new(alg);
/// for leaf in &leaves {
///     frontier.push(*leaf, |_, _| {});
/// }
/// assert_eq!(frontier.size(), TreeSize(5));
/// assert_eq!(frontier.nodes().len(), 2); // 5 = 4 + 1
/// assert_eq!(frontier.root(), root_from_leaf_hashes(alg, &leaves));
/// ```
// INVARIANT: `hashes.len() == size.count_ones()`, and `hashes[j]` is the root of the
// perfect subtree named by the `j`-th item of `Frontier::ids_for(size)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontier {
    alg: HashAlg,
    size: TreeSize,
    hashes: Vec<Hash>,
}

/// [`Frontier::restore`] was given a number of hashes that does not fit the size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrontierRestoreError {
    /// A frontier of `size` holds one hash per set bit of the size.
    #[error("a frontier of tree size {size} holds {expected} hashes, got {got}")]
    WrongNodeCount {
        /// The tree size the frontier was restored at.
        size: TreeSize,
        /// The number of set bits of `size`.
        expected: usize,
        /// The number of hashes given.
        got: usize,
    },
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new(alg: HashAlg) -> Self {
        Self {
            alg,
            size: TreeSize(0),
            hashes: Vec::with_capacity(64),
        }
    }

    /// Rebuilds a frontier from its perfect-subtree roots, as listed by
    /// [`Frontier::ids_for`]`(size)` (largest first), for example after reading them back
    /// from a node store.
    ///
    /// # Errors
    ///
    /// [`FrontierRestoreError::WrongNodeCount`] if `hashes` does not hold exactly one hash
    /// per set bit of `size`. The hashes themselves cannot be checked here: compare
    /// [`Frontier::root`] with a trusted root.
    pub fn restore(
        alg: HashAlg,
        size: TreeSize,
        hashes: Vec<Hash>,
    ) -> Result<Self, FrontierRestoreError> {
        let expected = size.0.count_ones() as usize;
        if hashes.len() != expected {
            return Err(FrontierRestoreError::WrongNodeCount {
                size,
                expected,
                got: hashes.len(),
            });
        }
        Ok(Self { alg, size, hashes })
    }

    /// The ids of the perfect nodes that make up a tree of `size` leaves, largest
    /// (leftmost) first: what [`Frontier::restore`] expects the hashes of.
    pub fn ids_for(size: TreeSize) -> FrontierIds {
        FrontierIds {
            remaining: size.0,
            next_leaf: 0,
        }
    }

    /// The hash function.
    pub fn alg(&self) -> HashAlg {
        self.alg
    }

    /// The number of leaves pushed so far.
    pub fn size(&self) -> TreeSize {
        self.size
    }

    /// The roots of the perfect subtrees, largest (leftmost) first.
    pub fn nodes(&self) -> &[Hash] {
        &self.hashes
    }

    /// The ids of [`Frontier::nodes`], in the same order.
    pub fn node_ids(&self) -> FrontierIds {
        Self::ids_for(self.size)
    }

    /// Appends one leaf hash.
    ///
    /// `on_node` is called with the new leaf's node `(0, index)` first, then with every
    /// interior node this push completes, bottom-up: exactly the perfect nodes of the new
    /// tree that the old tree did not have, so a store can persist them and nothing else.
    ///
    /// # Panics
    ///
    /// If the tree already holds `u64::MAX` leaves.
    pub fn push(&mut self, leaf_hash: Hash, mut on_node: impl FnMut(NodeId, Hash)) {
        let size = self.size.0;
        assert!(
            size < u64::MAX,
            "a Merkle tree holds at most u64::MAX leaves"
        );
        let mut node = NodeId::leaf(EntryIndex(size));
        let mut hash = leaf_hash;
        on_node(node, hash);
        // A set low bit at this level means a perfect subtree of the same height is waiting
        // on the left: merge with it. The loop runs once per trailing one bit of `size`,
        // which is fewer than 64, so `node.level` stays below 64.
        while node.index & 1 == 1 {
            let Some(left) = self.hashes.pop() else {
                // Unreachable by the invariant: one hash per set bit.
                break;
            };
            hash = self.alg.node_hash(&left, &hash);
            node = node.parent();
            on_node(node, hash);
        }
        self.hashes.push(hash);
        self.size = TreeSize(size + 1);
    }

    /// The tree head: the perfect-subtree roots folded from the right. O(log n), no
    /// allocation; the empty tree has [`HashAlg::empty_root`].
    pub fn root(&self) -> Hash {
        fold_from_right(self.alg, &self.hashes).unwrap_or_else(|| self.alg.empty_root())
    }
}

/// A failed look-up in a [`MemoryTree`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryTreeError {
    /// The node is not a perfect node of the tree as it is now.
    #[error("{id} is not a perfect node of a tree of size {size}")]
    NodeNotInTree {
        /// The node asked for.
        id: NodeId,
        /// The tree's current size.
        size: TreeSize,
    },
    /// A root was asked for at a size the tree has not reached.
    #[error("tree size {requested} is beyond the tree's size {size}")]
    SizeBeyondTree {
        /// The size asked for.
        requested: TreeSize,
        /// The tree's current size.
        size: TreeSize,
    },
}

/// An in-memory Merkle tree that keeps every perfect node, level by level.
///
/// It serves any proof for any size up to its own ([`NodeSource`]) and is the reference
/// store for tests, fuzzing, benchmarks and offline verification. Memory is about
/// `2 × 32` bytes per leaf.
// INVARIANT: `levels[l]` holds the roots of the perfect nodes `(l, 0) .. (l, size >> l)`,
// so `levels[l].len() == size >> l`, and there is no trailing empty level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryTree {
    alg: HashAlg,
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    /// The empty tree.
    pub fn new(alg: HashAlg) -> Self {
        Self {
            alg,
            levels: Vec::new(),
        }
    }

    /// A tree over the given leaf hashes, in order.
    pub fn from_leaf_hashes(alg: HashAlg, leaves: impl IntoIterator<Item = Hash>) -> Self {
        let mut tree = Self::new(alg);
        for leaf in leaves {
            tree.push(leaf);
        }
        tree
    }

    /// The hash function.
    pub fn alg(&self) -> HashAlg {
        self.alg
    }

    /// The number of leaves.
    pub fn size(&self) -> TreeSize {
        TreeSize(self.levels.first().map_or(0, |leaves| leaves.len() as u64))
    }

    /// Appends one leaf hash and every perfect node it completes.
    pub fn push(&mut self, leaf_hash: Hash) {
        let mut level = 0;
        let mut hash = leaf_hash;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let Some(nodes) = self.levels.get_mut(level) else {
                break;
            };
            nodes.push(hash);
            // An even count means the new node is a right child: its parent is complete.
            let len = nodes.len();
            if len % 2 != 0 {
                break;
            }
            let (Some(left), Some(right)) = (nodes.get(len - 2), nodes.get(len - 1)) else {
                break;
            };
            hash = self.alg.node_hash(left, right);
            level += 1;
        }
    }

    /// The root of the tree as it is now.
    pub fn root(&self) -> Hash {
        self.root_of_prefix(self.size().0)
    }

    /// The root of the tree as it was at `size` leaves: O(log n) work over stored perfect
    /// nodes.
    ///
    /// # Errors
    ///
    /// [`MemoryTreeError::SizeBeyondTree`] if `size` is larger than the tree.
    pub fn root_at(&self, size: TreeSize) -> Result<Hash, MemoryTreeError> {
        if size > self.size() {
            return Err(MemoryTreeError::SizeBeyondTree {
                requested: size,
                size: self.size(),
            });
        }
        Ok(self.root_of_prefix(size.0))
    }

    /// The frontier of the tree as it was at `size` leaves.
    ///
    /// # Errors
    ///
    /// [`MemoryTreeError::SizeBeyondTree`] if `size` is larger than the tree.
    pub fn frontier_at(&self, size: TreeSize) -> Result<Frontier, MemoryTreeError> {
        if size > self.size() {
            return Err(MemoryTreeError::SizeBeyondTree {
                requested: size,
                size: self.size(),
            });
        }
        let hashes = Frontier::ids_for(size)
            .map(|id| self.node(id))
            .collect::<Result<Vec<_>, _>>()?;
        Frontier::restore(self.alg, size, hashes).map_err(|_| MemoryTreeError::SizeBeyondTree {
            requested: size,
            size: self.size(),
        })
    }

    /// The stored hash of a perfect node, if the tree has it.
    fn get(&self, id: NodeId) -> Option<Hash> {
        let index = usize::try_from(id.index).ok()?;
        self.levels.get(usize::from(id.level))?.get(index).copied()
    }

    /// `MTH(D[0:size])` for `size <= self.size()`.
    fn root_of_prefix(&self, size: u64) -> Hash {
        // Fold the perfect subtrees of `0..size` from the right. Walking the set bits from
        // the lowest visits them right to left: for a set bit `level`, the subtree is
        // `(level, (size >> level) - 1)`, the last complete node of that level.
        let mut acc: Option<Hash> = None;
        let mut remaining = size;
        while remaining != 0 {
            let level = remaining.trailing_zeros();
            remaining &= remaining - 1;
            let id = NodeId {
                // `level < 64` because `remaining` was not zero.
                level: u8::try_from(level).unwrap_or(63),
                index: (size >> level) - 1,
            };
            let Some(hash) = self.get(id) else {
                // Unreachable for `size <= self.size()`: every such node is stored.
                continue;
            };
            acc = Some(match acc {
                None => hash,
                Some(right) => self.alg.node_hash(&hash, &right),
            });
        }
        acc.unwrap_or_else(|| self.alg.empty_root())
    }
}

impl NodeSource for MemoryTree {
    type Error = MemoryTreeError;

    fn node(&self, id: NodeId) -> Result<Hash, MemoryTreeError> {
        self.get(id).ok_or(MemoryTreeError::NodeNotInTree {
            id,
            size: self.size(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(alg: HashAlg, n: u64) -> Vec<Hash> {
        (0..n).map(|i| alg.leaf_hash(&i.to_le_bytes())).collect()
    }

    #[test]
    fn empty_tree_has_the_empty_root() {
        for alg in HashAlg::ALL {
            assert_eq!(root_from_leaf_hashes(alg, &[]), alg.empty_root());
            assert_eq!(Frontier::new(alg).root(), alg.empty_root());
            assert_eq!(MemoryTree::new(alg).root(), alg.empty_root());
            assert_eq!(MemoryTree::new(alg).size(), TreeSize(0));
        }
    }

    #[test]
    fn small_trees_by_hand() {
        let alg = HashAlg::Sha256;
        let l = leaves(alg, 3);
        let [a, b, c] = [l[0], l[1], l[2]];
        assert_eq!(root_from_leaf_hashes(alg, &l[..1]), a);
        assert_eq!(root_from_leaf_hashes(alg, &l[..2]), alg.node_hash(&a, &b));
        assert_eq!(
            root_from_leaf_hashes(alg, &l),
            alg.node_hash(&alg.node_hash(&a, &b), &c)
        );
    }

    #[test]
    fn frontier_ids_follow_the_set_bits() {
        let ids: Vec<_> = Frontier::ids_for(TreeSize(13)).collect();
        assert_eq!(
            ids,
            vec![NodeId::new(3, 0), NodeId::new(2, 2), NodeId::new(0, 12)]
        );
        assert_eq!(Frontier::ids_for(TreeSize(0)).count(), 0);
        let top: Vec<_> = Frontier::ids_for(TreeSize(u64::MAX)).collect();
        assert_eq!(top.len(), 64);
        assert_eq!(top.first(), Some(&NodeId::new(63, 0)));
        assert_eq!(top.last(), Some(&NodeId::new(0, u64::MAX - 1)));
    }

    #[test]
    fn push_reports_the_new_perfect_nodes() {
        let alg = HashAlg::Blake3;
        let mut frontier = Frontier::new(alg);
        let mut seen = Vec::new();
        for leaf in leaves(alg, 8) {
            frontier.push(leaf, |id, _| seen.push(id));
        }
        let want: Vec<NodeId> = [
            (0, 0),
            (0, 1),
            (1, 0),
            (0, 2),
            (0, 3),
            (1, 1),
            (2, 0),
            (0, 4),
            (0, 5),
            (1, 2),
            (0, 6),
            (0, 7),
            (1, 3),
            (2, 1),
            (3, 0),
        ]
        .into_iter()
        .map(|(l, i)| NodeId::new(l, i))
        .collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn restore_checks_the_count() {
        let alg = HashAlg::Sha256;
        let err = Frontier::restore(alg, TreeSize(7), vec![Hash::default(); 2]);
        assert_eq!(
            err,
            Err(FrontierRestoreError::WrongNodeCount {
                size: TreeSize(7),
                expected: 3,
                got: 2
            })
        );
        assert!(Frontier::restore(alg, TreeSize(7), vec![Hash::default(); 3]).is_ok());
    }

    #[test]
    fn memory_tree_roots_at_every_size() {
        let alg = HashAlg::Sha256;
        let l = leaves(alg, 37);
        let tree = MemoryTree::from_leaf_hashes(alg, l.iter().copied());
        for size in 0..=37usize {
            assert_eq!(
                tree.root_at(TreeSize(size as u64)),
                Ok(root_from_leaf_hashes(alg, &l[..size]))
            );
            let frontier = tree.frontier_at(TreeSize(size as u64)).unwrap();
            assert_eq!(frontier.root(), root_from_leaf_hashes(alg, &l[..size]));
        }
        assert_eq!(
            tree.root_at(TreeSize(38)),
            Err(MemoryTreeError::SizeBeyondTree {
                requested: TreeSize(38),
                size: TreeSize(37)
            })
        );
        assert_eq!(
            tree.node(NodeId::new(5, 0)),
            Ok(tree.root_at(TreeSize(32)).unwrap())
        );
        assert!(tree.node(NodeId::new(5, 1)).is_err());
        assert!(tree.node(NodeId::new(0, 37)).is_err());
        assert!(tree.node(NodeId::new(63, u64::MAX)).is_err());
    }
}
