//! Reading and writing `vouch.proof-pack.v1` documents.
//!
//! Reading is strict, as for the proof files: the document is one JSON object of at most
//! [`MAX_PACK_BYTES`], no member appears twice at any depth, `format` is checked first, then
//! that no member is unknown (at the top level and in every entry object), then every member
//! in the documented order; each error names the member as a path (`overrides[1].leaf_bytes`).
//! Writing produces exactly the layout `docs/proofs.md` ("Proof packs") specifies.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use vouch_ledger_core::note::Verifier;
use vouch_ledger_core::{EntryIndex, Hash, HashAlg};

use super::{
    FORMAT, MAX_CONSISTENCY_PATH, MAX_INCLUSION_PATH, MAX_NOTE_BYTES, MAX_PACK_BYTES,
    MAX_PACK_EXCEPTIONS, MAX_PACK_OVERRIDES, MAX_VERIFIER_KEYS, PackEntry, ProofPack,
};
use crate::canonical;
use crate::request::limits::MAX_REQUEST_BYTES;

/// The top-level members, in their documented order.
const FIELDS: [&str; 13] = [
    "format",
    "origin",
    "hash",
    "decision_id",
    "request",
    "decision",
    "bundle",
    "exceptions",
    "overrides",
    "checkpoint",
    "latest_checkpoint",
    "consistency_path",
    "verifier_keys",
];

/// The members of an entry object, in their documented order.
const ENTRY_FIELDS: [&str; 4] = ["index", "leaf_hash", "leaf_bytes", "inclusion_path"];

/// Why a document is not a valid proof pack. Each variant but the first three names the
/// member it is about, as a path such as `overrides[1].inclusion_path[0]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PackFormatError {
    /// The document is larger than [`MAX_PACK_BYTES`].
    #[error("the document is {size} bytes long; a proof pack is at most {max} bytes")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Not one JSON document, or a member repeated in an object.
    #[error("not valid JSON: {0}")]
    Json(String),
    /// The document is not a JSON object.
    #[error("the document is not a JSON object")]
    NotAnObject,
    /// A required member is absent.
    #[error("field {0}: missing")]
    Missing(String),
    /// A member the format does not define.
    #[error("field {0}: unknown in vouch.proof-pack.v1")]
    Unknown(String),
    /// A member that is present but malformed.
    #[error("field {field}: {reason}")]
    Invalid {
        /// The member's path.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl PackFormatError {
    /// The path of the member the error is about, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            PackFormatError::TooLarge { .. }
            | PackFormatError::Json(_)
            | PackFormatError::NotAnObject => None,
            PackFormatError::Missing(f) | PackFormatError::Unknown(f) => Some(f),
            PackFormatError::Invalid { field, .. } => Some(field),
        }
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> PackFormatError {
    PackFormatError::Invalid {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------------------
// A JSON tree that refuses repeated members
// ---------------------------------------------------------------------------------------

/// A JSON value whose objects keep their members in document order; deserialising one fails
/// when an object repeats a member (`serde_json::Value` would keep only the last).
#[derive(Debug, Clone)]
enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        serde_json::Number::from_f64(v)
            .map(Json::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members: Vec<(String, Json)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if members.iter().any(|(k, _)| *k == key) {
                return Err(de::Error::custom(format!(
                    "member {key:?} appears more than once in an object"
                )));
            }
            let value = map.next_value()?;
            members.push((key, value));
        }
        Ok(Json::Object(members))
    }
}

impl Json {
    fn type_name(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }

    /// Whether the value holds a number that `serde_json` read as a floating-point number: one
    /// written with a fraction or an exponent, or an integer outside the `i64` and `u64`
    /// ranges. Canonical JSON has no such numbers (`docs/policy.md`), and one would not read
    /// back as itself after writing: `serde_json`'s default float parsing is not correctly
    /// rounded, so the shortest text written for a float may read as a neighbouring float.
    fn has_non_integer(&self) -> bool {
        match self {
            Json::Number(n) => !(n.is_u64() || n.is_i64()),
            Json::Array(items) => items.iter().any(Json::has_non_integer),
            Json::Object(members) => members.iter().any(|(_, v)| v.has_non_integer()),
            Json::Null | Json::Bool(_) | Json::String(_) => false,
        }
    }

