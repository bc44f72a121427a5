//! The entry envelope: the byte-exact leaf encoding of one ledger entry.
//!
//! The envelope is what the Merkle tree hashes: an entry's leaf hash is
//! `H(0x00 ‖ envelope)`. Any language can rebuild it from the table below, so every
//! field is fixed-width little-endian or length-prefixed, and the decoder accepts exactly
//! one encoding per entry (no trailing bytes, no out-of-range lengths, no alternative
//! spellings of a field).
//!
//! Version 1 layout (all integers little-endian):
//!
//! ```text
//! offset  size  field
//! 0       1     envelope version = 0x01
//! 1       1     kind: 1 record, 2 policy bundle, 3 decision, 4 override, 5 exception
//! 2       8     index (u64): the entry's position in its ledger
//! 10      8     timestamp (u64): Unix time in nanoseconds, assigned by the ledger
//! 18      1     k = idempotency key length: 0 means no key, else 1..=128
//! 19      1     c = content type length, 0..=127 (0 means unspecified)
//! 20      4     p = payload length (u32), at most 16 MiB
//! 24      k     idempotency key: UTF-8 without control characters
//! 24+k    c     content type: printable ASCII 0x20..=0x7e
//! 24+k+c  p     payload bytes
//! ```
//!
//! The total length is exactly `24 + k + c + p`.
//!
//! [`EntryDraft`] validates a request before the ledger assigns an index and a timestamp,
//! so a bad request is rejected before anything is written; [`Entry`] is the owned form
//! and [`EntryView`] a zero-copy view over encoded bytes.
#![deny(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::fmt;
use std::str::FromStr;

use crate::hash::{Hash, HashAlg};
use crate::index::EntryIndex;

/// The envelope version this code writes and the only one it reads.
pub const ENVELOPE_VERSION: u8 = 0x01;

/// Offset of the one-byte envelope version.
pub const VERSION_OFFSET: usize = 0;
/// Offset of the one-byte entry kind.
pub const KIND_OFFSET: usize = VERSION_OFFSET + size_of::<u8>();
/// Offset of the little-endian `u64` entry index.
pub const INDEX_OFFSET: usize = KIND_OFFSET + size_of::<u8>();
/// Offset of the little-endian `u64` timestamp (Unix nanoseconds).
pub const TIMESTAMP_OFFSET: usize = INDEX_OFFSET + size_of::<u64>();
/// Offset of the one-byte idempotency key length `k`.
pub const KEY_LEN_OFFSET: usize = TIMESTAMP_OFFSET + size_of::<u64>();
/// Offset of the one-byte content type length `c`.
pub const CONTENT_TYPE_LEN_OFFSET: usize = KEY_LEN_OFFSET + size_of::<u8>();
/// Offset of the little-endian `u32` payload length `p`.
pub const PAYLOAD_LEN_OFFSET: usize = CONTENT_TYPE_LEN_OFFSET + size_of::<u8>();
/// Length of the fixed header; the idempotency key starts here.
pub const HEADER_LEN: usize = PAYLOAD_LEN_OFFSET + size_of::<u32>();

/// Longest idempotency key, in bytes.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;
/// Longest content type, in bytes.
pub const MAX_CONTENT_TYPE_LEN: usize = 127;
/// Largest payload, in bytes: 16 MiB.
pub const MAX_PAYLOAD_LEN: usize = 16 * 1024 * 1024;

/// Largest envelope: the header plus every variable field at its limit.
pub const MAX_ENVELOPE_LEN: usize =
    HEADER_LEN + MAX_IDEMPOTENCY_KEY_LEN + MAX_CONTENT_TYPE_LEN + MAX_PAYLOAD_LEN;

// The layout above is part of the format: a change here is a new envelope version.
const _: () = assert!(HEADER_LEN == 24);
const _: () = assert!(MAX_IDEMPOTENCY_KEY_LEN <= u8::MAX as usize);
const _: () = assert!(MAX_CONTENT_TYPE_LEN <= u8::MAX as usize);
const _: () = assert!(MAX_PAYLOAD_LEN <= u32::MAX as usize);

/// What an entry records. The numeric value is the envelope's kind byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum EntryKind {
    /// An application record (kind byte 1).
    Record = 1,
    /// A published policy bundle (kind byte 2).
    Policy = 2,
    /// A policy decision with its input snapshot (kind byte 3).
    Decision = 3,
    /// An override of a decision (kind byte 4).
    Override = 4,
    /// A granted exception (kind byte 5).
    Exception = 5,
}

impl EntryKind {
    /// Every kind, in kind-byte order.
    pub const ALL: [EntryKind; 5] = [
        EntryKind::Record,
        EntryKind::Policy,
        EntryKind::Decision,
        EntryKind::Override,
        EntryKind::Exception,
    ];

    /// The envelope's kind byte.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// The kind with the given kind byte; `None` for any byte v1 does not define.
    pub const fn from_u8(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(EntryKind::Record),
            2 => Some(EntryKind::Policy),
            3 => Some(EntryKind::Decision),
            4 => Some(EntryKind::Override),
            5 => Some(EntryKind::Exception),
            _ => None,
        }
    }

    /// The lowercase name used in the API and in output, for example `decision`.
    pub const fn name(self) -> &'static str {
        match self {
            EntryKind::Record => "record",
            EntryKind::Policy => "policy",
            EntryKind::Decision => "decision",
            EntryKind::Override => "override",
            EntryKind::Exception => "exception",
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A string that names no entry kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown entry kind {0:?}: expected \"record\", \"policy\", \"decision\", \"override\" or \"exception\""
)]
pub struct ParseEntryKindError(pub String);

