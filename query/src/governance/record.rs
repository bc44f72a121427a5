//! The payloads of the ledger entries the policy layer writes, byte for byte.
//!
//! Every payload is canonical JSON (see `docs/policy.md`) with a `record_version` member, so
//! that any verifier can rebuild and check it. The entry kind says which record it is:
//!
//! | Kind | Payload | Idempotency key | Content type |
//! | --- | --- | --- | --- |
//! | policy | [`BundleEntry`]: `{format, hash, name, record_version, source}` | `bundle:<hash>` | [`BUNDLE_CONTENT_TYPE`] |
//! | decision | [`DecisionEntry`]: `{bundle_index, id, record, record_version}` | the client's key, else `decision:<id>` | [`DECISION_CONTENT_TYPE`] |
//! | override | [`OverrideEntry`]: `{bundle_index, decision_index, outcome, promotion, record_version, request}` | the override request's key | [`OVERRIDE_CONTENT_TYPE`] |
//! | exception | [`ExceptionEntry`]: `{exception, record_version}` | `exception:<id>` | [`EXCEPTION_CONTENT_TYPE`] |
//!
//! Reading is strict: unknown or missing members, a wrong `record_version`, a payload that is
//! not canonical, or an embedded record that does not validate are errors.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use vouch_ledger_core::EntryIndex;

use crate::canonical;
use crate::decision::DecisionRecord;
use crate::document::Format;
use crate::overrides::{OverrideOutcome, OverrideRequest};
use crate::request::{ExceptionRecord, Request};

/// The version of every entry payload this build writes and reads.
pub const RECORD_VERSION: i64 = 1;

/// Content type of a policy (bundle) entry.
pub const BUNDLE_CONTENT_TYPE: &str = "application/vnd.vouch.bundle+json; version=1";
/// Content type of a decision entry.
pub const DECISION_CONTENT_TYPE: &str = "application/vnd.vouch.decision+json; version=1";
/// Content type of an override entry.
pub const OVERRIDE_CONTENT_TYPE: &str = "application/vnd.vouch.override+json; version=1";
/// Content type of an exception entry.
pub const EXCEPTION_CONTENT_TYPE: &str = "application/vnd.vouch.exception+json; version=1";

/// Why an entry payload could not be read as the record its kind promises.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// Not JSON, or members missing, unknown or of the wrong type.
    #[error("malformed record: {0}")]
    Malformed(String),
    /// A `record_version` this build does not read.
    #[error("unsupported record_version {0}")]
    UnsupportedVersion(String),
    /// Valid, but not in canonical form (it was not written by Vouch).
    #[error("the payload is not in canonical form")]
    NotCanonical,
    /// An embedded record (request, decision, override, exception) does not validate.
    #[error("{0}")]
    Record(String),
}

/// Takes the members of a JSON object, refusing unknown ones and checking the version.
fn members(bytes: &[u8], known: &[&str]) -> Result<serde_json::Map<String, Value>, EntryError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| EntryError::Malformed(e.to_string()))?;
    let Value::Object(map) = value else {
        return Err(EntryError::Malformed("expected an object".to_owned()));
    };
    if let Some(unknown) = map.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(EntryError::Malformed(format!(
            "unknown member \"{unknown}\""
        )));
    }
    if let Some(missing) = known.iter().find(|k| !map.contains_key(**k)) {
        return Err(EntryError::Malformed(format!(
            "missing member \"{missing}\""
        )));
    }
    match map.get("record_version").and_then(Value::as_i64) {
        Some(RECORD_VERSION) => Ok(map),
        _ => Err(EntryError::UnsupportedVersion(
            map.get("record_version")
                .map_or_else(String::new, ToString::to_string),
        )),
    }
}

fn string_member(map: &serde_json::Map<String, Value>, key: &str) -> Result<String, EntryError> {
    map.get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| EntryError::Malformed(format!("{key} must be a string")))
}

fn index_member(map: &serde_json::Map<String, Value>, key: &str) -> Result<EntryIndex, EntryError> {
    map.get(key)
        .and_then(Value::as_u64)
        .map(EntryIndex)
        .ok_or_else(|| EntryError::Malformed(format!("{key} must be an entry index")))
}

fn canonical_of(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    canonical::write_value(&mut out, value);
    out
}

/// A published bundle: the entry of kind `policy`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleEntry {
    /// The bundle hash (`sha256:` of the canonical IR).
    pub hash: String,
    /// The bundle's name.
    pub name: String,
    /// The source format.
    pub format: Format,
    /// The exact source text, as published.
    pub source: String,
}

impl BundleEntry {
    /// The idempotency key a bundle of this hash is published under.
    pub fn idempotency_key(hash: &str) -> String {
        format!("bundle:{hash}")
    }