    fn into_value(self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(b),
            Json::Number(n) => Value::Number(n),
            Json::String(s) => Value::String(s),
            Json::Array(items) => Value::Array(items.into_iter().map(Json::into_value).collect()),
            Json::Object(members) => Value::Object(
                members
                    .into_iter()
                    .map(|(k, v)| (k, v.into_value()))
                    .collect(),
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Strict reading
// ---------------------------------------------------------------------------------------

/// An object whose members are taken out one by one; `prefix` is its path (`""` at the top,
/// `"decision."`, `"overrides[2]."`).
struct Members {
    prefix: String,
    members: BTreeMap<String, Json>,
}

impl Members {
    /// The members of `value`, refusing any member not in `known`.
    fn of(prefix: String, value: Json, known: &[&str]) -> Result<Self, PackFormatError> {
        let Json::Object(list) = value else {
            let field = prefix.trim_end_matches('.');
            return Err(invalid(
                field,
                format!("expected an object, found {}", value.type_name()),
            ));
        };
        let members: BTreeMap<String, Json> = list.into_iter().collect();
        if let Some(unknown) = members.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(PackFormatError::Unknown(format!("{prefix}{unknown}")));
        }
        Ok(Self { prefix, members })
    }

    fn path(&self, field: &str) -> String {
        format!("{}{field}", self.prefix)
    }

    fn take(&mut self, field: &str) -> Result<Json, PackFormatError> {
        self.members
            .remove(field)
            .ok_or_else(|| PackFormatError::Missing(self.path(field)))
    }

    fn string(&mut self, field: &str) -> Result<String, PackFormatError> {
        let path = self.path(field);
        string_value(&path, self.take(field)?)
    }

    fn u64(&mut self, field: &str) -> Result<u64, PackFormatError> {
        let path = self.path(field);
        match self.take(field)? {
            Json::Number(n) => n.as_u64().ok_or_else(|| {
                invalid(
                    &path,
                    format!("{n} is not an integer from 0 to 18446744073709551615"),
                )
            }),
            other => Err(invalid(
                &path,
                format!("expected an integer, found {}", other.type_name()),
            )),
        }
    }

    fn array(&mut self, field: &str, max: usize) -> Result<Vec<Json>, PackFormatError> {
        let path = self.path(field);
        match self.take(field)? {
            Json::Array(items) if items.len() > max => Err(invalid(
                &path,
                format!("{} items; at most {max} are allowed", items.len()),
            )),
            Json::Array(items) => Ok(items),
            other => Err(invalid(
                &path,
                format!("expected an array, found {}", other.type_name()),
            )),
        }
    }

    fn hash(&mut self, field: &str) -> Result<Hash, PackFormatError> {
        let text = self.string(field)?;
        hex_hash(&self.path(field), &text)
    }

    fn hashes(&mut self, field: &str, max: usize) -> Result<Vec<Hash>, PackFormatError> {
        let path = self.path(field);
        self.array(field, max)?
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let item_path = format!("{path}[{i}]");
                let text = string_value(&item_path, item)?;
                hex_hash(&item_path, &text)
            })
            .collect()
    }

    fn bytes(&mut self, field: &str) -> Result<Vec<u8>, PackFormatError> {
        let text = self.string(field)?;
        BASE64.decode(&text).map_err(|e| {
            invalid(
                &self.path(field),
                format!("not canonical padded base64: {e}"),
            )
        })
    }

    fn note(&mut self, field: &str) -> Result<String, PackFormatError> {
        let text = self.string(field)?;
        let path = self.path(field);
        if text.len() > MAX_NOTE_BYTES {
            return Err(invalid(
                &path,
                format!(
                    "{} bytes; a signed note is at most {MAX_NOTE_BYTES} bytes",
                    text.len()
                ),
            ));
        }
        if !text.ends_with('\n') {
            return Err(invalid(
                &path,
                "not a signed note (a note ends with a newline)",
            ));
        }
        Ok(text)
    }
}

fn string_value(path: &str, value: Json) -> Result<String, PackFormatError> {
    match value {
        Json::String(s) => Ok(s),
        other => Err(invalid(
            path,
            format!("expected a string, found {}", other.type_name()),
        )),
    }
}

/// Parses 64 lowercase hex digits.
fn hex_hash(path: &str, text: &str) -> Result<Hash, PackFormatError> {
    let lower_hex = text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !lower_hex {
        return Err(invalid(
            path,
            format!("{text:?} is not 64 lowercase hex digits"),
        ));
    }
    Hash::from_hex(text).map_err(|e| invalid(path, e.to_string()))
}

