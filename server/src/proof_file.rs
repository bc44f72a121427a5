//! Proof files: the JSON documents `vouch prove … --json` and `vouch checkpoint --json`
//! write and `vouch verify …` reads, and their offline verification.
//!
//! Three formats, each named by its `format` field and specified byte for byte in
//! `docs/api.md` ("Proof files"):
//!
//! - `vouch.inclusion-proof.v1`: an entry's inclusion proof with the signed checkpoint it
//!   leads to, and optionally the entry's leaf bytes;
//! - `vouch.consistency-proof.v1`: a consistency proof between two tree sizes with the signed
//!   checkpoint of the new size (and of the old size when the server had one);
//! - `vouch.checkpoint.v1`: a signed checkpoint with its parsed fields.
//!
//! Parsing is strict: the document must be one JSON object, every field must be known, present
//! once and well formed, and each error names the field. Verification never trusts the file:
//! a root is taken only from a checkpoint note that a caller-supplied verifier key signed, and
//! each failure names the check that failed.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use vouch_ledger_core::checkpoint::{Checkpoint, OpenCheckpointError, open_checkpoint};
use vouch_ledger_core::entry::{EntryView, EnvelopeError};
use vouch_ledger_core::note::{NoteError, Verifiers};
use vouch_ledger_core::proof::{
    ConsistencyProof, InclusionProof, VerifyError, verify_consistency, verify_inclusion,
};
use vouch_ledger_core::{EntryIndex, Hash, HashAlg, TreeSize};

/// The `format` of an inclusion proof file.
pub const INCLUSION_FORMAT: &str = "vouch.inclusion-proof.v1";
/// The `format` of a consistency proof file.
pub const CONSISTENCY_FORMAT: &str = "vouch.consistency-proof.v1";
/// The `format` of a checkpoint file.
pub const CHECKPOINT_FORMAT: &str = "vouch.checkpoint.v1";

/// Every format this module reads, for error messages.
const KNOWN_FORMATS: [&str; 3] = [INCLUSION_FORMAT, CONSISTENCY_FORMAT, CHECKPOINT_FORMAT];

// ---------------------------------------------------------------------------------------
// The documents
// ---------------------------------------------------------------------------------------

/// A `vouch.inclusion-proof.v1` file: the entry at `index` is in the tree of `tree_size`
/// entries whose root the checkpoint signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProofFile {
    /// The ledger the proof is from.
    pub ledger: String,
    /// The ledger's hash function.
    pub hash: HashAlg,
    /// The entry's index.
    pub index: EntryIndex,
    /// The size of the tree the proof leads to.
    pub tree_size: TreeSize,
    /// The entry's leaf hash, `H(0x00 ‖ leaf bytes)`.
    pub leaf_hash: Hash,
    /// The entry's exact envelope bytes, when the file carries them.
    pub leaf_bytes: Option<Vec<u8>>,
    /// The RFC 9162 inclusion path, leaf to root.
    pub path: Vec<Hash>,
    /// The signed checkpoint note of `tree_size`, verbatim.
    pub checkpoint: String,
}

/// A `vouch.consistency-proof.v1` file: the tree of `old_size` entries is a prefix of the
/// tree of `new_size` entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyProofFile {
    /// The ledger the proof is from.
    pub ledger: String,
    /// The ledger's hash function.
    pub hash: HashAlg,
    /// The size of the earlier tree.
    pub old_size: TreeSize,
    /// The size of the later tree.
    pub new_size: TreeSize,
    /// The RFC 9162 consistency path.
    pub path: Vec<Hash>,
    /// The signed checkpoint note of `old_size`, when the server signed one at that size.
    pub old_checkpoint: Option<String>,
    /// The signed checkpoint note of `new_size`, verbatim.
    pub new_checkpoint: String,
}

/// A `vouch.checkpoint.v1` file: a signed checkpoint and, for reading without a parser,
/// the fields of its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointFile {
    /// The ledger the checkpoint is from.
    pub ledger: String,
    /// The ledger's hash function.
    pub hash: HashAlg,
    /// The checkpoint's origin line.
    pub origin: String,
    /// The checkpoint's tree size.
    pub tree_size: TreeSize,
    /// The checkpoint's root hash.
    pub root_hash: Hash,
    /// The signed note, verbatim.
    pub note: String,
}

/// Why a proof file did not parse. Each variant names the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofFileError {
    /// The bytes are not one JSON document.
    #[error("not valid JSON: {0}")]
    Json(String),
    /// The document is not a JSON object.
    #[error("the document is not a JSON object")]
    NotAnObject,
    /// A field appears twice.
    #[error("field {0}: appears more than once")]
    DuplicateField(String),
    /// A field this format does not define.
    #[error("field {field}: unknown in {format}")]
    UnknownField {
        /// The unknown field's name.
        field: String,
        /// The file's format.
        format: &'static str,
    },
    /// A required field is absent.
    #[error("field {0}: missing")]
    MissingField(&'static str),
    /// The `format` names another document or version.
    #[error("field format: {found:?} is not {expected:?}")]
    WrongFormat {
        /// The format the reader expects.
        expected: &'static str,
        /// The format the file names.
        found: String,
    },
    /// A field is present but malformed.
    #[error("field {field}: {reason}")]
    InvalidField {
        /// The field, with an array position where one applies (`path[3]`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl ProofFileError {
    /// The name of the field the error is about, if any (`path[3]` for an array element).
    pub fn field(&self) -> Option<&str> {
        match self {
            ProofFileError::Json(_) | ProofFileError::NotAnObject => None,
            ProofFileError::DuplicateField(f) => Some(f),
            ProofFileError::UnknownField { field, .. }
            | ProofFileError::InvalidField { field, .. } => Some(field),
            ProofFileError::MissingField(f) => Some(f),
            ProofFileError::WrongFormat { .. } => Some("format"),
        }
    }
}

/// Which of the three formats a document declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// `vouch.inclusion-proof.v1`.
    InclusionProof,
    /// `vouch.consistency-proof.v1`.
    ConsistencyProof,
    /// `vouch.checkpoint.v1`.
    Checkpoint,
}

impl FileFormat {
    /// The `format` string.
    pub const fn name(self) -> &'static str {
        match self {
            FileFormat::InclusionProof => INCLUSION_FORMAT,
            FileFormat::ConsistencyProof => CONSISTENCY_FORMAT,
            FileFormat::Checkpoint => CHECKPOINT_FORMAT,
        }
    }
}

/// Reads the `format` field of a document without checking the rest.
///
/// # Errors
///
/// [`ProofFileError`] if the bytes are not a JSON object with a `format` string naming one
/// of the three formats.
pub fn detect_format(bytes: &[u8]) -> Result<FileFormat, ProofFileError> {
    let mut object = Object::parse(bytes)?;
    let found = object.string("format")?;
    match found.as_str() {
        INCLUSION_FORMAT => Ok(FileFormat::InclusionProof),
        CONSISTENCY_FORMAT => Ok(FileFormat::ConsistencyProof),
        CHECKPOINT_FORMAT => Ok(FileFormat::Checkpoint),
        _ => Err(ProofFileError::InvalidField {
            field: "format".into(),
            reason: format!(
                "{found:?} is not a known format (expected one of {})",
                KNOWN_FORMATS.join(", ")
            ),
        }),
    }
}