    /// The payload: `{"format":…,"hash":…,"name":…,"record_version":1,"source":…}`.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.source.len() + self.name.len() + 128);
        out.extend_from_slice(b"{\"format\":");
        canonical::write_string(&mut out, self.format.name());
        out.extend_from_slice(b",\"hash\":");
        canonical::write_string(&mut out, &self.hash);
        out.extend_from_slice(b",\"name\":");
        canonical::write_string(&mut out, &self.name);
        out.extend_from_slice(b",\"record_version\":1,\"source\":");
        canonical::write_string(&mut out, &self.source);
        out.push(b'}');
        out
    }

    /// Reads a payload written by [`BundleEntry::to_json`]. The source is not parsed here.
    ///
    /// # Errors
    ///
    /// [`EntryError`] for anything but the exact canonical layout.
    pub fn from_json(bytes: &[u8]) -> Result<BundleEntry, EntryError> {
        let map = members(
            bytes,
            &["format", "hash", "name", "record_version", "source"],
        )?;
        let format = string_member(&map, "format")?;
        let entry = BundleEntry {
            hash: string_member(&map, "hash")?,
            name: string_member(&map, "name")?,
            format: Format::from_name(&format)
                .ok_or_else(|| EntryError::Malformed(format!("unknown format \"{format}\"")))?,
            source: string_member(&map, "source")?,
        };
        if entry.to_json() != bytes {
            return Err(EntryError::NotCanonical);
        }
        Ok(entry)
    }
}

/// A recorded decision: the entry of kind `decision`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecisionEntry {
    /// The decision id as stored: `sha256:` of the record's canonical JSON.
    pub id: String,
    /// The ledger index of the bundle entry the decision was made with.
    pub bundle_index: EntryIndex,
    /// The decision record: bundle hash, request snapshot, evaluation.
    pub record: DecisionRecord,
}

impl DecisionEntry {
    /// The entry for `record`, made with the bundle published at `bundle_index`.
    pub fn new(record: DecisionRecord, bundle_index: EntryIndex) -> DecisionEntry {
        DecisionEntry {
            id: record.id(),
            bundle_index,
            record,
        }
    }

    /// The idempotency key of a decision recorded without a client key.
    pub fn idempotency_key(id: &str) -> String {
        format!("decision:{id}")
    }

    /// The payload: `{"bundle_index":…,"id":…,"record":<record>,"record_version":1}`, where
    /// `<record>` is the record's canonical JSON, whose SHA-256 is the id.
    pub fn to_json(&self) -> Vec<u8> {
        let record = self.record.canonical_json();
        let mut out = Vec::with_capacity(record.len() + 160);
        out.extend_from_slice(b"{\"bundle_index\":");
        out.extend_from_slice(self.bundle_index.0.to_string().as_bytes());
        out.extend_from_slice(b",\"id\":");
        canonical::write_string(&mut out, &self.id);
        out.extend_from_slice(b",\"record\":");
        out.extend_from_slice(&record);
        out.extend_from_slice(b",\"record_version\":1}");
        out
    }

    /// Reads a decision payload. The stored id is kept as stored: compare it with
    /// `record.id()` to detect a record that no longer matches its id.
    ///
    /// # Errors
    ///
    /// [`EntryError`] for a malformed payload or a record that does not validate.
    pub fn from_json(bytes: &[u8]) -> Result<DecisionEntry, EntryError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw<'a> {
            bundle_index: u64,
            id: String,
            #[serde(borrow)]
            record: &'a RawValue,
            record_version: i64,
        }
        let raw: Raw<'_> =
            serde_json::from_slice(bytes).map_err(|e| EntryError::Malformed(e.to_string()))?;
        if raw.record_version != RECORD_VERSION {
            return Err(EntryError::UnsupportedVersion(
                raw.record_version.to_string(),
            ));
        }
        let record = DecisionRecord::from_json(raw.record.get().as_bytes())
            .map_err(|e| EntryError::Record(e.to_string()))?;
        Ok(DecisionEntry {
            id: raw.id,
            bundle_index: EntryIndex(raw.bundle_index),
            record,
        })
    }

    /// The exact bytes of the `record` member of a decision payload, whose SHA-256 is the
    /// decision id when the entry is intact.
    ///
    /// # Errors
    ///
    /// [`EntryError::Malformed`] if the payload is not a decision payload.
    pub fn record_bytes(bytes: &[u8]) -> Result<&[u8], EntryError> {
        #[derive(Deserialize)]
        struct Raw<'a> {
            #[serde(borrow)]
            record: &'a RawValue,
        }
        let raw: Raw<'_> =
            serde_json::from_slice(bytes).map_err(|e| EntryError::Malformed(e.to_string()))?;
        Ok(raw.record.get().as_bytes())
    }
}

/// The facts of a promotion that an override let through, so that later decisions see it in
/// their `context.promotions` (see `docs/policy.md`, "Recording decisions").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromotionFacts {
    /// The environment the decision was for.
    pub environment: String,
    /// The request's repository, if any.
    pub repository: Option<String>,
    /// The request's service, if any.
    pub service: Option<String>,
    /// The artifact's version.
    pub version: String,
    /// The artifact's commit.
    pub commit: String,
    /// The artifact's digest.
    pub digest: String,
    /// The decision's `now`.
    #[serde(
        serialize_with = "canonical::timestamp",
        deserialize_with = "deserialize_timestamp"
    )]
    pub at: Timestamp,
    /// The decision's id.
    pub decision: String,
}