/// Whether `text` is `sha256:` and 64 lowercase hex digits.
fn is_sha256_id(text: &str) -> bool {
    text.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn entry(prefix: String, value: Json) -> Result<PackEntry, PackFormatError> {
    let mut o = Members::of(prefix, value, &ENTRY_FIELDS)?;
    Ok(PackEntry {
        index: EntryIndex(o.u64("index")?),
        leaf_hash: o.hash("leaf_hash")?,
        leaf_bytes: o.bytes("leaf_bytes")?,
        inclusion_path: o.hashes("inclusion_path", MAX_INCLUSION_PATH)?,
    })
}

fn entries(o: &mut Members, field: &str, max: usize) -> Result<Vec<PackEntry>, PackFormatError> {
    let items = o.array(field, max)?;
    let mut out: Vec<PackEntry> = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let e = entry(format!("{field}[{i}]."), item)?;
        if let Some(previous) = out.last()
            && previous.index >= e.index
        {
            return Err(invalid(
                &format!("{field}[{i}].index"),
                format!(
                    "entry {} after entry {}: the list must be sorted by index without repeats",
                    e.index, previous.index
                ),
            ));
        }
        out.push(e);
    }
    Ok(out)
}

impl ProofPack {
    /// Parses a `vouch.proof-pack.v1` document.
    ///
    /// # Errors
    ///
    /// [`PackFormatError`] for a document over [`MAX_PACK_BYTES`], one that is not a single
    /// JSON object, or the first missing, unknown, repeated or malformed member.
    pub fn parse(bytes: &[u8]) -> Result<ProofPack, PackFormatError> {
        if bytes.len() > MAX_PACK_BYTES {
            return Err(PackFormatError::TooLarge {
                size: bytes.len(),
                max: MAX_PACK_BYTES,
            });
        }
        let root: Json =
            serde_json::from_slice(bytes).map_err(|e| PackFormatError::Json(e.to_string()))?;
        let Json::Object(list) = root else {
            return Err(PackFormatError::NotAnObject);
        };
        let format = list
            .iter()
            .find(|(k, _)| k == "format")
            .map(|(_, v)| v.clone())
            .ok_or_else(|| PackFormatError::Missing("format".into()))?;
        let format = string_value("format", format)?;
        if format != FORMAT {
            return Err(invalid("format", format!("{format:?} is not {FORMAT:?}")));
        }
        let mut o = Members::of(String::new(), Json::Object(list), &FIELDS)?;
        o.take("format")?;
        let origin = o.string("origin")?;
        if origin.is_empty() || origin.chars().any(char::is_control) {
            return Err(invalid(
                "origin",
                "must be non-empty and without control characters",
            ));
        }
        let hash_name = o.string("hash")?;
        let hash = HashAlg::ALL
            .into_iter()
            .find(|alg| alg.name() == hash_name)
            .ok_or_else(|| {
                invalid(
                    "hash",
                    format!("{hash_name:?} is not \"blake3\" or \"sha256\""),
                )
            })?;
        let decision_id = o.string("decision_id")?;
        if !is_sha256_id(&decision_id) {
            return Err(invalid(
                "decision_id",
                format!("{decision_id:?} is not sha256: and 64 lowercase hex digits"),
            ));
        }
        let request = match o.take("request")? {
            Json::Object(members) if members.iter().any(|(_, v)| v.has_non_integer()) => {
                return Err(invalid(
                    "request",
                    "holds a number that is not an integer from -9223372036854775808 to 18446744073709551615; canonical JSON has no other numbers",
                ));
            }
            Json::Object(members) => {
                let mut bytes = Vec::new();
                canonical::write_value(&mut bytes, &Json::Object(members).into_value());
                if bytes.len() > MAX_REQUEST_BYTES {
                    return Err(invalid(
                        "request",
                        format!(
                            "{} bytes in canonical form; a request snapshot is at most {MAX_REQUEST_BYTES}",
                            bytes.len()
                        ),
                    ));
                }
                bytes
            }
            other => {
                return Err(invalid(
                    "request",
                    format!("expected an object, found {}", other.type_name()),
                ));
            }
        };
        let decision = entry("decision.".into(), o.take("decision")?)?;
        let bundle = entry("bundle.".into(), o.take("bundle")?)?;
        let exceptions = entries(&mut o, "exceptions", MAX_PACK_EXCEPTIONS)?;
        let overrides = entries(&mut o, "overrides", MAX_PACK_OVERRIDES)?;
        let checkpoint = o.note("checkpoint")?;
        let latest_checkpoint = o.note("latest_checkpoint")?;
        let consistency_path = o.hashes("consistency_path", MAX_CONSISTENCY_PATH)?;
        let keys = o.array("verifier_keys", MAX_VERIFIER_KEYS)?;
        if keys.is_empty() {
            return Err(invalid(
                "verifier_keys",
                "empty; a pack lists at least one key",
            ));
        }
        let mut verifier_keys: Vec<Verifier> = Vec::with_capacity(keys.len());
        for (i, key) in keys.into_iter().enumerate() {
            let path = format!("verifier_keys[{i}]");
            let text = string_value(&path, key)?;
            let verifier = Verifier::from_vkey(&text)
                .map_err(|e| invalid(&path, format!("{text:?} is not a verifier key: {e}")))?;
            if verifier_keys
                .iter()
                .any(|v| v.name() == verifier.name() && v.key_id() == verifier.key_id())
            {
                return Err(invalid(
                    &path,
                    format!(
                        "the key {}+{} is listed more than once",
                        verifier.name(),
                        verifier.key_id()
                    ),
                ));
            }
            verifier_keys.push(verifier);
        }
        Ok(ProofPack {
            origin,
            hash,
            decision_id,
            request,
            decision,
            bundle,
            exceptions,
            overrides,
            checkpoint,
            latest_checkpoint,
            consistency_path,
            verifier_keys,
        })
    }