impl InclusionProofFile {
    /// Parses a `vouch.inclusion-proof.v1` document.
    ///
    /// # Errors
    ///
    /// [`ProofFileError`] naming the first malformed, missing, unknown or repeated field.
    pub fn parse(bytes: &[u8]) -> Result<Self, ProofFileError> {
        let mut o = Object::parse(bytes)?;
        o.expect_format(INCLUSION_FORMAT, &INCLUSION_FIELDS)?;
        Ok(Self {
            ledger: o.ledger()?,
            hash: o.hash_alg("hash")?,
            index: EntryIndex(o.u64("index")?),
            tree_size: TreeSize(o.u64("tree_size")?),
            leaf_hash: o.hash("leaf_hash")?,
            leaf_bytes: o.optional_base64("leaf_bytes")?,
            path: o.hash_list("path")?,
            checkpoint: o.note("checkpoint")?,
        })
    }

    /// The document as JSON, exactly as `docs/api.md` specifies: two-space indentation,
    /// fields in their documented order, a final newline.
    pub fn to_json(&self) -> String {
        let mut w = Writer::new(INCLUSION_FORMAT);
        w.string("ledger", &self.ledger);
        w.string("hash", self.hash.name());
        w.number("index", self.index.0);
        w.number("tree_size", self.tree_size.0);
        w.string("leaf_hash", &self.leaf_hash.to_hex());
        if let Some(bytes) = &self.leaf_bytes {
            w.string("leaf_bytes", &BASE64.encode(bytes));
        }
        w.hashes("path", &self.path);
        w.string("checkpoint", &self.checkpoint);
        w.finish()
    }
}

impl ConsistencyProofFile {
    /// Parses a `vouch.consistency-proof.v1` document.
    ///
    /// # Errors
    ///
    /// [`ProofFileError`] naming the first malformed, missing, unknown or repeated field.
    pub fn parse(bytes: &[u8]) -> Result<Self, ProofFileError> {
        let mut o = Object::parse(bytes)?;
        o.expect_format(CONSISTENCY_FORMAT, &CONSISTENCY_FIELDS)?;
        Ok(Self {
            ledger: o.ledger()?,
            hash: o.hash_alg("hash")?,
            old_size: TreeSize(o.u64("old_size")?),
            new_size: TreeSize(o.u64("new_size")?),
            path: o.hash_list("path")?,
            old_checkpoint: o.optional_note("old_checkpoint")?,
            new_checkpoint: o.note("new_checkpoint")?,
        })
    }

    /// The document as JSON, exactly as `docs/api.md` specifies.
    pub fn to_json(&self) -> String {
        let mut w = Writer::new(CONSISTENCY_FORMAT);
        w.string("ledger", &self.ledger);
        w.string("hash", self.hash.name());
        w.number("old_size", self.old_size.0);
        w.number("new_size", self.new_size.0);
        w.hashes("path", &self.path);
        if let Some(note) = &self.old_checkpoint {
            w.string("old_checkpoint", note);
        }
        w.string("new_checkpoint", &self.new_checkpoint);
        w.finish()
    }
}

impl CheckpointFile {
    /// Parses a `vouch.checkpoint.v1` document.
    ///
    /// # Errors
    ///
    /// [`ProofFileError`] naming the first malformed, missing, unknown or repeated field.
    pub fn parse(bytes: &[u8]) -> Result<Self, ProofFileError> {
        let mut o = Object::parse(bytes)?;
        o.expect_format(CHECKPOINT_FORMAT, &CHECKPOINT_FIELDS)?;
        Ok(Self {
            ledger: o.ledger()?,
            hash: o.hash_alg("hash")?,
            origin: o.origin()?,
            tree_size: TreeSize(o.u64("tree_size")?),
            root_hash: o.hash("root_hash")?,
            note: o.note("note")?,
        })
    }

    /// The document as JSON, exactly as `docs/api.md` specifies.
    pub fn to_json(&self) -> String {
        let mut w = Writer::new(CHECKPOINT_FORMAT);
        w.string("ledger", &self.ledger);
        w.string("hash", self.hash.name());
        w.string("origin", &self.origin);
        w.number("tree_size", self.tree_size.0);
        w.string("root_hash", &self.root_hash.to_hex());
        w.string("note", &self.note);
        w.finish()
    }
}

/// The fields of each format, in their documented order.
const INCLUSION_FIELDS: [&str; 9] = [
    "format",
    "ledger",
    "hash",
    "index",
    "tree_size",
    "leaf_hash",
    "leaf_bytes",
    "path",
    "checkpoint",
];
const CONSISTENCY_FIELDS: [&str; 8] = [
    "format",
    "ledger",
    "hash",
    "old_size",
    "new_size",
    "path",
    "old_checkpoint",
    "new_checkpoint",
];
const CHECKPOINT_FIELDS: [&str; 7] = [
    "format",
    "ledger",
    "hash",
    "origin",
    "tree_size",
    "root_hash",
    "note",
];

// ---------------------------------------------------------------------------------------
// Strict reading
// ---------------------------------------------------------------------------------------

