//! Newtypes that keep Vouch's index spaces apart.
//!
//! An [`EntryIndex`] names one entry (a leaf), a [`TreeSize`] counts leaves, and a
//! [`NodeId`] names one perfect subtree of the Merkle tree. None of them converts
//! implicitly into another, so a size is never passed where an index is meant.

use std::fmt;

/// The 0-based position of an entry in its ledger (the leaf index in the Merkle tree).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EntryIndex(pub u64);

/// The number of entries in a tree: a tree of size `n` holds indexes `0..n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TreeSize(pub u64);

impl EntryIndex {
    /// The index's value.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The size of the smallest tree that contains this entry (`index + 1`).
    ///
    /// # Panics
    ///
    /// Never for indexes a ledger can hold; `u64::MAX` has no successor and saturates.
    pub const fn next_size(self) -> TreeSize {
        TreeSize(self.0.saturating_add(1))
    }
}

impl TreeSize {
    /// The size's value.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// Whether `index` is a leaf of a tree of this size.
    pub const fn contains(self, index: EntryIndex) -> bool {
        index.0 < self.0
    }
}

impl fmt::Display for EntryIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for TreeSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One perfect subtree of the Merkle tree: the `index`-th node at `level`.
///
/// Level 0 holds the leaves; the node `(level, index)` covers the leaves
/// `index << level .. (index + 1) << level`.
// INVARIANT: `level < 64`, so the covered leaf range fits in `u64` whenever the node
// belongs to a tree whose size fits in `u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId {
    /// Height above the leaves: 0 for a leaf.
    pub level: u8,
    /// Position among the nodes of this level, from the left.
    pub index: u64,
}

impl NodeId {
    /// The node at `(level, index)`.
    ///
    /// # Panics
    ///
    /// If `level >= 64`, which no tree with a `u64` size has.
    pub const fn new(level: u8, index: u64) -> Self {
        assert!(
            level < 64,
            "a Merkle tree of u64 size has fewer than 64 levels"
        );
        Self { level, index }
    }

    /// The leaf node for entry `index`.
    pub const fn leaf(index: EntryIndex) -> Self {
        Self {
            level: 0,
            index: index.0,
        }
    }

    /// The first leaf this node covers.
    pub const fn first_leaf(self) -> u64 {
        self.index << self.level
    }

    /// One past the last leaf this node covers.
    pub const fn end_leaf(self) -> u64 {
        (self.index + 1) << self.level
    }

    /// The node's parent.
    #[must_use]
    pub const fn parent(self) -> Self {
        Self {
            level: self.level + 1,
            index: self.index >> 1,
        }
    }

    /// The node's sibling: the other child of its parent.
    #[must_use]
    pub const fn sibling(self) -> Self {
        Self {
            level: self.level,
            index: self.index ^ 1,
        }
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node(level {}, index {})", self.level, self.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ranges() {
        let n = NodeId::new(3, 2);
        assert_eq!((n.first_leaf(), n.end_leaf()), (16, 24));
        assert_eq!(n.parent(), NodeId::new(4, 1));
        assert_eq!(n.sibling(), NodeId::new(3, 3));
        assert_eq!(NodeId::leaf(EntryIndex(5)).sibling(), NodeId::new(0, 4));
    }

    #[test]
    fn sizes_and_indexes() {
        assert!(TreeSize(3).contains(EntryIndex(2)));
        assert!(!TreeSize(3).contains(EntryIndex(3)));
        assert_eq!(EntryIndex(7).next_size(), TreeSize(8));
    }
}