    /// The document, exactly in the layout `docs/proofs.md` specifies: two-space indentation,
    /// members in their documented order, `request` in canonical form on one line, a final
    /// newline.
    pub fn to_json(&self) -> String {
        let mut w = Writer::default();
        w.open();
        w.string("format", FORMAT);
        w.string("origin", &self.origin);
        w.string("hash", self.hash.name());
        w.string("decision_id", &self.decision_id);
        w.key("request");
        w.out.push_str(&String::from_utf8_lossy(&self.request));
        w.key("decision");
        w.entry(&self.decision);
        w.key("bundle");
        w.entry(&self.bundle);
        w.entries("exceptions", &self.exceptions);
        w.entries("overrides", &self.overrides);
        w.string("checkpoint", &self.checkpoint);
        w.string("latest_checkpoint", &self.latest_checkpoint);
        w.list(
            "consistency_path",
            self.consistency_path
                .iter()
                .map(|h| json_string(&h.to_hex())),
        );
        w.list(
            "verifier_keys",
            self.verifier_keys.iter().map(|v| json_string(&v.to_vkey())),
        );
        w.close();
        w.out.push('\n');
        w.out
    }
}

// ---------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------

/// A JSON string with the escapes of `docs/policy.md` ("Canonical JSON").
fn json_string(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len() + 2);
    canonical::write_string(&mut out, s);
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes the documented layout: each member on its own line, indented by two spaces per
/// level; `"name": value`; arrays and objects open on the member's line and close on their
/// own line; an empty array is `[]`.
#[derive(Default)]
struct Writer {
    out: String,
    depth: usize,
    first: bool,
}

impl Writer {
    fn newline(&mut self) {
        self.out.push('\n');
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
    }

    fn open(&mut self) {
        self.out.push('{');
        self.depth += 1;
        self.first = true;
    }

    fn close(&mut self) {
        self.depth -= 1;
        self.newline();
        self.out.push('}');
        self.first = false;
    }

    fn item(&mut self) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        self.newline();
    }

    fn key(&mut self, name: &str) {
        self.item();
        self.out.push_str(&json_string(name));
        self.out.push_str(": ");
    }

    fn string(&mut self, name: &str, value: &str) {
        self.key(name);
        self.out.push_str(&json_string(value));
    }

    fn list(&mut self, name: &str, items: impl ExactSizeIterator<Item = String>) {
        self.key(name);
        if items.len() == 0 {
            self.out.push_str("[]");
            return;
        }
        self.out.push('[');
        self.depth += 1;
        self.first = true;
        for item in items {
            self.item();
            self.out.push_str(&item);
        }
        self.depth -= 1;
        self.newline();
        self.out.push(']');
        self.first = false;
    }

    fn entry(&mut self, e: &PackEntry) {
        self.open();
        self.key("index");
        self.out.push_str(&e.index.0.to_string());
        self.string("leaf_hash", &e.leaf_hash.to_hex());
        self.string("leaf_bytes", &BASE64.encode(&e.leaf_bytes));
        self.list(
            "inclusion_path",
            e.inclusion_path.iter().map(|h| json_string(&h.to_hex())),
        );
        self.close();
    }

    fn entries(&mut self, name: &str, entries: &[PackEntry]) {
        self.key(name);
        if entries.is_empty() {
            self.out.push_str("[]");
            return;
        }
        self.out.push('[');
        self.depth += 1;
        self.first = true;
        for e in entries {
            self.item();
            self.entry(e);
        }
        self.depth -= 1;
        self.newline();
        self.out.push(']');
        self.first = false;
    }
}