fn deserialize_timestamp<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(serde::de::Error::custom)
}

impl PromotionFacts {
    /// The promotion a decision's request describes, if it names an artifact.
    pub fn of(request: &Request, decision: &str) -> Option<PromotionFacts> {
        let artifact = request.artifact()?;
        Some(PromotionFacts {
            environment: request.environment.clone(),
            repository: request.repository.clone(),
            service: request.service.clone(),
            version: artifact.version.clone(),
            commit: artifact.commit.clone(),
            digest: artifact.digest.clone(),
            at: request.now(),
            decision: decision.to_owned(),
        })
    }
}

/// A recorded override: the entry of kind `override`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverrideEntry {
    /// The ledger index of the bundle the overridden decision was made with.
    pub bundle_index: EntryIndex,
    /// The ledger index of the overridden decision.
    pub decision_index: EntryIndex,
    /// The override request, as validated.
    pub request: OverrideRequest,
    /// The result of evaluating it: granted or denied, with reasons.
    pub outcome: OverrideOutcome,
    /// When granted and the decision names an artifact: the promotion it lets through.
    pub promotion: Option<PromotionFacts>,
}

impl OverrideEntry {
    /// The payload: `{"bundle_index":…,"decision_index":…,"outcome":{…},"promotion":…,
    /// "record_version":1,"request":{…}}`.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        out.extend_from_slice(b"{\"bundle_index\":");
        out.extend_from_slice(self.bundle_index.0.to_string().as_bytes());
        out.extend_from_slice(b",\"decision_index\":");
        out.extend_from_slice(self.decision_index.0.to_string().as_bytes());
        out.extend_from_slice(b",\"outcome\":");
        out.extend_from_slice(&self.outcome.canonical_json());
        out.extend_from_slice(b",\"promotion\":");
        match &self.promotion {
            Some(p) => out.extend_from_slice(&canonical::to_vec(p)),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"record_version\":1,\"request\":");
        out.extend_from_slice(&canonical::to_vec(&self.request));
        out.push(b'}');
        out
    }

    /// Reads an override payload.
    ///
    /// # Errors
    ///
    /// [`EntryError`] for anything but the canonical layout with valid members.
    pub fn from_json(bytes: &[u8]) -> Result<OverrideEntry, EntryError> {
        let map = members(
            bytes,
            &[
                "bundle_index",
                "decision_index",
                "outcome",
                "promotion",
                "record_version",
                "request",
            ],
        )?;
        let request = OverrideRequest::from_json(&canonical_of(&map["request"]))
            .map_err(|e| EntryError::Record(format!("request: {e}")))?;
        let outcome: OverrideOutcome = serde_json::from_value(map["outcome"].clone())
            .map_err(|e| EntryError::Malformed(format!("outcome: {e}")))?;
        let promotion: Option<PromotionFacts> = serde_json::from_value(map["promotion"].clone())
            .map_err(|e| EntryError::Malformed(format!("promotion: {e}")))?;
        let entry = OverrideEntry {
            bundle_index: index_member(&map, "bundle_index")?,
            decision_index: index_member(&map, "decision_index")?,
            request,
            outcome,
            promotion,
        };
        if entry.to_json() != bytes {
            return Err(EntryError::NotCanonical);
        }
        Ok(entry)
    }
}

/// A recorded exception: the entry of kind `exception`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExceptionEntry {
    /// The exception record.
    pub exception: ExceptionRecord,
}

impl ExceptionEntry {
    /// The idempotency key of an exception: `exception:<id>`, so an id is recorded once.
    pub fn idempotency_key(id: &str) -> String {
        format!("exception:{id}")
    }

    /// The payload: `{"exception":{…},"record_version":1}`.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        out.extend_from_slice(b"{\"exception\":");
        out.extend_from_slice(&self.exception.canonical_json());
        out.extend_from_slice(b",\"record_version\":1}");
        out
    }

    /// Reads an exception payload.
    ///
    /// # Errors
    ///
    /// [`EntryError`] for anything but the canonical layout with a valid exception.
    pub fn from_json(bytes: &[u8]) -> Result<ExceptionEntry, EntryError> {
        let map = members(bytes, &["exception", "record_version"])?;
        let exception = ExceptionRecord::from_json(&canonical_of(&map["exception"]))
            .map_err(|e| EntryError::Record(format!("exception: {e}")))?;
        let entry = ExceptionEntry { exception };
        if entry.to_json() != bytes {
            return Err(EntryError::NotCanonical);
        }
        Ok(entry)
    }
}

impl fmt::Display for BundleEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bundle {} ({})", self.name, self.hash)
    }
}