impl FromStr for EntryKind {
    type Err = ParseEntryKindError;

    /// Parses the exact lowercase name returned by [`EntryKind::name`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EntryKind::ALL
            .into_iter()
            .find(|kind| kind.name() == s)
            .ok_or_else(|| ParseEntryKindError(s.to_owned()))
    }
}

/// A point in time as Unix nanoseconds (UTC, no leap seconds), assigned by the ledger.
///
/// `Display` writes RFC 3339 in UTC with all nine fractional digits, for example
/// `2023-03-20T12:25:47.000000000Z`, so the text is fixed-width and sorts like the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// 1970-01-01T00:00:00Z.
    pub const UNIX_EPOCH: Timestamp = Timestamp(0);

    /// The timestamp `nanos` nanoseconds after the Unix epoch.
    pub const fn from_unix_nanos(nanos: u64) -> Self {
        Self(nanos)
    }

    /// Nanoseconds since the Unix epoch.
    pub const fn as_unix_nanos(self) -> u64 {
        self.0
    }

    /// Whole seconds since the Unix epoch (rounded down).
    pub const fn as_unix_secs(self) -> u64 {
        self.0 / NANOS_PER_SEC
    }
}

const NANOS_PER_SEC: u64 = 1_000_000_000;
const SECS_PER_DAY: u64 = 86_400;

/// Converts days since 1970-01-01 into a proleptic Gregorian `(year, month, day)`.
///
/// Howard Hinnant's `civil_from_days`, restricted to non-negative day counts so that
/// every intermediate is unsigned.
// The arithmetic cannot overflow: `days <= u64::MAX / 86_400 / 10^9` (about 213 504) for
// any `Timestamp`, so every intermediate value stays below 10^9.
#[allow(clippy::arithmetic_side_effects)]
const fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so that leap days fall at the end of a year.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097; // [0, 146096]
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365; // [0, 399]
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100); // [0, 365]
    let month_from_march = (5 * day_of_year + 2) / 153; // [0, 11]
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1; // [1, 31]
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    }; // [1, 12]
    let year = year_of_era + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month, day)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0 / NANOS_PER_SEC;
        let nanos = self.0 % NANOS_PER_SEC;
        let days = secs / SECS_PER_DAY;
        let second_of_day = secs % SECS_PER_DAY;
        let (year, month, day) = civil_from_days(days);
        let (hour, minute, second) = (
            second_of_day / 3_600,
            second_of_day % 3_600 / 60,
            second_of_day % 60,
        );
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{nanos:09}Z"
        )
    }
}

/// Why an entry cannot be encoded or why bytes are not a valid v1 envelope.
///
/// Offsets inside a field (`at byte 3 of the idempotency key`) count from the field's
/// first byte.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Fewer bytes than the fixed header.
    #[error("envelope truncated: need {HEADER_LEN} header bytes, got {got}")]
    TruncatedHeader {
        /// How many bytes there were.
        got: usize,
    },
    /// Fewer bytes than the header's lengths declare.
    #[error("envelope truncated: the header declares {need} bytes, got {got}")]
    Truncated {
        /// `24 + k + c + p` from the header.
        need: usize,
        /// How many bytes there were.
        got: usize,
    },
    /// Bytes left over after the payload.
    #[error("trailing bytes: {0} after the payload")]
    TrailingBytes(usize),
    /// A version byte other than [`ENVELOPE_VERSION`].
    #[error("unsupported envelope version {0}")]
    UnsupportedVersion(u8),
    /// A kind byte that v1 does not define.
    #[error("unknown entry kind {0}")]
    UnknownKind(u8),
    /// An idempotency key of zero bytes; omit the key instead.
    #[error("idempotency key is empty; omit it instead")]
    EmptyIdempotencyKey,
    /// An idempotency key longer than [`MAX_IDEMPOTENCY_KEY_LEN`].
    #[error("idempotency key is {0} bytes; the limit is {MAX_IDEMPOTENCY_KEY_LEN}")]
    IdempotencyKeyTooLong(usize),
    /// An idempotency key that is not UTF-8.
    #[error("idempotency key is not valid UTF-8 at byte {0}")]
    IdempotencyKeyNotUtf8(usize),
    /// An idempotency key with a Unicode control character (general category Cc).
    #[error("idempotency key has control character U+{code:04X} at byte {at}")]
    IdempotencyKeyControl {
        /// Byte offset of the character in the key.
        at: usize,
        /// The character's code point.
        code: u32,
    },
    /// A content type longer than [`MAX_CONTENT_TYPE_LEN`].
    #[error("content type is {0} bytes; the limit is {MAX_CONTENT_TYPE_LEN}")]
    ContentTypeTooLong(usize),
    /// A content type byte outside printable ASCII.
    #[error(
        "content type has byte 0x{byte:02x} at byte {at}; only printable ASCII 0x20..=0x7e is allowed"
    )]
    ContentTypeNotPrintable {
        /// Byte offset in the content type.
        at: usize,
        /// The offending byte.
        byte: u8,
    },
    /// A payload longer than [`MAX_PAYLOAD_LEN`].
    #[error("payload is {0} bytes; the limit is {MAX_PAYLOAD_LEN}")]
    PayloadTooLarge(usize),
}

