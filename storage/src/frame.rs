//! The 32-byte file headers and the checksummed record frames of `docs/format.md`.
//!
//! A file header is `magic (8) ‖ version (2) ‖ hash id (1) ‖ byte 11 ‖ reserved ‖ u64 at 16 ‖
//! reserved ‖ CRC-32C of bytes 0..28 (4)`. A frame is `length (4) ‖ CRC-32C(length ‖ body)
//! (4) ‖ body`. Decoding never panics on arbitrary bytes.
#![deny(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use vouch_ledger_core::HashAlg;

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Length of every file header.
pub const FILE_HEADER_LEN: usize = 32;
/// Length of a frame's header (length and CRC).
pub const FRAME_HEADER_LEN: usize = 8;

const MAGIC_END: usize = 8;
const VERSION_END: usize = MAGIC_END + 2;
const HASH_AT: usize = VERSION_END;
const BYTE11_AT: usize = HASH_AT + 1;
const WORD_AT: usize = 16;
const WORD_END: usize = WORD_AT + 8;
const CRC_AT: usize = 28;

/// Magic of a segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"VOUCHSEG";
/// Magic of `offsets.dat`.
pub const OFFSETS_MAGIC: [u8; 8] = *b"VOUCHOFF";
/// Magic of a Merkle node file.
pub const TREE_MAGIC: [u8; 8] = *b"VOUCHTRE";
/// Magic of `index.head`.
pub const HEAD_MAGIC: [u8; 8] = *b"VOUCHHED";
/// Magic of `checkpoints.dat`.
pub const CHECKPOINTS_MAGIC: [u8; 8] = *b"VOUCHCKP";

/// The fields of a 32-byte file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    /// Which kind of file.
    pub magic: [u8; 8],
    /// The ledger's hash function.
    pub hash: HashAlg,
    /// Byte 11: the level of a node file, zero elsewhere.
    pub byte11: u8,
    /// Bytes 16..24: a segment's first index or the head's covered size, zero elsewhere.
    pub word: u64,
}

/// Why a file header was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer than 32 bytes.
    Short(usize),
    /// The magic is not the expected one.
    BadMagic,
    /// The CRC does not match.
    BadCrc,
    /// A version this build does not read.
    Version(u16),
    /// An unknown hash function id.
    Hash(u8),
    /// A reserved byte is not zero.
    Reserved,
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::Short(n) => write!(f, "header is {n} bytes; it must be 32"),
            HeaderError::BadMagic => f.write_str("wrong magic number: not a file of this kind"),
            HeaderError::BadCrc => f.write_str("header checksum mismatch"),
            HeaderError::Version(v) => write!(f, "format version {v} is not supported"),
            HeaderError::Hash(h) => write!(f, "unknown hash function id {h}"),
            HeaderError::Reserved => f.write_str("reserved header bytes are not zero"),
        }
    }
}

impl FileHeader {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; FILE_HEADER_LEN] {
        let mut out = Vec::with_capacity(FILE_HEADER_LEN);
        out.extend_from_slice(&self.magic);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.push(self.hash.id());
        out.push(self.byte11);
        out.resize(WORD_AT, 0);
        out.extend_from_slice(&self.word.to_le_bytes());
        out.resize(CRC_AT, 0);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        let mut header = [0u8; FILE_HEADER_LEN];
        header.copy_from_slice(&out);
        header
    }

    /// Decodes and checks a header against the expected magic.
    ///
    /// # Errors
    ///
    /// [`HeaderError`] naming the first problem found.
    pub fn decode(bytes: &[u8], magic: [u8; 8]) -> Result<Self, HeaderError> {
        let Some(h) = bytes.get(..FILE_HEADER_LEN) else {
            return Err(HeaderError::Short(bytes.len()));
        };
        let field = |range: std::ops::Range<usize>| h.get(range).unwrap_or_default();
        if field(0..MAGIC_END) != magic {
            return Err(HeaderError::BadMagic);
        }
        let stored_crc = le_u32(field(CRC_AT..FILE_HEADER_LEN));
        if crc32c::crc32c(field(0..CRC_AT)) != stored_crc {
            return Err(HeaderError::BadCrc);
        }
        let version = u16::from_le_bytes([
            *h.get(MAGIC_END).unwrap_or(&0),
            *h.get(MAGIC_END + 1).unwrap_or(&0),
        ]);
        if version != FORMAT_VERSION {
            return Err(HeaderError::Version(version));
        }
        let hash_id = *h.get(HASH_AT).unwrap_or(&0);
        let hash = HashAlg::from_id(hash_id).ok_or(HeaderError::Hash(hash_id))?;
        let byte11 = *h.get(BYTE11_AT).unwrap_or(&0);
        if field(BYTE11_AT + 1..WORD_AT).iter().any(|b| *b != 0)
            || field(WORD_END..CRC_AT).iter().any(|b| *b != 0)
        {
            return Err(HeaderError::Reserved);
        }
        let word = le_u64(field(WORD_AT..WORD_END));
        Ok(Self {
            magic,
            hash,
            byte11,
            word,
        })
    }
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    if let Some(src) = b.get(..4) {
        a.copy_from_slice(src);
    }
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    if let Some(src) = b.get(..8) {
        a.copy_from_slice(src);
    }
    u64::from_le_bytes(a)
}