/// The members of a JSON object in document order, duplicates kept (`serde_json`'s `Map`
/// would silently keep only the last).
struct Members(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, Value>()? {
                    members.push((key, value));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// A parsed top-level object whose fields are taken out one by one.
struct Object {
    fields: BTreeMap<String, Value>,
}

fn invalid(field: &str, reason: impl Into<String>) -> ProofFileError {
    ProofFileError::InvalidField {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// A short description of a JSON value's type, for error messages.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses 64 lowercase hex digits.
fn parse_hex_hash(field: &str, text: &str) -> Result<Hash, ProofFileError> {
    let lower_hex = text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !lower_hex {
        return Err(invalid(
            field,
            format!("{text:?} is not 64 lowercase hex digits"),
        ));
    }
    Hash::from_hex(text).map_err(|e| invalid(field, e.to_string()))
}

impl Object {
    fn parse(bytes: &[u8]) -> Result<Self, ProofFileError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| ProofFileError::Json(e.to_string()))?;
        if !value.is_object() {
            return Err(ProofFileError::NotAnObject);
        }
        let Members(members) =
            serde_json::from_slice(bytes).map_err(|e| ProofFileError::Json(e.to_string()))?;
        let mut fields = BTreeMap::new();
        for (key, value) in members {
            if fields.contains_key(&key) {
                return Err(ProofFileError::DuplicateField(key));
            }
            fields.insert(key, value);
        }
        Ok(Self { fields })
    }

    /// Checks `format` first, then that no field outside `known` is present.
    fn expect_format(
        &mut self,
        expected: &'static str,
        known: &[&str],
    ) -> Result<(), ProofFileError> {
        let found = self.string("format")?;
        if found != expected {
            return Err(ProofFileError::WrongFormat { expected, found });
        }
        if let Some(unknown) = self.fields.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(ProofFileError::UnknownField {
                field: unknown.clone(),
                format: expected,
            });
        }
        Ok(())
    }

    fn take(&mut self, field: &'static str) -> Result<Value, ProofFileError> {
        self.fields
            .remove(field)
            .ok_or(ProofFileError::MissingField(field))
    }

    fn string(&mut self, field: &'static str) -> Result<String, ProofFileError> {
        match self.take(field)? {
            Value::String(s) => Ok(s),
            other => Err(invalid(
                field,
                format!("expected a string, found {}", type_name(&other)),
            )),
        }
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, ProofFileError> {
        let value = self.take(field)?;
        value.as_u64().ok_or_else(|| match &value {
            Value::Number(n) => invalid(
                field,
                format!("{n} is not an integer from 0 to 18446744073709551615"),
            ),
            other => invalid(
                field,
                format!("expected an integer, found {}", type_name(other)),
            ),
        })
    }

    fn ledger(&mut self) -> Result<String, ProofFileError> {
        let name = self.string("ledger")?;
        if !vouch_storage::valid_ledger_name(&name) {
            return Err(invalid(
                "ledger",
                format!(
                    "{name:?} is not a ledger name (1 to 64 of a-z 0-9 - _ . starting with a letter or digit)"
                ),
            ));
        }
        Ok(name)
    }

    fn origin(&mut self) -> Result<String, ProofFileError> {
        let origin = self.string("origin")?;
        if origin.is_empty() || origin.chars().any(char::is_control) {
            return Err(invalid(
                "origin",
                "must be non-empty and without control characters",
            ));
        }
        Ok(origin)
    }

    fn hash_alg(&mut self, field: &'static str) -> Result<HashAlg, ProofFileError> {
        let name = self.string(field)?;
        HashAlg::ALL
            .into_iter()
            .find(|alg| alg.name() == name)
            .ok_or_else(|| invalid(field, format!("{name:?} is not \"blake3\" or \"sha256\"")))
    }

    fn hash(&mut self, field: &'static str) -> Result<Hash, ProofFileError> {
        let text = self.string(field)?;
        parse_hex_hash(field, &text)
    }

    fn hash_list(&mut self, field: &'static str) -> Result<Vec<Hash>, ProofFileError> {
        let Value::Array(items) = self.take(field)? else {
            return Err(invalid(field, "expected an array of hex hashes"));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let name = format!("{field}[{i}]");
                match item {
                    Value::String(text) => parse_hex_hash(&name, text),
                    other => Err(invalid(
                        &name,
                        format!("expected a string, found {}", type_name(other)),
                    )),
                }
            })
            .collect()
    }

    fn optional_base64(&mut self, field: &'static str) -> Result<Option<Vec<u8>>, ProofFileError> {
        if !self.fields.contains_key(field) {
            return Ok(None);
        }
        let text = self.string(field)?;
        BASE64
            .decode(&text)
            .map(Some)
            .map_err(|e| invalid(field, format!("not canonical padded base64: {e}")))
    }

    /// A signed note as text: non-empty and ending with a newline, as every note does.
    fn note(&mut self, field: &'static str) -> Result<String, ProofFileError> {
        let text = self.string(field)?;
        if !text.ends_with('\n') {
            return Err(invalid(
                field,
                "not a signed note (a note ends with a newline)",
            ));
        }
        Ok(text)
    }

    fn optional_note(&mut self, field: &'static str) -> Result<Option<String>, ProofFileError> {
        if self.fields.contains_key(field) {
            self.note(field).map(Some)
        } else {
            Ok(None)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------

/// Writes one document in the documented layout: `{`, one field per line indented by two
/// spaces, `"name": value`, arrays of hashes one per line indented by four, `}` and a
/// newline. Strings are escaped by `serde_json` (`"`, `\`, and control characters; other
/// characters are written as UTF-8).
struct Writer {
    out: String,
    first: bool,
}

fn json_string(s: &str) -> String {
    // Serialising a `&str` cannot fail.
    serde_json::to_string(s).unwrap_or_default()
}

impl Writer {
    fn new(format: &str) -> Self {
        let mut w = Self {
            out: String::from("{"),
            first: true,
        };
        w.string("format", format);
        w
    }

    fn key(&mut self, name: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        self.out.push_str("\n  ");
        self.out.push_str(&json_string(name));
        self.out.push_str(": ");
    }

    fn string(&mut self, name: &str, value: &str) {
        self.key(name);
        self.out.push_str(&json_string(value));
    }

    fn number(&mut self, name: &str, value: u64) {
        self.key(name);
        self.out.push_str(&value.to_string());
    }

    fn hashes(&mut self, name: &str, hashes: &[Hash]) {
        self.key(name);
        if hashes.is_empty() {
            self.out.push_str("[]");
            return;
        }
        self.out.push('[');
        for (i, h) in hashes.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str("\n    \"");
            self.out.push_str(&h.to_hex());
            self.out.push('"');
        }
        self.out.push_str("\n  ]");
    }

    fn finish(mut self) -> String {
        self.out.push_str("\n}\n");
        self.out
    }
}

// ---------------------------------------------------------------------------------------
// Offline verification
// ---------------------------------------------------------------------------------------

/// One check that passed, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The check's name: `checkpoint`, `tree-size`, `leaf-bytes`, `inclusion`, ….
    pub name: &'static str,
    /// What was established, in words.
    pub detail: String,
}

/// A checkpoint that opened with a trusted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedCheckpoint {
    /// The parsed checkpoint.
    pub checkpoint: Checkpoint,
    /// The trusted keys that signed it, as `name+keyid`.
    pub signed_by: Vec<String>,
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The checks that passed, in order.
    pub checks: Vec<Check>,
    /// The signed checkpoint the proof was verified against (the new one, for consistency).
    pub checkpoint: TrustedCheckpoint,
}

/// Where the old root of a consistency proof comes from, when not from the proof file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OldRoot {
    /// A signed checkpoint note of the old size that the auditor kept.
    Note(String),
    /// A root hash the auditor trusts.
    Hash(Hash),
}

/// Why an offline verification failed: the check that failed and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckFailed {
    /// A checkpoint note did not open with the trusted keys.
    #[error("{which}: {source}{}", hint_for(.signers))]
    Checkpoint {
        /// `checkpoint`, `old-checkpoint` or `new-checkpoint`.
        which: &'static str,
        /// Why the note did not open.
        source: OpenCheckpointError,
        /// The keys the note names but no trusted key matches, as `name+keyid`.
        signers: Vec<String>,
    },
    /// A size in the file differs from the size its checkpoint signs.
    #[error("{which}: the file says {stated} but the signed checkpoint is for size {signed}")]
    SizeMismatch {
        /// `tree-size`, `old-size` or `new-size`.
        which: &'static str,
        /// The size in the file.
        stated: u64,
        /// The size in the signed checkpoint.
        signed: u64,
    },
    /// A field of a checkpoint file differs from the signed note.
    #[error("checkpoint-fields: field {field} is {stated} but the signed note says {signed}")]
    FieldMismatch {
        /// The field.
        field: &'static str,
        /// Its value in the file.
        stated: String,
        /// The value in the signed note.
        signed: String,
    },
    /// The leaf bytes do not hash to the leaf hash.
    #[error("leaf-bytes: the leaf bytes hash to {computed}, not to the leaf hash {stated}")]
    LeafHashMismatch {
        /// `H(0x00 ‖ leaf bytes)`.
        computed: Hash,
        /// The leaf hash in the file.
        stated: Hash,
    },
    /// The leaf bytes are not a valid entry envelope.
    #[error("leaf-bytes: not a valid entry envelope: {0}")]
    Envelope(EnvelopeError),
    /// The envelope is for another index.
    #[error("leaf-bytes: the envelope is entry {envelope}, not entry {proof}")]
    EnvelopeIndex {
        /// The index inside the envelope.
        envelope: u64,
        /// The index of the proof.
        proof: u64,
    },
    /// The inclusion proof does not lead to the signed root.
    #[error("inclusion: {0}")]
    Inclusion(VerifyError),
    /// The consistency proof does not hold between the two roots.
    #[error("consistency: {0}")]
    Consistency(VerifyError),
    /// No old root to check a consistency proof against.
    #[error(
        "old-checkpoint: the file has no checkpoint of size {0}; pass the old checkpoint you kept (--old-checkpoint) or a root you trust (--old-root)"
    )]
    NoOldRoot(u64),
}