/// Checks the caller-supplied fields of an entry against the v1 limits.
///
/// Storage calls this (through [`EntryDraft::new`]) before it assigns an index, so a bad
/// request is rejected before anything is written.
///
/// # Errors
///
/// The first violated rule, checked in field order: the idempotency key (non-empty when
/// present, at most 128 bytes, no control characters), the content type (at most 127
/// bytes of printable ASCII), the payload (at most 16 MiB).
pub fn validate_fields(
    idempotency_key: Option<&str>,
    content_type: &str,
    payload: &[u8],
) -> Result<(), EnvelopeError> {
    if let Some(key) = idempotency_key {
        validate_key(key)?;
    }
    validate_content_type(content_type.as_bytes())?;
    if payload.len() > MAX_PAYLOAD_LEN {
        return Err(EnvelopeError::PayloadTooLarge(payload.len()));
    }
    Ok(())
}

fn validate_key(key: &str) -> Result<(), EnvelopeError> {
    if key.is_empty() {
        return Err(EnvelopeError::EmptyIdempotencyKey);
    }
    if key.len() > MAX_IDEMPOTENCY_KEY_LEN {
        return Err(EnvelopeError::IdempotencyKeyTooLong(key.len()));
    }
    match key.char_indices().find(|(_, ch)| ch.is_control()) {
        Some((at, ch)) => Err(EnvelopeError::IdempotencyKeyControl {
            at,
            code: u32::from(ch),
        }),
        None => Ok(()),
    }
}

fn validate_content_type(content_type: &[u8]) -> Result<(), EnvelopeError> {
    if content_type.len() > MAX_CONTENT_TYPE_LEN {
        return Err(EnvelopeError::ContentTypeTooLong(content_type.len()));
    }
    match content_type.iter().position(|b| !(0x20..=0x7e).contains(b)) {
        Some(at) => Err(EnvelopeError::ContentTypeNotPrintable {
            at,
            byte: content_type.get(at).copied().unwrap_or_default(),
        }),
        None => Ok(()),
    }
}

/// `24 + k + c + p`, saturating (only reachable with fields far beyond the limits).
fn envelope_len(key_len: usize, content_type_len: usize, payload_len: usize) -> usize {
    HEADER_LEN
        .saturating_add(key_len)
        .saturating_add(content_type_len)
        .saturating_add(payload_len)
}

/// Appends an envelope whose variable fields have already been validated.
fn write_envelope(
    out: &mut Vec<u8>,
    kind: EntryKind,
    index: EntryIndex,
    timestamp: Timestamp,
    key: Option<&str>,
    content_type: &str,
    payload: &[u8],
) {
    let key = key.unwrap_or_default().as_bytes();
    // The limits checked by `validate_fields` make these conversions lossless; the
    // saturating fallback can never be written.
    let key_len = u8::try_from(key.len()).unwrap_or(u8::MAX);
    let content_type_len = u8::try_from(content_type.len()).unwrap_or(u8::MAX);
    let payload_len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.reserve(envelope_len(key.len(), content_type.len(), payload.len()));
    out.push(ENVELOPE_VERSION);
    out.push(kind.as_u8());
    out.extend_from_slice(&index.0.to_le_bytes());
    out.extend_from_slice(&timestamp.0.to_le_bytes());
    out.push(key_len);
    out.push(content_type_len);
    out.extend_from_slice(&payload_len.to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(content_type.as_bytes());
    out.extend_from_slice(payload);
}

/// A validated append request: an entry before the ledger assigns its index and timestamp.
// INVARIANT: the fields pass `validate_fields`, so encoding never fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryDraft {
    kind: EntryKind,
    idempotency_key: Option<String>,
    content_type: String,
    payload: Vec<u8>,
}

impl EntryDraft {
    /// Validates the fields of a request.
    ///
    /// # Errors
    ///
    /// [`EnvelopeError`] naming the first field that breaks a v1 limit (see
    /// [`validate_fields`]).
    pub fn new(
        kind: EntryKind,
        idempotency_key: Option<String>,
        content_type: String,
        payload: Vec<u8>,
    ) -> Result<Self, EnvelopeError> {
        validate_fields(idempotency_key.as_deref(), &content_type, &payload)?;
        Ok(Self {
            kind,
            idempotency_key,
            content_type,
            payload,
        })
    }

    /// The entry kind.
    pub fn kind(&self) -> EntryKind {
        self.kind
    }

    /// The idempotency key, if any.
    pub fn idempotency_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }

    /// The content type; empty means unspecified.
    pub fn content_type(&self) -> &str {
        &self.content_type
    }

    /// The payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The length of the envelope this draft encodes to.
    pub fn encoded_len(&self) -> usize {
        envelope_len(
            self.idempotency_key.as_ref().map_or(0, String::len),
            self.content_type.len(),
            self.payload.len(),
        )
    }

    /// Appends the envelope for this draft at `index` and `timestamp` to `out`.
    ///
    /// This cannot fail: the fields were validated by [`EntryDraft::new`].
    pub fn encode_at(&self, index: EntryIndex, timestamp: Timestamp, out: &mut Vec<u8>) {
        write_envelope(
            out,
            self.kind,
            index,
            timestamp,
            self.idempotency_key.as_deref(),
            &self.content_type,
            &self.payload,
        );
    }

    /// The entry this draft becomes at `index` and `timestamp`.
    pub fn into_entry(self, index: EntryIndex, timestamp: Timestamp) -> Entry {
        Entry {
            index,
            timestamp,
            kind: self.kind,
            idempotency_key: self.idempotency_key,
            content_type: self.content_type,
            payload: self.payload,
        }
    }
}

