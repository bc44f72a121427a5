//! Merkle hashing with RFC 6962/9162 domain separation over two hash functions.
//!
//! A leaf hash is `H(0x00 ‖ leaf bytes)` and an interior node hash is
//! `H(0x01 ‖ left ‖ right)`; the root of the empty tree is `H("")`. The hash function is
//! fixed per ledger at creation: BLAKE3 (the default) or SHA-256, the latter byte-compatible
//! with RFC 6962 tooling. Both produce 32-byte digests.

use std::fmt;
use std::str::FromStr;

use sha2::Digest as _;

/// Domain-separation prefix of a leaf hash (RFC 6962 §2.1).
pub const LEAF_PREFIX: u8 = 0x00;
/// Domain-separation prefix of an interior node hash (RFC 6962 §2.1).
pub const NODE_PREFIX: u8 = 0x01;
/// Length in bytes of every hash Vouch uses.
pub const HASH_LEN: usize = 32;

/// A 32-byte hash value: a leaf hash, a node hash or a tree root.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash(pub [u8; HASH_LEN]);

impl Hash {
    /// The hash's bytes.
    pub const fn as_bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }

    /// Lowercase hexadecimal, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hexadecimal characters (either case).
    ///
    /// # Errors
    ///
    /// [`ParseHashError`] if the text is not exactly 32 bytes of hex.
    pub fn from_hex(text: &str) -> Result<Self, ParseHashError> {
        let mut out = [0u8; HASH_LEN];
        hex::decode_to_slice(text, &mut out).map_err(|_| ParseHashError)?;
        Ok(Self(out))
    }

    /// Builds a hash from a slice that must be exactly 32 bytes long.
    ///
    /// # Errors
    ///
    /// [`ParseHashError`] if the slice is not 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ParseHashError> {
        <[u8; HASH_LEN]>::try_from(bytes)
            .map(Self)
            .map_err(|_| ParseHashError)
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl From<[u8; HASH_LEN]> for Hash {
    fn from(bytes: [u8; HASH_LEN]) -> Self {
        Self(bytes)
    }
}

/// A hash that was not 32 bytes (or 64 hex characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a hash must be exactly 32 bytes (64 hex characters)")]
pub struct ParseHashError;

/// The hash function of a ledger, fixed when the ledger is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub enum HashAlg {
    /// BLAKE3 with 32-byte output: the default.
    #[default]
    Blake3,
    /// SHA-256: byte-compatible with RFC 6962 tools.
    Sha256,
}

impl HashAlg {
    /// Both hash functions, in id order.
    pub const ALL: [HashAlg; 2] = [HashAlg::Blake3, HashAlg::Sha256];

    /// The one-byte id used on disk and in the entry envelope: 1 = BLAKE3, 2 = SHA-256.
    pub const fn id(self) -> u8 {
        match self {
            HashAlg::Blake3 => 1,
            HashAlg::Sha256 => 2,
        }
    }

    /// The hash function with the given on-disk id, if any.
    pub const fn from_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(HashAlg::Blake3),
            2 => Some(HashAlg::Sha256),
            _ => None,
        }
    }

    /// The lowercase name used in configuration and output: `blake3` or `sha256`.
    pub const fn name(self) -> &'static str {
        match self {
            HashAlg::Blake3 => "blake3",
            HashAlg::Sha256 => "sha256",
        }
    }

    /// Hashes the concatenation of `parts`.
    fn digest(self, parts: &[&[u8]]) -> Hash {
        match self {
            HashAlg::Blake3 => {
                let mut h = blake3::Hasher::new();
                for p in parts {
                    h.update(p);
                }
                Hash(*h.finalize().as_bytes())
            }
            HashAlg::Sha256 => {
                let mut h = sha2::Sha256::new();
                for p in parts {
                    h.update(p);
                }
                Hash(h.finalize().into())
            }
        }
    }

    /// `H(0x00 ‖ leaf)`: the hash of a leaf's bytes.
    pub fn leaf_hash(self, leaf: &[u8]) -> Hash {
        self.digest(&[&[LEAF_PREFIX], leaf])
    }

    /// `H(0x01 ‖ left ‖ right)`: the hash of an interior node.
    pub fn node_hash(self, left: &Hash, right: &Hash) -> Hash {
        self.digest(&[&[NODE_PREFIX], &left.0, &right.0])
    }

    /// `H("")`: the root of the empty tree.
    pub fn empty_root(self) -> Hash {
        self.digest(&[])
    }
}

impl fmt::Display for HashAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A hash function name other than `blake3` or `sha256`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown hash function {0:?}: expected \"blake3\" or \"sha256\"")]
pub struct ParseHashAlgError(pub String);

impl FromStr for HashAlg {
    type Err = ParseHashAlgError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "blake3" => Ok(HashAlg::Blake3),
            "sha256" | "sha-256" => Ok(HashAlg::Sha256),
            _ => Err(ParseHashAlgError(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_rfc6962_hasher_vectors() {
        // The empty-tree root and the leaf hash of the empty leaf from RFC 6962 tooling.
        assert_eq!(
            HashAlg::Sha256.empty_root().to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            HashAlg::Sha256.leaf_hash(b"").to_hex(),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }

    #[test]
    fn blake3_uses_the_same_prefixes() {
        let leaf = HashAlg::Blake3.leaf_hash(b"abc");
        assert_eq!(leaf.0, *blake3::hash(b"\x00abc").as_bytes());
        let node = HashAlg::Blake3.node_hash(&leaf, &leaf);
        let mut pre = vec![NODE_PREFIX];
        pre.extend_from_slice(&leaf.0);
        pre.extend_from_slice(&leaf.0);
        assert_eq!(node.0, *blake3::hash(&pre).as_bytes());
    }

    #[test]
    fn ids_and_names_round_trip() {
        for alg in HashAlg::ALL {
            assert_eq!(HashAlg::from_id(alg.id()), Some(alg));
            assert_eq!(alg.name().parse::<HashAlg>(), Ok(alg));
        }
        assert_eq!(HashAlg::from_id(0), None);
        assert!("md5".parse::<HashAlg>().is_err());
    }

    #[test]
    fn hex_round_trip_and_rejects_bad_lengths() {
        let h = HashAlg::Sha256.leaf_hash(b"x");
        assert_eq!(Hash::from_hex(&h.to_hex()), Ok(h));
        assert_eq!(Hash::from_hex("abcd"), Err(ParseHashError));
        assert_eq!(Hash::from_slice(&[0u8; 31]), Err(ParseHashError));
    }
}
