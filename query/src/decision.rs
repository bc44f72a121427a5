//! Decision records: what is recorded for a decision, and replaying it.
//!
//! A [`DecisionRecord`] holds the bundle hash, the request snapshot (including the
//! server-injected context) and the evaluation. Its canonical JSON is what a ledger entry
//! stores; its [`DecisionRecord::id`] (`sha256:` of those bytes) is what overrides refer to.
//! Replaying re-evaluates the snapshot against the bundle with that hash and compares the
//! canonical bytes of the evaluations.

use serde::Serialize;

use crate::compiler::CompiledBundle;
use crate::evaluation::{Evaluation, evaluate};
use crate::request::{Request, RequestError};

/// Version of the record layout; part of the recorded bytes.
pub const RECORD_VERSION: i64 = 1;

/// A decision as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DecisionRecord {
    record_version: i64,
    /// Hash of the bundle the decision was made with.
    pub bundle: String,
    /// The request snapshot, context included.
    pub request: Request,
    /// The result.
    pub evaluation: Evaluation,
}

/// The result of replaying a record.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Replay {
    /// The replayed evaluation is byte-identical to the recorded one.
    Identical,
    /// The bundle given is not the one the decision was made with.
    BundleMismatch {
        /// Hash in the record.
        recorded: String,
        /// Hash of the bundle given.
        given: String,
    },
    /// The evaluation differs.
    Different {
        /// Recorded evaluation, canonical JSON.
        recorded: Vec<u8>,
        /// Replayed evaluation, canonical JSON.
        replayed: Vec<u8>,
    },
}

/// Why a record could not be read back.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The record is not a JSON object with the expected members.
    #[error("invalid decision record: {0}")]
    Invalid(String),
    /// The request snapshot inside it is invalid.
    #[error("invalid request snapshot: {0}")]
    Request(#[from] RequestError),
}

impl DecisionRecord {
    /// Evaluates `request` and wraps the result as a record.
    pub fn decide(bundle: &CompiledBundle, request: Request) -> DecisionRecord {
        let evaluation = evaluate(bundle, &request);
        DecisionRecord {
            record_version: RECORD_VERSION,
            bundle: bundle.hash().to_owned(),
            request,
            evaluation,
        }
    }

    /// Canonical JSON: `{"bundle":…,"evaluation":{…},"record_version":1,"request":{…}}`.
    pub fn canonical_json(&self) -> Vec<u8> {
        crate::canonical::to_vec(self)
    }

    /// `sha256:` of [`DecisionRecord::canonical_json`]: the decision's id.
    pub fn id(&self) -> String {
        crate::canonical::sha256_tagged(&self.canonical_json())
    }

    /// Re-evaluates the recorded request against `bundle` and compares.
    pub fn replay(&self, bundle: &CompiledBundle) -> Replay {
        if bundle.hash() != self.bundle {
            return Replay::BundleMismatch {
                recorded: self.bundle.clone(),
                given: bundle.hash().to_owned(),
            };
        }
        let recorded = self.evaluation.canonical_json();
        let replayed = evaluate(bundle, &self.request).canonical_json();
        if recorded == replayed {
            Replay::Identical
        } else {
            Replay::Different { recorded, replayed }
        }
    }

    /// Reads a record back from its canonical JSON (or any JSON with the same members).
    ///
    /// # Errors
    ///
    /// [`RecordError::Invalid`] if the JSON is malformed or members are missing, unknown or of
    /// the wrong type; [`RecordError::Request`] if the request snapshot does not validate.
    pub fn from_json(bytes: &[u8]) -> Result<DecisionRecord, RecordError> {
        if bytes.len() > 4 * crate::request::limits::MAX_REQUEST_BYTES {
            return Err(RecordError::Invalid("record too large".to_owned()));
        }
        let mut value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| RecordError::Invalid(e.to_string()))?;
        let object = value
            .as_object_mut()
            .ok_or_else(|| RecordError::Invalid("expected an object".to_owned()))?;
        let known = ["bundle", "evaluation", "record_version", "request"];
        if let Some(unknown) = object.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(RecordError::Invalid(format!(
                "unknown member \"{unknown}\""
            )));
        }
        let take = |object: &mut serde_json::Map<String, serde_json::Value>, key: &str| {
            object
                .remove(key)
                .ok_or_else(|| RecordError::Invalid(format!("missing member \"{key}\"")))
        };
        let version = take(object, "record_version")?;
        if version.as_i64() != Some(RECORD_VERSION) {
            return Err(RecordError::Invalid(format!(
                "unsupported record_version {version}"
            )));
        }
        let serde_json::Value::String(bundle) = take(object, "bundle")? else {
            return Err(RecordError::Invalid("bundle must be a string".to_owned()));
        };
        let request_json = crate::canonical::to_vec(&take(object, "request")?);
        let request = Request::from_json(&request_json)?;
        let evaluation: Evaluation = serde_json::from_value(take(object, "evaluation")?)
            .map_err(|e| RecordError::Invalid(format!("evaluation: {e}")))?;
        Ok(DecisionRecord {
            record_version: RECORD_VERSION,
            bundle,
            request,
            evaluation,
        })
    }
}