impl From<Entry> for EntryDraft {
    /// Drops the index and timestamp. The result is only valid if the entry was; use
    /// [`EntryDraft::new`] for fields from outside.
    fn from(entry: Entry) -> Self {
        Self {
            kind: entry.kind,
            idempotency_key: entry.idempotency_key,
            content_type: entry.content_type,
            payload: entry.payload,
        }
    }
}

/// One ledger entry, owned.
///
/// The fields are public, so an `Entry` may break a v1 limit; [`Entry::encode`] checks
/// them and [`Entry::decode`] only returns valid entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Position in the ledger, assigned by the ledger.
    pub index: EntryIndex,
    /// Time of the append, assigned by the ledger.
    pub timestamp: Timestamp,
    /// What the entry records.
    pub kind: EntryKind,
    /// The client's idempotency key: 1 to 128 bytes of UTF-8 without control characters.
    pub idempotency_key: Option<String>,
    /// The payload's media type, at most 127 bytes of printable ASCII; empty means
    /// unspecified.
    pub content_type: String,
    /// The payload, at most 16 MiB.
    pub payload: Vec<u8>,
}

impl Entry {
    /// Checks every field against the v1 limits.
    ///
    /// # Errors
    ///
    /// [`EnvelopeError`] naming the first field that breaks a limit.
    pub fn validate(&self) -> Result<(), EnvelopeError> {
        validate_fields(
            self.idempotency_key.as_deref(),
            &self.content_type,
            &self.payload,
        )
    }

    /// The length of this entry's envelope: `24 + k + c + p`.
    pub fn encoded_len(&self) -> usize {
        envelope_len(
            self.idempotency_key.as_ref().map_or(0, String::len),
            self.content_type.len(),
            self.payload.len(),
        )
    }

    /// The entry's envelope bytes.
    ///
    /// # Errors
    ///
    /// [`EnvelopeError`] if a field breaks a v1 limit.
    pub fn encode(&self) -> Result<Vec<u8>, EnvelopeError> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// Appends the entry's envelope bytes to `out`.
    ///
    /// # Errors
    ///
    /// [`EnvelopeError`] if a field breaks a v1 limit; `out` is then left unchanged.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EnvelopeError> {
        self.validate()?;
        write_envelope(
            out,
            self.kind,
            self.index,
            self.timestamp,
            self.idempotency_key.as_deref(),
            &self.content_type,
            &self.payload,
        );
        Ok(())
    }

    /// Parses an envelope into an owned entry.
    ///
    /// # Errors
    ///
    /// [`EnvelopeError`] if the bytes are not exactly one valid v1 envelope.
    pub fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        EntryView::parse(bytes).map(|view| view.to_owned())
    }

    /// The entry's leaf hash: `alg.leaf_hash(envelope)`.
    ///
    /// # Errors
    ///
    /// [`EnvelopeError`] if a field breaks a v1 limit.
    pub fn leaf_hash(&self, alg: HashAlg) -> Result<Hash, EnvelopeError> {
        Ok(alg.leaf_hash(&self.encode()?))
    }
}

impl From<EntryView<'_>> for Entry {
    fn from(view: EntryView<'_>) -> Self {
        view.to_owned()
    }
}

/// A valid v1 envelope, borrowed: field accessors point into the encoded bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryView<'a> {
    bytes: &'a [u8],
    kind: EntryKind,
    index: EntryIndex,
    timestamp: Timestamp,
    idempotency_key: Option<&'a str>,
    content_type: &'a str,
    payload: &'a [u8],
}

/// Reads fixed-width fields from the front of a slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn array<const N: usize>(&mut self) -> Option<&'a [u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|b| b[0])
    }

    fn u32_le(&mut self) -> Option<u32> {
        self.array::<4>().copied().map(u32::from_le_bytes)
    }

    fn u64_le(&mut self) -> Option<u64> {
        self.array::<8>().copied().map(u64::from_le_bytes)
    }

    fn bytes(&mut self, len: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        Some(head)
    }
}

/// The header fields, before the variable-length fields are checked.
struct Header {
    kind: EntryKind,
    index: EntryIndex,
    timestamp: Timestamp,
    key_len: usize,
    content_type_len: usize,
    payload_len: usize,
}

fn parse_header(reader: &mut Reader<'_>) -> Option<Result<Header, EnvelopeError>> {
    let version = reader.u8()?;
    if version != ENVELOPE_VERSION {
        return Some(Err(EnvelopeError::UnsupportedVersion(version)));
    }
    let kind_byte = reader.u8()?;
    let index = reader.u64_le()?;
    let timestamp = reader.u64_le()?;
    let key_len = usize::from(reader.u8()?);
    let content_type_len = usize::from(reader.u8()?);
    let payload_len = usize::try_from(reader.u32_le()?).unwrap_or(usize::MAX);
    Some(match EntryKind::from_u8(kind_byte) {
        None => Err(EnvelopeError::UnknownKind(kind_byte)),
        Some(kind) => Ok(Header {
            kind,
            index: EntryIndex(index),
            timestamp: Timestamp(timestamp),
            key_len,
            content_type_len,
            payload_len,
        }),
    })
}

