//! The compiled IR in its canonical, hashable form.
//!
//! The IR is what a bundle means once defaults are filled in, sets are sorted and
//! deduplicated, and references are checked: two bundles that differ only in format (YAML or
//! JSON), key order, comments, layout, the order of set-like lists, or spelled-out defaults
//! have the same IR and therefore the same hash. Its canonical JSON (see [`crate::canonical`])
//! is specified field by field in `docs/policy.md` so that an offline verifier can rebuild
//! the bytes and the `sha256:` hash without this crate.
//!
//! Every optional value is present as `null`; every list that is a set is sorted by UTF-8
//! bytes. Policies, overlays and conditions keep declaration order, which the evaluation
//! and lint use.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::ser::Serializer;

use crate::bundle::ParamValue;

/// Version of the IR layout; part of the hashed bytes.
pub const IR_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
// `ir_version` is the documented name of the hashed member; renaming it would change the hash.
#[allow(clippy::struct_field_names)]
pub(crate) struct Ir {
    pub(crate) ir_version: u32,
    pub(crate) bundle_version: i64,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) strict: bool,
    pub(crate) roles: Vec<String>,
    pub(crate) vocabulary: BTreeMap<String, Vec<String>>,
    pub(crate) parameters: BTreeMap<String, IrParam>,
    pub(crate) calendars: BTreeMap<String, IrCalendar>,
    pub(crate) overlays: Vec<IrOverlay>,
    pub(crate) policies: Vec<IrPolicy>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct IrParam {
    #[serde(rename = "type")]
    pub(crate) param_type: &'static str,
    #[serde(serialize_with = "param_value")]
    pub(crate) default: ParamValue,
    pub(crate) minimum: Option<i64>,
    pub(crate) maximum: Option<i64>,
    pub(crate) stricter: Option<&'static str>,
    pub(crate) description: String,
}

/// Serialises a parameter value: integers and booleans as JSON, durations as their canonical
/// text, strings as strings, string lists as sorted, deduplicated arrays.
pub(crate) fn param_value<S: Serializer>(v: &ParamValue, s: S) -> Result<S::Ok, S::Error> {
    match v {
        ParamValue::Integer(i) => s.serialize_i64(*i),
        ParamValue::Duration(d) => s.serialize_str(&d.to_string()),
        ParamValue::String(t) => s.serialize_str(t),
        ParamValue::Strings(items) => items.serialize(s),
        ParamValue::Boolean(b) => s.serialize_bool(*b),
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct IrCalendar {
    pub(crate) timezone: String,
    pub(crate) description: String,
    pub(crate) weekly: Vec<IrWeekly>,
    pub(crate) dates: Vec<IrDateRange>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub(crate) struct IrWeekly {
    pub(crate) days: Vec<&'static str>,
    pub(crate) start: String,
    pub(crate) end: String,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub(crate) struct IrDateRange {
    pub(crate) start: String,
    pub(crate) end: String,
    pub(crate) label: String,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub(crate) struct IrMatcher {
    pub(crate) field: &'static str,
    pub(crate) values: Vec<String>,
    pub(crate) globs: Vec<String>,
    pub(crate) negated: bool,
}

/// A value written in place (`2`, `"24h"`) or `{"param": "<name>"}`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(untagged)]
pub(crate) enum IrAmount {
    Int(i64),
    Text(String),
    Param { param: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct IrOverlay {
    pub(crate) id: String,
    pub(crate) description: String,
    pub(crate) when: Vec<IrMatcher>,
    pub(crate) set: BTreeMap<String, IrValue>,
    pub(crate) tighten: BTreeMap<String, IrValue>,
}

/// A parameter value inside an overlay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IrValue(pub(crate) ParamValue);

impl Serialize for IrValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        param_value(&self.0, s)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct IrPolicy {
    pub(crate) id: String,
    pub(crate) description: String,
    pub(crate) when: Vec<IrMatcher>,
    pub(crate) require: IrRequire,
    pub(crate) overrides: Option<IrOverrides>,
    pub(crate) honour_exceptions: bool,
    pub(crate) obligations: Vec<IrObligation>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct IrRequire {
    pub(crate) approvals: Option<IrApprovals>,
    pub(crate) separation_of_duties: Vec<&'static str>,
    pub(crate) evidence: Option<IrEvidence>,
    pub(crate) checks: Vec<IrCheck>,
    pub(crate) artifact: Option<IrArtifact>,
    pub(crate) window: Option<IrWindow>,
    pub(crate) conditions: Vec<IrCondition>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct IrApprovals {
    pub(crate) min: IrAmount,
    pub(crate) roles: BTreeMap<String, IrAmount>,
    pub(crate) kind: &'static str,
    pub(crate) exclude_requester: bool,
    pub(crate) exclude_releaser: bool,
    pub(crate) require_rationale: bool,
}

/// Required evidence names, or the `strings` parameter that holds them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub(crate) enum IrEvidence {
    Names(Vec<String>),
    Param { param: String },
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub(crate) struct IrCheck {
    pub(crate) name: String,
    pub(crate) allow_na: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct IrArtifact {
    pub(crate) same_digest_in: Vec<String>,
    pub(crate) immutable_version: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct IrWindow {
    pub(crate) calendar: Option<String>,
    pub(crate) freeze: Vec<String>,
    pub(crate) emergency: Option<IrEmergency>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct IrEmergency {
    pub(crate) approver_roles: Vec<String>,
    pub(crate) review_within: IrAmount,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct IrCondition {
    pub(crate) id: String,
    pub(crate) cel: String,
    pub(crate) message: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct IrOverrides {
    pub(crate) allowed_roles: Vec<String>,
    pub(crate) require_justification: bool,
    pub(crate) max_duration: Option<IrAmount>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub(crate) struct IrObligation {
    pub(crate) kind: String,
    pub(crate) within: IrAmount,
    pub(crate) roles: Vec<String>,
    pub(crate) description: String,
}