/// The hint after a checkpoint failure: who signed a note that no trusted key opened.
/// `signers` is filled only for that failure.
fn hint_for(signers: &[String]) -> String {
    if signers.is_empty() {
        String::new()
    } else {
        format!(
            " (signed by {}, which no trusted verifier key names)",
            signers.join(", ")
        )
    }
}

impl CheckFailed {
    /// The name of the check that failed, as the report prints it.
    pub fn check(&self) -> &'static str {
        match self {
            CheckFailed::Checkpoint { which, .. } | CheckFailed::SizeMismatch { which, .. } => {
                which
            }
            CheckFailed::FieldMismatch { .. } => "checkpoint-fields",
            CheckFailed::LeafHashMismatch { .. }
            | CheckFailed::Envelope(_)
            | CheckFailed::EnvelopeIndex { .. } => "leaf-bytes",
            CheckFailed::Inclusion(_) => "inclusion",
            CheckFailed::Consistency(_) => "consistency",
            CheckFailed::NoOldRoot(_) => "old-checkpoint",
        }
    }
}

/// Opens a checkpoint note with the trusted keys.
///
/// # Errors
///
/// [`CheckFailed::Checkpoint`] (with `which` as its name) if the note is malformed, a
/// trusted key's signature fails, or no trusted key signed it.
pub fn open_trusted(
    which: &'static str,
    note: &str,
    trusted: &Verifiers,
) -> Result<TrustedCheckpoint, CheckFailed> {
    match open_checkpoint(note.as_bytes(), trusted) {
        Ok((checkpoint, verified)) => Ok(TrustedCheckpoint {
            checkpoint,
            signed_by: verified
                .verified()
                .iter()
                .map(|s| format!("{}+{}", s.name, s.key_id))
                .collect(),
        }),
        Err(source) => {
            let signers = match &source {
                OpenCheckpointError::Note(NoteError::UnverifiedNote { unverified }) => unverified
                    .iter()
                    .map(|s| format!("{}+{}", s.name, s.key_id))
                    .collect(),
                _ => Vec::new(),
            };
            Err(CheckFailed::Checkpoint {
                which,
                source,
                signers,
            })
        }
    }
}

fn checkpoint_check(name: &'static str, trusted: &TrustedCheckpoint) -> Check {
    let cp = &trusted.checkpoint;
    Check {
        name,
        detail: format!(
            "signature by {} verified: origin {}, tree size {}, root {}",
            trusted.signed_by.join(", "),
            cp.origin,
            cp.size,
            cp.root
        ),
    }
}

/// "1 path hash", "3 path hashes".
fn path_len(path: &[Hash]) -> String {
    match path.len() {
        1 => "1 path hash".to_owned(),
        n => format!("{n} path hashes"),
    }
}

fn check_size(which: &'static str, stated: TreeSize, signed: TreeSize) -> Result<(), CheckFailed> {
    if stated == signed {
        Ok(())
    } else {
        Err(CheckFailed::SizeMismatch {
            which,
            stated: stated.0,
            signed: signed.0,
        })
    }
}

/// Verifies an inclusion proof file offline: the checkpoint's signature with the trusted
/// keys, the proof's tree size against the checkpoint's, the leaf bytes (when present)
/// against the leaf hash and the proof's index, and the RFC 9162 inclusion path against
/// the signed root.
///
/// # Errors
///
/// [`CheckFailed`] naming the first check that failed.
pub fn verify_inclusion_file(
    file: &InclusionProofFile,
    trusted: &Verifiers,
) -> Result<Verified, CheckFailed> {
    let mut checks = Vec::new();
    let signed = open_trusted("checkpoint", &file.checkpoint, trusted)?;
    checks.push(checkpoint_check("checkpoint", &signed));
    let cp = &signed.checkpoint;
    check_size("tree-size", file.tree_size, cp.size)?;
    checks.push(Check {
        name: "tree-size",
        detail: format!("the proof is for the checkpoint's size {}", cp.size),
    });
    if let Some(bytes) = &file.leaf_bytes {
        let computed = file.hash.leaf_hash(bytes);
        if computed != file.leaf_hash {
            return Err(CheckFailed::LeafHashMismatch {
                computed,
                stated: file.leaf_hash,
            });
        }
        let view = EntryView::parse(bytes).map_err(CheckFailed::Envelope)?;
        if view.index() != file.index {
            return Err(CheckFailed::EnvelopeIndex {
                envelope: view.index().0,
                proof: file.index.0,
            });
        }
        checks.push(Check {
            name: "leaf-bytes",
            detail: format!(
                "{} bytes hash to the leaf hash {}: a {} entry, index {}, {}, {} payload bytes",
                bytes.len(),
                computed,
                view.kind(),
                view.index(),
                view.timestamp(),
                view.payload().len()
            ),
        });
    }
    let proof = InclusionProof {
        index: file.index,
        size: file.tree_size,
        path: file.path.clone(),
    };
    verify_inclusion(file.hash, &file.leaf_hash, &proof, &cp.root)
        .map_err(CheckFailed::Inclusion)?;
    checks.push(Check {
        name: "inclusion",
        detail: format!(
            "leaf {} is entry {} of the tree of size {} with the signed root ({}, {})",
            file.leaf_hash,
            file.index,
            cp.size,
            path_len(&file.path),
            file.hash
        ),
    });
    Ok(Verified {
        checks,
        checkpoint: signed,
    })
}