impl<'a> EntryView<'a> {
    /// Parses exactly one v1 envelope.
    ///
    /// Checks run in this order: version, header length, kind, the three declared lengths
    /// against their limits, total length (truncation, then trailing bytes), the key's
    /// UTF-8 and characters, the content type's characters.
    ///
    /// # Errors
    ///
    /// [`EnvelopeError`] naming the first rule the bytes break.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, EnvelopeError> {
        let truncated_header = EnvelopeError::TruncatedHeader { got: bytes.len() };
        // Report an unknown version before a short header: a later version may have a
        // shorter header.
        if let Some(&version) = bytes.first()
            && version != ENVELOPE_VERSION
        {
            return Err(EnvelopeError::UnsupportedVersion(version));
        }
        let mut reader = Reader(bytes);
        let header = parse_header(&mut reader).ok_or(truncated_header)??;
        if header.key_len > MAX_IDEMPOTENCY_KEY_LEN {
            return Err(EnvelopeError::IdempotencyKeyTooLong(header.key_len));
        }
        if header.content_type_len > MAX_CONTENT_TYPE_LEN {
            return Err(EnvelopeError::ContentTypeTooLong(header.content_type_len));
        }
        if header.payload_len > MAX_PAYLOAD_LEN {
            return Err(EnvelopeError::PayloadTooLarge(header.payload_len));
        }
        let need = envelope_len(header.key_len, header.content_type_len, header.payload_len);
        match bytes.len().checked_sub(need) {
            None => {
                return Err(EnvelopeError::Truncated {
                    need,
                    got: bytes.len(),
                });
            }
            Some(0) => {}
            Some(extra) => return Err(EnvelopeError::TrailingBytes(extra)),
        }
        let truncated = EnvelopeError::Truncated {
            need,
            got: bytes.len(),
        };
        let key = reader.bytes(header.key_len).ok_or(truncated.clone())?;
        let content_type = reader
            .bytes(header.content_type_len)
            .ok_or(truncated.clone())?;
        let payload = reader.bytes(header.payload_len).ok_or(truncated)?;

        let idempotency_key = if key.is_empty() {
            None
        } else {
            let key = std::str::from_utf8(key)
                .map_err(|e| EnvelopeError::IdempotencyKeyNotUtf8(e.valid_up_to()))?;
            validate_key(key)?;
            Some(key)
        };
        validate_content_type(content_type)?;
        // Printable ASCII is UTF-8; the fallback is unreachable after the check above.
        let content_type = std::str::from_utf8(content_type).unwrap_or_default();