/// The CRC of a frame: over the four length bytes, then the body.
pub fn frame_crc(body: &[u8]) -> u32 {
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    crc32c::crc32c_append(crc32c::crc32c(&len.to_le_bytes()), body)
}

/// Appends a frame holding `body` to `out`.
///
/// # Panics
///
/// If `body` is 4 GiB or longer; every caller bounds its bodies far below that.
pub fn encode_frame(body: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(body.len()).expect("frame bodies are bounded far below 4 GiB");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&frame_crc(body).to_le_bytes());
    out.extend_from_slice(body);
}

/// A frame header as read from disk, before its body is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Length of the body.
    pub len: u32,
    /// The stored CRC.
    pub crc: u32,
}

impl FrameHeader {
    /// Parses the 8 header bytes.
    pub fn parse(bytes: [u8; FRAME_HEADER_LEN]) -> Self {
        let (len, crc) = bytes.split_at(4);
        Self {
            len: le_u32(len),
            crc: le_u32(crc),
        }
    }

    /// Whether `body` matches this header's CRC.
    pub fn check(self, body: &[u8]) -> bool {
        u32::try_from(body.len()).ok() == Some(self.len) && frame_crc(body) == self.crc
    }

    /// Total frame length, header included.
    pub fn total_len(self) -> u64 {
        u64::from(self.len).saturating_add(FRAME_HEADER_LEN as u64)
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_is_castagnoli() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn header_round_trip_and_each_check() {
        let h = FileHeader {
            magic: SEGMENT_MAGIC,
            hash: HashAlg::Sha256,
            byte11: 0,
            word: 1 << 40,
        };
        let bytes = h.encode();
        assert_eq!(FileHeader::decode(&bytes, SEGMENT_MAGIC), Ok(h));
        assert_eq!(
            FileHeader::decode(&bytes, TREE_MAGIC),
            Err(HeaderError::BadMagic)
        );
        assert_eq!(
            FileHeader::decode(&bytes[..31], SEGMENT_MAGIC),
            Err(HeaderError::Short(31))
        );
        for i in 8..32 {
            let mut b = bytes;
            b[i] ^= 0x40;
            assert_eq!(
                FileHeader::decode(&b, SEGMENT_MAGIC),
                Err(HeaderError::BadCrc),
                "byte {i}"
            );
        }
        // A newer version with a valid CRC is reported as a version problem.
        let mut b = bytes;
        b[8] = 2;
        let crc = crc32c::crc32c(&b[..28]);
        b[28..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            FileHeader::decode(&b, SEGMENT_MAGIC),
            Err(HeaderError::Version(2))
        );
    }

    #[test]
    fn frame_round_trip_and_crc_covers_length() {
        let mut out = Vec::new();
        encode_frame(b"hello", &mut out);
        let hdr = FrameHeader::parse(out[..8].try_into().unwrap());
        assert_eq!(hdr.len, 5);
        assert!(hdr.check(&out[8..]));
        assert!(!hdr.check(b"hellO"));
        assert!(!hdr.check(b"hell"));
        assert_eq!(hdr.total_len(), 13);
    }
}