/// Verifies a consistency proof file offline: the new checkpoint's signature, the old root
/// (from `old`, else the file's old checkpoint, whose signature is checked too), both sizes,
/// and the RFC 9162 consistency path between the two roots.
///
/// # Errors
///
/// [`CheckFailed`] naming the first check that failed; [`CheckFailed::NoOldRoot`] if
/// neither `old` nor the file gives the old root.
pub fn verify_consistency_file(
    file: &ConsistencyProofFile,
    trusted: &Verifiers,
    old: Option<&OldRoot>,
) -> Result<Verified, CheckFailed> {
    let mut checks = Vec::new();
    let new = open_trusted("new-checkpoint", &file.new_checkpoint, trusted)?;
    checks.push(checkpoint_check("new-checkpoint", &new));
    check_size("new-size", file.new_size, new.checkpoint.size)?;
    checks.push(Check {
        name: "new-size",
        detail: format!(
            "the proof ends at the new checkpoint's size {}",
            file.new_size
        ),
    });
    let old_root = match (old, &file.old_checkpoint) {
        (Some(OldRoot::Hash(root)), _) => {
            checks.push(Check {
                name: "old-root",
                detail: format!(
                    "old root {root} of size {} given on the command line",
                    file.old_size
                ),
            });
            *root
        }
        (Some(OldRoot::Note(note)), _) | (None, Some(note)) => {
            let signed = open_trusted("old-checkpoint", note, trusted)?;
            checks.push(checkpoint_check("old-checkpoint", &signed));
            check_size("old-size", file.old_size, signed.checkpoint.size)?;
            checks.push(Check {
                name: "old-size",
                detail: format!(
                    "the proof starts at the old checkpoint's size {}",
                    file.old_size
                ),
            });
            signed.checkpoint.root
        }
        (None, None) => return Err(CheckFailed::NoOldRoot(file.old_size.0)),
    };
    let proof = ConsistencyProof {
        old_size: file.old_size,
        new_size: file.new_size,
        path: file.path.clone(),
    };
    verify_consistency(file.hash, &proof, &old_root, &new.checkpoint.root)
        .map_err(CheckFailed::Consistency)?;
    checks.push(Check {
        name: "consistency",
        detail: format!(
            "the tree of size {} is a prefix of the tree of size {} ({}, {})",
            file.old_size,
            file.new_size,
            path_len(&file.path),
            file.hash
        ),
    });
    Ok(Verified {
        checks,
        checkpoint: new,
    })
}

/// Verifies a checkpoint file offline: the note's signature, then that the file's
/// `origin`, `tree_size` and `root_hash` are those the note signs.
///
/// # Errors
///
/// [`CheckFailed::Checkpoint`] if the note does not open, [`CheckFailed::FieldMismatch`]
/// naming a field that differs from the signed text.
pub fn verify_checkpoint_file(
    file: &CheckpointFile,
    trusted: &Verifiers,
) -> Result<Verified, CheckFailed> {
    let signed = verify_checkpoint_note(&file.note, trusted)?;
    let cp = &signed.checkpoint.checkpoint;
    let mismatch = |field, stated: String, signed: String| {
        Err(CheckFailed::FieldMismatch {
            field,
            stated,
            signed,
        })
    };
    if file.origin != cp.origin {
        return mismatch("origin", file.origin.clone(), cp.origin.clone());
    }
    if file.tree_size != cp.size {
        return mismatch("tree_size", file.tree_size.to_string(), cp.size.to_string());
    }
    if file.root_hash != cp.root {
        return mismatch("root_hash", file.root_hash.to_hex(), cp.root.to_hex());
    }
    let mut checks = signed.checks;
    checks.push(Check {
        name: "checkpoint-fields",
        detail: "origin, tree_size and root_hash match the signed note".into(),
    });
    Ok(Verified {
        checks,
        checkpoint: signed.checkpoint,
    })
}