        Ok(Self {
            bytes,
            kind: header.kind,
            index: header.index,
            timestamp: header.timestamp,
            idempotency_key,
            content_type,
            payload,
        })
    }

    /// The whole envelope.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The envelope's length in bytes.
    pub fn encoded_len(&self) -> usize {
        self.bytes.len()
    }

    /// The entry kind.
    pub fn kind(&self) -> EntryKind {
        self.kind
    }

    /// The entry's index.
    pub fn index(&self) -> EntryIndex {
        self.index
    }

    /// The entry's timestamp.
    pub fn timestamp(&self) -> Timestamp {
        self.timestamp
    }

    /// The idempotency key, if any.
    pub fn idempotency_key(&self) -> Option<&'a str> {
        self.idempotency_key
    }

    /// The content type; empty means unspecified.
    pub fn content_type(&self) -> &'a str {
        self.content_type
    }

    /// The payload bytes.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// The entry's leaf hash: `alg.leaf_hash(envelope)`.
    pub fn leaf_hash(&self, alg: HashAlg) -> Hash {
        alg.leaf_hash(self.bytes)
    }

    /// Copies the entry out of the borrowed bytes.
    pub fn to_owned(&self) -> Entry {
        Entry {
            index: self.index,
            timestamp: self.timestamp,
            kind: self.kind,
            idempotency_key: self.idempotency_key.map(str::to_owned),
            content_type: self.content_type.to_owned(),
            payload: self.payload.to_vec(),
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn sample() -> Entry {
        Entry {
            index: EntryIndex(7),
            timestamp: Timestamp(1_679_315_147_000_000_000),
            kind: EntryKind::Decision,
            idempotency_key: Some("req-42".to_owned()),
            content_type: "application/json".to_owned(),
            payload: br#"{"outcome":"ALLOW"}"#.to_vec(),
        }
    }

    #[test]
    fn layout_offsets() {
        assert_eq!(
            [
                VERSION_OFFSET,
                KIND_OFFSET,
                INDEX_OFFSET,
                TIMESTAMP_OFFSET,
                KEY_LEN_OFFSET,
                CONTENT_TYPE_LEN_OFFSET,
                PAYLOAD_LEN_OFFSET,
                HEADER_LEN
            ],
            [0, 1, 2, 10, 18, 19, 20, 24]
        );
        assert_eq!(MAX_PAYLOAD_LEN, 16_777_216);
    }

    #[test]
    fn encodes_the_documented_bytes() {
        let bytes = sample().encode().unwrap();
        let expected = [
            "01",                                     // version
            "03",                                     // kind: decision
            "0700000000000000",                       // index 7
            "002ede923a204e17",                       // timestamp
            "06",                                     // k
            "10",                                     // c
            "13000000",                               // p
            "7265712d3432",                           // "req-42"
            "6170706c69636174696f6e2f6a736f6e",       // "application/json"
            "7b226f7574636f6d65223a22414c4c4f57227d", // payload
        ]
        .concat();
        assert_eq!(hex::encode(&bytes), expected);
        assert_eq!(bytes.len(), sample().encoded_len());
        assert_eq!(Entry::decode(&bytes).unwrap(), sample());
        let view = EntryView::parse(&bytes).unwrap();
        assert_eq!(view.leaf_hash(HashAlg::Sha256), {
            let mut pre = vec![0u8];
            pre.extend_from_slice(&bytes);
            Hash(<sha2::Sha256 as sha2::Digest>::digest(&pre).into())
        });
        assert_eq!(
            sample().leaf_hash(HashAlg::Blake3).unwrap(),
            view.leaf_hash(HashAlg::Blake3)
        );
    }

    #[test]
    fn kinds_round_trip() {
        for kind in EntryKind::ALL {
            assert_eq!(EntryKind::from_u8(kind.as_u8()), Some(kind));
            assert_eq!(kind.name().parse::<EntryKind>(), Ok(kind));
            assert_eq!(kind.to_string(), kind.name());
        }
        assert_eq!(EntryKind::from_u8(0), None);
        assert_eq!(EntryKind::from_u8(6), None);
        assert!("Record".parse::<EntryKind>().is_err());
        assert!("policy-bundle".parse::<EntryKind>().is_err());
    }

    #[test]
    fn timestamps_display_as_rfc3339() {
        assert_eq!(
            Timestamp::UNIX_EPOCH.to_string(),
            "1970-01-01T00:00:00.000000000Z"
        );
        assert_eq!(
            Timestamp(1_679_315_147_000_000_000).to_string(),
            "2023-03-20T12:25:47.000000000Z"
        );
        // A leap day and the last nanosecond of a leap year.
        assert_eq!(
            Timestamp(951_782_400_123_456_789).to_string(),
            "2000-02-29T00:00:00.123456789Z"
        );
        assert_eq!(
            Timestamp(1_735_689_599_999_999_999).to_string(),
            "2024-12-31T23:59:59.999999999Z"
        );
        assert_eq!(
            Timestamp(u64::MAX).to_string(),
            "2554-07-21T23:34:33.709551615Z"
        );
        assert_eq!(Timestamp(1_500_000_000_999).as_unix_secs(), 1_500);
    }

    /// Days from civil, the inverse of `civil_from_days`, written independently.
    fn days_from_civil_naive(year: u64, month: u64, day: u64) -> u64 {
        let leap =
            |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
        let month_days = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        let mut days = 0;
        for y in 1970..year {
            days += if leap(y) { 366 } else { 365 };
        }
        for m in 1..month {
            days += month_days[usize::try_from(m - 1).unwrap()] + u64::from(m == 2 && leap(year));
        }
        days + day - 1
    }

    #[test]
    fn civil_from_days_matches_a_naive_calendar() {
        let mut expected = (1970, 1, 1);
        for days in 0..(800 * 366) {
            let got = civil_from_days(days);
            assert_eq!(got, expected, "day {days}");
            assert_eq!(days_from_civil_naive(got.0, got.1, got.2), days);
            expected = next_day(expected);
        }
    }

    fn next_day((y, m, d): (u64, u64, u64)) -> (u64, u64, u64) {
        let leap = (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
        let len = match m {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        if d < len {
            (y, m, d + 1)
        } else if m < 12 {
            (y, m + 1, 1)
        } else {
            (y + 1, 1, 1)
        }
    }

    #[test]
    fn empty_key_is_rejected_and_absent_key_is_zero_length() {
        let mut entry = sample();
        entry.idempotency_key = Some(String::new());
        assert_eq!(entry.encode(), Err(EnvelopeError::EmptyIdempotencyKey));
        entry.idempotency_key = None;
        let bytes = entry.encode().unwrap();
        assert_eq!(bytes[KEY_LEN_OFFSET], 0);
        assert_eq!(Entry::decode(&bytes).unwrap().idempotency_key, None);
    }

    #[test]
    fn key_limit_at_encode_and_decode() {
        let mut entry = sample();
        entry.idempotency_key = Some("k".repeat(MAX_IDEMPOTENCY_KEY_LEN));
        let bytes = entry.encode().unwrap();
        assert_eq!(Entry::decode(&bytes).unwrap(), entry);

        entry.idempotency_key = Some("k".repeat(MAX_IDEMPOTENCY_KEY_LEN + 1));
        assert_eq!(
            entry.encode(),
            Err(EnvelopeError::IdempotencyKeyTooLong(129))
        );
        // A hand-built envelope declaring 129 key bytes.
        let mut bad = bytes.clone();
        bad[KEY_LEN_OFFSET] = 129;
        bad.insert(HEADER_LEN, b'k');
        assert_eq!(
            Entry::decode(&bad),
            Err(EnvelopeError::IdempotencyKeyTooLong(129))
        );
        // The largest value the byte can hold.
        bad[KEY_LEN_OFFSET] = 255;
        assert_eq!(
            Entry::decode(&bad),
            Err(EnvelopeError::IdempotencyKeyTooLong(255))
        );
    }

    #[test]
    fn content_type_limit_at_encode_and_decode() {
        let mut entry = sample();
        entry.content_type = "t".repeat(MAX_CONTENT_TYPE_LEN);
        let bytes = entry.encode().unwrap();
        assert_eq!(Entry::decode(&bytes).unwrap(), entry);

        entry.content_type = "t".repeat(MAX_CONTENT_TYPE_LEN + 1);
        assert_eq!(entry.encode(), Err(EnvelopeError::ContentTypeTooLong(128)));
        let mut bad = bytes.clone();
        bad[CONTENT_TYPE_LEN_OFFSET] = 128;
        bad.insert(HEADER_LEN, b't');
        assert_eq!(
            Entry::decode(&bad),
            Err(EnvelopeError::ContentTypeTooLong(128))
        );
    }

    #[test]
    fn payload_limit_at_encode_and_decode() {
        let mut entry = sample();
        entry.idempotency_key = None;
        entry.content_type = String::new();
        entry.payload = vec![0xab; MAX_PAYLOAD_LEN];
        let bytes = entry.encode().unwrap();
        assert_eq!(bytes.len(), HEADER_LEN + MAX_PAYLOAD_LEN);
        assert_eq!(Entry::decode(&bytes).unwrap(), entry);

        entry.payload.push(0xab);
        assert_eq!(
            entry.encode(),
            Err(EnvelopeError::PayloadTooLarge(MAX_PAYLOAD_LEN + 1))
        );
        let mut bad = bytes;
        bad.push(0xab);
        bad[PAYLOAD_LEN_OFFSET..HEADER_LEN]
            .copy_from_slice(&u32::try_from(MAX_PAYLOAD_LEN + 1).unwrap().to_le_bytes());
        assert_eq!(
            Entry::decode(&bad),
            Err(EnvelopeError::PayloadTooLarge(MAX_PAYLOAD_LEN + 1))
        );
        // The payload length is checked before the total length, so a huge declared
        // length fails without needing the bytes.
        let mut header = sample().encode().unwrap();
        header[PAYLOAD_LEN_OFFSET..HEADER_LEN].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            Entry::decode(&header),
            Err(EnvelopeError::PayloadTooLarge(u32::MAX as usize))
        );
    }

    #[test]
    fn key_characters_are_checked_at_encode_and_decode() {
        let mut entry = sample();
        entry.idempotency_key = Some("ab\u{7f}".to_owned());
        assert_eq!(
            entry.encode(),
            Err(EnvelopeError::IdempotencyKeyControl { at: 2, code: 0x7f })
        );
        entry.idempotency_key = Some("é\u{85}".to_owned());
        assert_eq!(
            entry.encode(),
            Err(EnvelopeError::IdempotencyKeyControl { at: 2, code: 0x85 })
        );
        // Non-ASCII text without control characters is fine.
        entry.idempotency_key = Some("ключ-✓".to_owned());
        let bytes = entry.encode().unwrap();
        assert_eq!(Entry::decode(&bytes).unwrap(), entry);

        let mut bad = bytes.clone();
        bad[HEADER_LEN + 1] = b'\n';
        assert_eq!(
            Entry::decode(&bad),
            Err(EnvelopeError::IdempotencyKeyNotUtf8(0))
        );
        let mut bad = bytes;
        // "ключ" is 8 bytes; byte 8 is the ASCII hyphen.
        bad[HEADER_LEN + 8] = b'\t';
        assert_eq!(
            Entry::decode(&bad),
            Err(EnvelopeError::IdempotencyKeyControl { at: 8, code: 9 })
        );
    }

    #[test]
    fn content_type_characters_are_checked_at_encode_and_decode() {
        let mut entry = sample();
        for (ct, at, byte) in [("a b\n", 3, b'\n'), ("é", 0, 0xc3), ("x\u{7f}", 1, 0x7f)] {
            entry.content_type = ct.to_owned();
            assert_eq!(
                entry.encode(),
                Err(EnvelopeError::ContentTypeNotPrintable { at, byte })
            );
        }
        entry.content_type = " ~".to_owned();
        let mut bytes = entry.encode().unwrap();
        let ct_at = HEADER_LEN + entry.idempotency_key.as_ref().unwrap().len();
        bytes[ct_at + 1] = 0x1f;
        assert_eq!(
            Entry::decode(&bytes),
            Err(EnvelopeError::ContentTypeNotPrintable { at: 1, byte: 0x1f })
        );
    }

    #[test]
    fn structural_errors_name_the_problem() {
        let bytes = sample().encode().unwrap();
        let err = Entry::decode(&bytes[..7]).unwrap_err();
        assert_eq!(err, EnvelopeError::TruncatedHeader { got: 7 });
        assert_eq!(
            err.to_string(),
            "envelope truncated: need 24 header bytes, got 7"
        );
        assert_eq!(
            Entry::decode(&[]),
            Err(EnvelopeError::TruncatedHeader { got: 0 })
        );

        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert_eq!(
            Entry::decode(&v2).unwrap_err().to_string(),
            "unsupported envelope version 2"
        );
        assert_eq!(
            Entry::decode(&[2]),
            Err(EnvelopeError::UnsupportedVersion(2))
        );

        let mut kind9 = bytes.clone();
        kind9[KIND_OFFSET] = 9;
        assert_eq!(
            Entry::decode(&kind9).unwrap_err().to_string(),
            "unknown entry kind 9"
        );
        kind9[KIND_OFFSET] = 0;
        assert_eq!(Entry::decode(&kind9), Err(EnvelopeError::UnknownKind(0)));

        let mut long = bytes.clone();
        long.extend_from_slice(b"xyz");
        assert_eq!(
            Entry::decode(&long).unwrap_err().to_string(),
            "trailing bytes: 3 after the payload"
        );

        assert_eq!(
            Entry::decode(&bytes[..bytes.len() - 1]),
            Err(EnvelopeError::Truncated {
                need: bytes.len(),
                got: bytes.len() - 1
            })
        );

        let mut entry = sample();
        entry.idempotency_key = Some("k".repeat(200));
        assert_eq!(
            entry.encode().unwrap_err().to_string(),
            "idempotency key is 200 bytes; the limit is 128"
        );
    }

    #[test]
    fn encode_into_appends_and_leaves_the_buffer_alone_on_error() {
        let mut out = b"prefix".to_vec();
        sample().encode_into(&mut out).unwrap();
        assert_eq!(&out[..6], b"prefix");
        assert_eq!(&out[6..], sample().encode().unwrap().as_slice());

        let mut bad = sample();
        bad.content_type = "\n".to_owned();
        let before = out.clone();
        assert!(bad.encode_into(&mut out).is_err());
        assert_eq!(out, before);
    }

    #[test]
    fn drafts_validate_before_an_index_exists() {
        assert_eq!(
            EntryDraft::new(
                EntryKind::Record,
                Some("x".repeat(129)),
                String::new(),
                vec![]
            ),
            Err(EnvelopeError::IdempotencyKeyTooLong(129))
        );
        assert_eq!(
            validate_fields(None, "text/plain", &[0; 10]),
            Ok(()),
            "valid fields pass"
        );
        let draft = EntryDraft::new(
            EntryKind::Decision,
            Some("req-42".to_owned()),
            "application/json".to_owned(),
            br#"{"outcome":"ALLOW"}"#.to_vec(),
        )
        .unwrap();
        let mut out = Vec::new();
        draft.encode_at(
            EntryIndex(7),
            Timestamp(1_679_315_147_000_000_000),
            &mut out,
        );
        assert_eq!(out, sample().encode().unwrap());
        assert_eq!(draft.encoded_len(), out.len());
        assert_eq!(
            draft
                .clone()
                .into_entry(EntryIndex(7), Timestamp(1_679_315_147_000_000_000)),
            sample()
        );
        assert_eq!(EntryDraft::from(sample()), draft);
    }

    fn arb_entry() -> impl Strategy<Value = Entry> {
        (
            any::<u64>(),
            any::<u64>(),
            proptest::sample::select(EntryKind::ALL.to_vec()),
            proptest::option::of("[^\\p{Cc}]{1,32}"),
            "[ -~]{0,127}",
            proptest::collection::vec(any::<u8>(), 0..512),
        )
            .prop_filter("key fits", |(_, _, _, key, _, _)| {
                key.as_ref()
                    .is_none_or(|k| k.len() <= MAX_IDEMPOTENCY_KEY_LEN)
            })
            .prop_map(|(index, ts, kind, key, ct, payload)| Entry {
                index: EntryIndex(index),
                timestamp: Timestamp(ts),
                kind,
                idempotency_key: key,
                content_type: ct,
                payload,
            })
    }

    proptest! {
        #[test]
        fn valid_entries_round_trip(entry in arb_entry()) {
            let bytes = entry.encode().unwrap();
            prop_assert_eq!(bytes.len(), entry.encoded_len());
            let view = EntryView::parse(&bytes).unwrap();
            prop_assert_eq!(view.as_bytes(), bytes.as_slice());
            prop_assert_eq!(view.to_owned(), entry.clone());
            prop_assert_eq!(Entry::decode(&bytes).unwrap(), entry.clone());
            prop_assert_eq!(
                view.leaf_hash(HashAlg::Blake3),
                entry.leaf_hash(HashAlg::Blake3).unwrap()
            );
        }

        #[test]
        fn random_bytes_never_panic_and_decode_canonically(
            bytes in proptest::collection::vec(any::<u8>(), 0..96)
        ) {
            if let Ok(entry) = Entry::decode(&bytes) {
                // The decoder accepts one encoding per entry.
                prop_assert_eq!(entry.encode().unwrap(), bytes);
            }
        }

        #[test]
        fn plausible_headers_never_panic(
            kind in 0u8..8,
            k in any::<u8>(),
            c in any::<u8>(),
            p in prop_oneof![0u32..300, Just(u32::MAX)],
            body in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let mut bytes = vec![ENVELOPE_VERSION, kind];
            bytes.extend_from_slice(&[0; 16]);
            bytes.extend_from_slice(&[k, c]);
            bytes.extend_from_slice(&p.to_le_bytes());
            bytes.extend_from_slice(&body);
            if let Ok(entry) = Entry::decode(&bytes) {
                prop_assert_eq!(entry.encode().unwrap(), bytes);
            }
        }

        #[test]
        fn a_flipped_header_byte_errors_or_changes_the_entry(
            entry in arb_entry(),
            at in 0..HEADER_LEN,
            mask in 1u8..=255,
        ) {
            let mut bytes = entry.encode().unwrap();
            bytes[at] ^= mask;
            if let Ok(decoded) = Entry::decode(&bytes) {
                prop_assert_ne!(decoded, entry);
            }
        }

        #[test]
        fn any_flipped_byte_errors_or_changes_the_entry(
            entry in arb_entry(),
            at in any::<prop::sample::Index>(),
            mask in 1u8..=255,
        ) {
            let mut bytes = entry.encode().unwrap();
            let at = at.index(bytes.len());
            bytes[at] ^= mask;
            if let Ok(decoded) = Entry::decode(&bytes) {
                prop_assert_ne!(decoded, entry);
            }
        }
    }
}