/// Verifies a bare signed checkpoint note (as `vouch checkpoint` prints it).
///
/// # Errors
///
/// [`CheckFailed::Checkpoint`] if the note does not open with the trusted keys.
pub fn verify_checkpoint_note(note: &str, trusted: &Verifiers) -> Result<Verified, CheckFailed> {
    let signed = open_trusted("checkpoint", note, trusted)?;
    Ok(Verified {
        checks: vec![checkpoint_check("checkpoint", &signed)],
        checkpoint: signed,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use vouch_ledger_core::entry::{EntryDraft, EntryKind, Timestamp};
    use vouch_ledger_core::merkle::MemoryTree;
    use vouch_ledger_core::note::Signer;
    use vouch_ledger_core::proof::{prove_consistency, prove_inclusion};

    use super::*;

    const ORIGIN: &str = "vouch.test/default";

    struct Fixture {
        alg: HashAlg,
        signer: Signer,
        leaves: Vec<Vec<u8>>,
        tree: MemoryTree,
    }

    fn signer(name: &str, seed: u8) -> Signer {
        Signer::from_seed(name, &[seed; 32]).unwrap()
    }

    fn fixture(alg: HashAlg, n: u64) -> Fixture {
        let mut tree = MemoryTree::new(alg);
        let mut leaves = Vec::new();
        for i in 0..n {
            let draft = EntryDraft::new(
                EntryKind::Record,
                None,
                "text/plain".into(),
                format!("entry {i}").into_bytes(),
            )
            .unwrap();
            let mut bytes = Vec::new();
            draft.encode_at(
                EntryIndex(i),
                Timestamp::from_unix_nanos(1_700_000_000_000_000_000 + i),
                &mut bytes,
            );
            tree.push(alg.leaf_hash(&bytes));
            leaves.push(bytes);
        }
        Fixture {
            alg,
            signer: signer(ORIGIN, 7),
            leaves,
            tree,
        }
    }

    impl Fixture {
        fn note(&self, size: u64) -> String {
            let cp = Checkpoint::new(
                ORIGIN,
                TreeSize(size),
                self.tree.root_at(TreeSize(size)).unwrap(),
            );
            String::from_utf8(cp.sign(&[&self.signer]).unwrap()).unwrap()
        }

        fn trusted(&self) -> Verifiers {
            std::iter::once(self.signer.verifier()).collect()
        }

        fn inclusion(&self, index: u64, size: u64) -> InclusionProofFile {
            let proof =
                prove_inclusion(self.alg, EntryIndex(index), TreeSize(size), &self.tree).unwrap();
            let leaf = &self.leaves[usize::try_from(index).unwrap()];
            InclusionProofFile {
                ledger: "default".into(),
                hash: self.alg,
                index: EntryIndex(index),
                tree_size: TreeSize(size),
                leaf_hash: self.alg.leaf_hash(leaf),
                leaf_bytes: Some(leaf.clone()),
                path: proof.path,
                checkpoint: self.note(size),
            }
        }

        fn consistency(&self, old: u64, new: u64) -> ConsistencyProofFile {
            let proof =
                prove_consistency(self.alg, TreeSize(old), TreeSize(new), &self.tree).unwrap();
            ConsistencyProofFile {
                ledger: "default".into(),
                hash: self.alg,
                old_size: TreeSize(old),
                new_size: TreeSize(new),
                path: proof.path,
                old_checkpoint: Some(self.note(old)),
                new_checkpoint: self.note(new),
            }
        }

        fn checkpoint_file(&self, size: u64) -> CheckpointFile {
            CheckpointFile {
                ledger: "default".into(),
                hash: self.alg,
                origin: ORIGIN.into(),
                tree_size: TreeSize(size),
                root_hash: self.tree.root_at(TreeSize(size)).unwrap(),
                note: self.note(size),
            }
        }
    }

    // -- Round trips and layout -----------------------------------------------------------

    #[test]
    fn inclusion_file_round_trips() {
        for alg in HashAlg::ALL {
            let f = fixture(alg, 7);
            for (index, size) in [(0, 1), (2, 5), (6, 7), (0, 7)] {
                let mut file = f.inclusion(index, size);
                assert_eq!(
                    InclusionProofFile::parse(file.to_json().as_bytes()),
                    Ok(file.clone())
                );
                file.leaf_bytes = None;
                assert_eq!(
                    InclusionProofFile::parse(file.to_json().as_bytes()),
                    Ok(file)
                );
            }
        }
    }

    #[test]
    fn consistency_and_checkpoint_files_round_trip() {
        let f = fixture(HashAlg::Sha256, 9);
        let mut file = f.consistency(3, 9);
        assert_eq!(
            ConsistencyProofFile::parse(file.to_json().as_bytes()),
            Ok(file.clone())
        );
        file.old_checkpoint = None;
        assert_eq!(
            ConsistencyProofFile::parse(file.to_json().as_bytes()),
            Ok(file)
        );
        let cp = f.checkpoint_file(9);
        assert_eq!(CheckpointFile::parse(cp.to_json().as_bytes()), Ok(cp));
    }

    #[test]
    fn the_layout_is_the_documented_one() {
        let file = InclusionProofFile {
            ledger: "default".into(),
            hash: HashAlg::Blake3,
            index: EntryIndex(1),
            tree_size: TreeSize(2),
            leaf_hash: Hash([0xab; 32]),
            leaf_bytes: Some(vec![1, 2, 3]),
            path: vec![Hash([0x01; 32])],
            checkpoint: "o\n2\nr\n\n\u{2014} k x\n".into(),
        };
        let ab = "ab".repeat(32);
        let one = "01".repeat(32);
        let expected = format!(
            "{{\n  \"format\": \"vouch.inclusion-proof.v1\",\n  \"ledger\": \"default\",\n  \"hash\": \"blake3\",\n  \"index\": 1,\n  \"tree_size\": 2,\n  \"leaf_hash\": \"{ab}\",\n  \"leaf_bytes\": \"AQID\",\n  \"path\": [\n    \"{one}\"\n  ],\n  \"checkpoint\": \"o\\n2\\nr\\n\\n\u{2014} k x\\n\"\n}}\n"
        );
        assert_eq!(file.to_json(), expected);
        // Any JSON reader reads it.
        let value: Value = serde_json::from_str(&expected).unwrap();
        assert_eq!(value["checkpoint"], "o\n2\nr\n\n\u{2014} k x\n");
        let empty = InclusionProofFile {
            path: Vec::new(),
            leaf_bytes: None,
            ..file
        };
        assert!(empty.to_json().contains("\n  \"path\": [],\n"));
    }

    #[test]
    fn detects_the_format() {
        let f = fixture(HashAlg::Blake3, 4);
        assert_eq!(
            detect_format(f.inclusion(1, 4).to_json().as_bytes()),
            Ok(FileFormat::InclusionProof)
        );
        assert_eq!(
            detect_format(f.consistency(2, 4).to_json().as_bytes()),
            Ok(FileFormat::ConsistencyProof)
        );
        assert_eq!(
            detect_format(f.checkpoint_file(4).to_json().as_bytes()),
            Ok(FileFormat::Checkpoint)
        );
        let err = detect_format(br#"{"format": "vouch.inclusion-proof.v9"}"#).unwrap_err();
        assert_eq!(err.field(), Some("format"));
    }

    // -- Strict parsing -------------------------------------------------------------------

    /// The inclusion file of the fixture as a JSON object, to be broken one field at a time.
    fn inclusion_value() -> serde_json::Map<String, Value> {
        let f = fixture(HashAlg::Blake3, 5);
        let json = f.inclusion(2, 5).to_json();
        match serde_json::from_str(&json).unwrap() {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    fn parse_with(
        change: impl FnOnce(&mut serde_json::Map<String, Value>),
    ) -> Result<InclusionProofFile, ProofFileError> {
        let mut map = inclusion_value();
        change(&mut map);
        InclusionProofFile::parse(&serde_json::to_vec(&Value::Object(map)).unwrap())
    }

    #[track_caller]
    fn assert_rejected(
        field: &str,
        message_part: &str,
        change: impl FnOnce(&mut serde_json::Map<String, Value>),
    ) {
        let err = parse_with(change).unwrap_err();
        assert_eq!(err.field(), Some(field), "{err}");
        let message = err.to_string();
        assert!(
            message.contains(&format!("field {field}")),
            "{message:?} does not name {field}"
        );
        assert!(
            message.contains(message_part),
            "{message:?} does not say {message_part:?}"
        );
    }

    #[test]
    fn every_malformed_field_is_named() {
        let set = |k: &'static str, v: Value| {
            move |m: &mut serde_json::Map<String, Value>| {
                m.insert(k.into(), v);
            }
        };
        let remove = |k: &'static str| {
            move |m: &mut serde_json::Map<String, Value>| {
                m.remove(k);
            }
        };
        assert_rejected(
            "format",
            "is not",
            set("format", "vouch.consistency-proof.v1".into()),
        );
        assert_rejected("format", "expected a string", set("format", 1.into()));
        assert_rejected("format", "missing", remove("format"));
        assert_rejected(
            "ledger",
            "not a ledger name",
            set("ledger", "Bad Name".into()),
        );
        assert_rejected("ledger", "missing", remove("ledger"));
        assert_rejected("hash", "not \"blake3\"", set("hash", "md5".into()));
        assert_rejected("hash", "expected a string", set("hash", Value::Null));
        assert_rejected("index", "not an integer", set("index", (-1).into()));
        assert_rejected("index", "not an integer", set("index", 1.5.into()));
        assert_rejected("index", "expected an integer", set("index", "2".into()));
        assert_rejected("index", "missing", remove("index"));
        assert_rejected(
            "tree_size",
            "expected an integer",
            set("tree_size", Value::Null),
        );
        assert_rejected("tree_size", "missing", remove("tree_size"));
        assert_rejected(
            "leaf_hash",
            "64 lowercase hex",
            set("leaf_hash", "AB".repeat(32).into()),
        );
        assert_rejected(
            "leaf_hash",
            "64 lowercase hex",
            set("leaf_hash", "ab".into()),
        );
        assert_rejected("leaf_hash", "missing", remove("leaf_hash"));
        assert_rejected("leaf_bytes", "base64", set("leaf_bytes", "AQI".into()));
        assert_rejected(
            "leaf_bytes",
            "expected a string",
            set("leaf_bytes", Value::Null),
        );
        assert_rejected("path", "expected an array", set("path", "ab".into()));
        assert_rejected("path", "missing", remove("path"));
        assert_rejected(
            "path[1]",
            "64 lowercase hex",
            set(
                "path",
                Value::Array(vec!["00".repeat(32).into(), "0".into()]),
            ),
        );
        assert_rejected(
            "path[0]",
            "expected a string",
            set("path", Value::Array(vec![7.into()])),
        );
        assert_rejected(
            "checkpoint",
            "signed note",
            set("checkpoint", "no newline".into()),
        );
        assert_rejected("checkpoint", "missing", remove("checkpoint"));
        assert_rejected("extra", "unknown", set("extra", true.into()));
        // An optional field may be left out.
        assert_eq!(parse_with(remove("leaf_bytes")).unwrap().leaf_bytes, None);
    }

    #[test]
    fn consistency_and_checkpoint_fields_are_checked() {
        let f = fixture(HashAlg::Sha256, 6);
        let json = f.consistency(2, 6).to_json();
        for (field, from, to) in [
            ("old_size", "\"old_size\": 2", "\"old_size\": \"2\""),
            ("new_size", "\"new_size\": 6", "\"new_size\": -6"),
            (
                "old_checkpoint",
                "\"old_checkpoint\": \"",
                "\"old_checkpoint\": 1, \"x\": \"",
            ),
        ] {
            let broken = json.replacen(from, to, 1);
            let err = ConsistencyProofFile::parse(broken.as_bytes()).unwrap_err();
            // `x` is unknown, and unknown fields are reported before malformed ones.
            let expected = if field == "old_checkpoint" {
                "x"
            } else {
                field
            };
            assert_eq!(err.field(), Some(expected), "{err}");
        }
        let json = f.checkpoint_file(6).to_json();
        for (field, from, to) in [
            (
                "origin",
                "\"origin\": \"vouch.test/default\"",
                "\"origin\": \"\"",
            ),
            ("root_hash", "\"root_hash\": \"", "\"root_hash\": \"z"),
            ("tree_size", "\"tree_size\": 6", "\"tree_size\": 6.0"),
        ] {
            let broken = json.replacen(from, to, 1);
            let err = CheckpointFile::parse(broken.as_bytes()).unwrap_err();
            assert_eq!(err.field(), Some(field), "{err}");
        }
    }

    #[test]
    fn structural_errors_are_rejected() {
        assert!(matches!(
            InclusionProofFile::parse(b"{").unwrap_err(),
            ProofFileError::Json(_)
        ));
        assert_eq!(
            InclusionProofFile::parse(b"[1, 2]").unwrap_err(),
            ProofFileError::NotAnObject
        );
        let f = fixture(HashAlg::Blake3, 3);
        let json = f.inclusion(0, 3).to_json();
        let duplicated = json.replacen("\"index\": 0,", "\"index\": 0,\n  \"index\": 1,", 1);
        assert_eq!(
            InclusionProofFile::parse(duplicated.as_bytes()).unwrap_err(),
            ProofFileError::DuplicateField("index".into())
        );
        let trailing = format!("{json}{{}}");
        assert!(matches!(
            InclusionProofFile::parse(trailing.as_bytes()).unwrap_err(),
            ProofFileError::Json(_)
        ));
    }

    // -- Offline verification -------------------------------------------------------------

    #[test]
    fn valid_proofs_verify() {
        for alg in HashAlg::ALL {
            let f = fixture(alg, 13);
            for size in 1..=13 {
                for index in 0..size {
                    let file = f.inclusion(index, size);
                    let verified = verify_inclusion_file(&file, &f.trusted()).unwrap();
                    let names: Vec<_> = verified.checks.iter().map(|c| c.name).collect();
                    assert_eq!(
                        names,
                        ["checkpoint", "tree-size", "leaf-bytes", "inclusion"]
                    );
                }
                for old in 1..=size {
                    let file = f.consistency(old, size);
                    verify_consistency_file(&file, &f.trusted(), None).unwrap();
                }
            }
            verify_checkpoint_file(&f.checkpoint_file(13), &f.trusted()).unwrap();
        }
    }

    #[test]
    fn a_flipped_bit_fails() {
        let f = fixture(HashAlg::Blake3, 11);
        let file = f.inclusion(4, 11);
        for i in 0..file.path.len() {
            let mut bad = file.clone();
            bad.path[i].0[i % 32] ^= 1;
            let err = verify_inclusion_file(&bad, &f.trusted()).unwrap_err();
            assert_eq!(err, CheckFailed::Inclusion(VerifyError::RootMismatch));
            assert_eq!(err.check(), "inclusion");
            assert!(err.to_string().starts_with("inclusion: "), "{err}");
        }
        let mut bad = file.clone();
        bad.leaf_hash.0[0] ^= 0x80;
        let err = verify_inclusion_file(&bad, &f.trusted()).unwrap_err();
        assert_eq!(err.check(), "leaf-bytes", "{err}");
        bad.leaf_bytes = None;
        let err = verify_inclusion_file(&bad, &f.trusted()).unwrap_err();
        assert_eq!(err, CheckFailed::Inclusion(VerifyError::RootMismatch));
        let mut bad = file.clone();
        bad.leaf_bytes.as_mut().unwrap()[30] ^= 1;
        let err = verify_inclusion_file(&bad, &f.trusted()).unwrap_err();
        assert!(matches!(err, CheckFailed::LeafHashMismatch { .. }), "{err}");
        let cons = f.consistency(3, 11);
        let mut bad = cons.clone();
        bad.path[1].0[5] ^= 4;
        let err = verify_consistency_file(&bad, &f.trusted(), None).unwrap_err();
        assert_eq!(err.check(), "consistency", "{err}");
    }

    #[test]
    fn leaf_bytes_of_another_entry_fail() {
        let f = fixture(HashAlg::Sha256, 4);
        let mut file = f.inclusion(1, 4);
        let other = f.leaves[2].clone();
        file.leaf_hash = f.alg.leaf_hash(&other);
        file.leaf_bytes = Some(other);
        let err = verify_inclusion_file(&file, &f.trusted()).unwrap_err();
        assert_eq!(
            err,
            CheckFailed::EnvelopeIndex {
                envelope: 2,
                proof: 1
            }
        );
        file.leaf_bytes = Some(b"not an envelope".to_vec());
        file.leaf_hash = f.alg.leaf_hash(b"not an envelope");
        let err = verify_inclusion_file(&file, &f.trusted()).unwrap_err();
        assert!(matches!(err, CheckFailed::Envelope(_)), "{err}");
    }

    #[test]
    fn a_wrong_vkey_fails_naming_the_signer() {
        let f = fixture(HashAlg::Blake3, 5);
        let other: Verifiers = std::iter::once(signer("someone.else/log", 9).verifier()).collect();
        let err = verify_inclusion_file(&f.inclusion(1, 5), &other).unwrap_err();
        assert_eq!(err.check(), "checkpoint");
        let message = err.to_string();
        assert!(message.contains("no verifiable signatures"), "{message}");
        assert!(
            message.contains(&format!("signed by {ORIGIN}+{}", f.signer.key_id())),
            "{message}"
        );
        // The same name with another key: the signature does not verify.
        let impostor: Verifiers = std::iter::once(signer(ORIGIN, 8).verifier()).collect();
        let err = verify_checkpoint_note(&f.note(5), &impostor).unwrap_err();
        assert_eq!(err.check(), "checkpoint", "{err}");
        let err = verify_consistency_file(&f.consistency(2, 5), &other, None).unwrap_err();
        assert_eq!(err.check(), "new-checkpoint", "{err}");
    }

    #[test]
    fn a_wrong_size_fails() {
        let f = fixture(HashAlg::Blake3, 6);
        // Index 0 has a three-hash path in trees of 5 and 6 leaves: only the size check
        // catches a size that is not the checkpoint's.
        let mut file = f.inclusion(0, 6);
        file.tree_size = TreeSize(5);
        let err = verify_inclusion_file(&file, &f.trusted()).unwrap_err();
        assert_eq!(
            err,
            CheckFailed::SizeMismatch {
                which: "tree-size",
                stated: 5,
                signed: 6
            }
        );
        assert!(err.to_string().starts_with("tree-size: "), "{err}");
        let mut file = f.inclusion(0, 6);
        file.checkpoint = f.note(5);
        let err = verify_inclusion_file(&file, &f.trusted()).unwrap_err();
        assert_eq!(err.check(), "tree-size");
        let mut cons = f.consistency(2, 6);
        cons.old_checkpoint = Some(f.note(3));
        let err = verify_consistency_file(&cons, &f.trusted(), None).unwrap_err();
        assert_eq!(err.check(), "old-size", "{err}");
        let mut cp = f.checkpoint_file(6);
        cp.tree_size = TreeSize(7);
        let err = verify_checkpoint_file(&cp, &f.trusted()).unwrap_err();
        assert!(
            matches!(
                err,
                CheckFailed::FieldMismatch {
                    field: "tree_size",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_tampered_note_fails() {
        let f = fixture(HashAlg::Sha256, 5);
        let file = f.inclusion(3, 5);
        // Another root in the signed text.
        let mut bad = file.clone();
        let root_line = bad.checkpoint.lines().nth(2).unwrap().to_owned();
        let other_root = BASE64.encode([0u8; 32]);
        bad.checkpoint = bad.checkpoint.replacen(&root_line, &other_root, 1);
        let err = verify_inclusion_file(&bad, &f.trusted()).unwrap_err();
        assert_eq!(err.check(), "checkpoint");
        assert!(err.to_string().contains("invalid signature"), "{err}");
        // A bigger size in the signed text, and in the file to match.
        let mut bad = file.clone();
        bad.checkpoint = bad.checkpoint.replacen("\n5\n", "\n6\n", 1);
        bad.tree_size = TreeSize(6);
        let err = verify_inclusion_file(&bad, &f.trusted()).unwrap_err();
        assert!(err.to_string().contains("invalid signature"), "{err}");
        // A mangled signature block.
        let mut bad = file;
        bad.checkpoint = bad.checkpoint.replacen("\n\n", "\n", 1);
        let err = verify_inclusion_file(&bad, &f.trusted()).unwrap_err();
        assert!(err.to_string().contains("malformed note"), "{err}");
    }

    #[test]
    fn consistency_old_roots_from_the_command_line() {
        let f = fixture(HashAlg::Blake3, 10);
        let mut file = f.consistency(4, 10);
        file.old_checkpoint = None;
        let err = verify_consistency_file(&file, &f.trusted(), None).unwrap_err();
        assert_eq!(err, CheckFailed::NoOldRoot(4));
        let kept = OldRoot::Note(f.note(4));
        verify_consistency_file(&file, &f.trusted(), Some(&kept)).unwrap();
        let root = OldRoot::Hash(f.tree.root_at(TreeSize(4)).unwrap());
        verify_consistency_file(&file, &f.trusted(), Some(&root)).unwrap();
        let wrong = OldRoot::Hash(f.tree.root_at(TreeSize(3)).unwrap());
        let err = verify_consistency_file(&file, &f.trusted(), Some(&wrong)).unwrap_err();
        assert_eq!(err.check(), "consistency", "{err}");
    }

    // -- The examples of docs/api.md, byte for byte -----------------------------------

    const DOC_VKEY: &str =
        "vouch.local/default+86903c8f+AUxC16aLwDtXSyl7z32IVXKFAWtDmbKVPQzui1bGh9FG";
    const DOC_INCLUSION: &str = r#"{
  "format": "vouch.inclusion-proof.v1",
  "ledger": "default",
  "hash": "blake3",
  "index": 1,
  "tree_size": 3,
  "leaf_hash": "68a3bc76367a5d4c805bfec0ae284cb46ec8bc52e1b3adc8636430ad113f1606",
  "leaf_bytes": "AQEBAAAAAAAAAKc5DQVUWuoYAhAHAAAAazFhcHBsaWNhdGlvbi9qc29ueyJhIjoxfQ==",
  "path": [
    "511ecea69aa080258fc5a8408eef07b4c4a459021536a7513dca67714fea40dd",
    "2763dfbb8fb98d5099d0809a69ca1c41e90e713b2fbbae93c6cbcf4930e72247"
  ],
  "checkpoint": "vouch.local/default\n3\noYZe/+iB9Jsurq8+tq5uRFu6RGLKGIvX0hfMYprSxTk=\n\n— vouch.local/default hpA8jzWF8KiKPmkPPXdp9bl16o2XJQervWaQCE46KVvi/rX+Tz4sdA6/vNlHTAUCilva7V5Ue5q6k3h/SABYl9q6cwE=\n"
}
"#;
    const DOC_CONSISTENCY: &str = r#"{
  "format": "vouch.consistency-proof.v1",
  "ledger": "default",
  "hash": "blake3",
  "old_size": 3,
  "new_size": 5,
  "path": [
    "2763dfbb8fb98d5099d0809a69ca1c41e90e713b2fbbae93c6cbcf4930e72247",
    "683dd58fa88d957cbba57113befc2d84edd3f8e18180a495ff51bef000cb4826",
    "e7940de45b41ed9a1a7dad068e8f8d97931480d366c47d3aec27179b7b62d127",
    "cf15a20d82ba92224a71b403349c0b74a4d785fc03742046c2361e0aae974cc3"
  ],
  "old_checkpoint": "vouch.local/default\n3\noYZe/+iB9Jsurq8+tq5uRFu6RGLKGIvX0hfMYprSxTk=\n\n— vouch.local/default hpA8jzWF8KiKPmkPPXdp9bl16o2XJQervWaQCE46KVvi/rX+Tz4sdA6/vNlHTAUCilva7V5Ue5q6k3h/SABYl9q6cwE=\n",
  "new_checkpoint": "vouch.local/default\n5\nOZDscjNP5ji2PIILmgZqqitu0bpCavI5DQFchHIJpEU=\n\n— vouch.local/default hpA8j7zS05C/deDDNZuamr1j0yhnmmmlW8t7MnZnVK8AlE/rDBwwazTg39ebwx07F92+5Y4Vp+Cy5blAfNtod4J6WQw=\n"
}
"#;

    #[test]
    fn the_documented_example_verifies() {
        let trusted: Verifiers =
            std::iter::once(vouch_ledger_core::note::Verifier::from_vkey(DOC_VKEY).unwrap())
                .collect();
        let inclusion = InclusionProofFile::parse(DOC_INCLUSION.as_bytes()).unwrap();
        assert_eq!(inclusion.to_json(), DOC_INCLUSION);
        let verified = verify_inclusion_file(&inclusion, &trusted).unwrap();
        assert_eq!(verified.checks.len(), 4);
        assert_eq!(
            verified.checkpoint.checkpoint.root.to_hex(),
            "a1865effe881f49b2eaeaf3eb6ae6e445bba4462ca188bd7d217cc629ad2c539"
        );
        let consistency = ConsistencyProofFile::parse(DOC_CONSISTENCY.as_bytes()).unwrap();
        assert_eq!(consistency.to_json(), DOC_CONSISTENCY);
        verify_consistency_file(&consistency, &trusted, None).unwrap();
        // The documented files are the documented bytes.
        let doc = include_str!("../../docs/api.md");
        for example in [DOC_INCLUSION, DOC_CONSISTENCY] {
            assert!(doc.contains(&format!("```json\n{example}```\n")));
        }
    }
}
