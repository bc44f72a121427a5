//! The fast reader of requests: serde straight into the request's own types, without the
//! located document tree.
//!
//! The strict reader ([`super::read_request`] over a [`crate::document::Node`] tree) keeps
//! the line and column of every value and builds the path of every field it reads, so that
//! each error is located; for a valid request that is wasted work, and it dominated reading
//! recorded snapshots (a cold simulation parses every one of them). This reader accepts
//! exactly a subset of what the strict one accepts and yields the same [`Request`] for it:
//! anything it does not accept (any error at all, or anything unusual, such as an integer
//! written as `-0`) makes it answer `None`, and [`Request::from_json`] then runs the strict
//! reader, whose error messages are therefore unchanged.
//!
//! What keeps the two alike:
//!
//! - Objects are read only from JSON objects ([`Obj`]): serde's derived structs also accept
//!   arrays, the strict reader does not. Every object refuses unknown and duplicate members
//!   (`deny_unknown_fields`, and serde's duplicate-field check); free-form maps (evidence,
//!   checks, labels) refuse duplicate keys ([`Unique`]), as the strict JSON parser does.
//! - Enumerations (`kind`, `status`) are read as strings and compared, never through serde's
//!   enum support, which also accepts `{"pr": null}`.
//! - `null` counts as absent for optional members (`Option`), as in the strict reader.
//! - Every string passes the same checks afterwards: the length limit, names without
//!   surrounding whitespace or control characters, non-empty texts, RFC 3339 timestamps with
//!   an offset; role lists are sorted and deduplicated; list and map sizes are bounded with
//!   the same limits; exception ids are unique and scope globs compile.
//!
//! `request::tests` checks, over many generated and mutated requests, that whenever this
//! reader answers, the strict reader answers the same.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use super::limits::{
    MAX_APPROVALS, MAX_CHECKS, MAX_CO_AUTHORS, MAX_EVIDENCE, MAX_EVIDENCE_LIST, MAX_EXCEPTION_LIST,
    MAX_EXCEPTIONS, MAX_FOLLOW_UPS, MAX_LABELS, MAX_PROMOTIONS, MAX_REQUEST_BYTES, MAX_ROLES,
    MAX_STRING_BYTES,
};
use super::{
    Approval, ApprovalKind, Artifact, CheckResult, CheckStatus, Context, EmergencyRecord,
    EvidenceValue, ExceptionApprover, ExceptionKind, ExceptionRecord, Field, Promotion,
    REQUEST_VERSION, Request, Scope, compile_glob, parse_timestamp,
};
use crate::document::reader::name_problem;

/// Reads `bytes` as a request, or `None` when the strict reader must decide (see the module
/// documentation).
pub(super) fn read(bytes: &[u8]) -> Option<Request> {
    if bytes.len() > MAX_REQUEST_BYTES {
        return None;
    }
    serde_json::from_slice::<Embedded>(bytes)
        .ok()
        .map(|Embedded(request)| request)
}

/// A request read by this reader as a member of a larger JSON document (the snapshot inside
/// a recorded decision), in the same pass as the rest of that document.
///
/// Deserializing it fails wherever [`read`] answers `None` for the member's bytes (it is what
/// [`read`] deserializes), except for the size limit, which the caller checks on the whole
/// document; on failure the caller reads the member as before, its bytes through
/// [`Request::from_json`].
#[derive(Debug)]
pub(crate) struct Embedded(pub(crate) Request);

impl<'de> Deserialize<'de> for Embedded {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let Obj(raw) = Obj::<RawRequest<'de>>::deserialize(deserializer)?;
        raw.into_request()
            .map(Embedded)
            .ok_or_else(|| de::Error::custom("left to the strict reader"))
    }
}

/// A JSON object read as `T`, never a JSON array.
struct Obj<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjVisitor<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(ObjVisitor(PhantomData))
            .map(Obj)
    }
}

/// A JSON string, borrowed from the input when it has no escapes.
struct Str<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v))
            }
        }
        deserializer.deserialize_str(StrVisitor).map(Str)
    }
}

/// A JSON object with free-form keys, refusing duplicate keys.
struct Unique<V>(BTreeMap<String, V>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Unique<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct UniqueVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for UniqueVisitor<V> {
            type Value = BTreeMap<String, V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    let value = map.next_value::<V>()?;
                    if out.insert(key, value).is_some() {
                        return Err(de::Error::custom("duplicate key"));
                    }
                }
                Ok(out)
            }
        }
        deserializer
            .deserialize_map(UniqueVisitor(PhantomData))
            .map(Unique)
    }
}

/// An evidence value as written: a string, an integer, a boolean or a list of strings.
struct RawEvidence(EvidenceValue);

impl<'de> Deserialize<'de> for RawEvidence {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EvidenceVisitor;
        impl<'de> Visitor<'de> for EvidenceVisitor {
            type Value = EvidenceValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, an integer, a boolean or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(EvidenceValue::Text(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(EvidenceValue::Text(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(EvidenceValue::Number(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                i64::try_from(v)
                    .map(EvidenceValue::Number)
                    .map_err(|_| E::custom("integer out of range"))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(EvidenceValue::Flag(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut list = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    if list.len() == MAX_EVIDENCE_LIST {
                        return Err(de::Error::custom("too many items"));
                    }
                    list.push(s);
                }
                Ok(EvidenceValue::List(list))
            }
        }
        deserializer
            .deserialize_any(EvidenceVisitor)
            .map(RawEvidence)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest<'a> {
    version: Option<i64>,
    subject: String,
    environment: String,
    transition: Option<String>,
    repository: Option<String>,
    branch: Option<String>,
    service: Option<String>,
    tier: Option<String>,
    risk: Option<String>,
    change_type: Option<String>,
    author: String,
    co_authors: Option<Vec<String>>,
    requester: Option<String>,
    releaser: Option<String>,
    #[serde(borrow)]
    approvals: Option<Vec<Obj<RawApproval<'a>>>>,
    evidence: Option<Unique<RawEvidence>>,
    #[serde(borrow)]
    checks: Option<Unique<Obj<RawCheck<'a>>>>,
    artifact: Option<Obj<RawArtifact>>,
    labels: Option<Unique<String>>,
    #[serde(borrow)]
    now: Str<'a>,
    emergency: Option<Obj<RawEmergency>>,
    #[serde(borrow)]
    context: Option<Obj<RawContext<'a>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApproval<'a> {
    approver: String,
    roles: Option<Vec<String>>,
    #[serde(borrow)]
    kind: Str<'a>,
    #[serde(borrow)]
    at: Str<'a>,
    rationale: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck<'a> {
    #[serde(borrow)]
    status: Str<'a>,
    rationale: Option<String>,
    url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArtifact {
    version: String,
    commit: String,
    digest: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmergency {
    id: Option<String>,
    reason: Option<String>,
    approver: Option<String>,
    approver_roles: Option<Vec<String>>,
    scope: Option<String>,
    rollback_plan: Option<String>,
    follow_ups: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContext<'a> {
    #[serde(borrow)]
    promotions: Option<Vec<Obj<RawPromotion<'a>>>>,
    #[serde(borrow)]
    exceptions: Option<Vec<Obj<RawException<'a>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPromotion<'a> {
    environment: String,
    version: String,
    commit: String,
    digest: String,
    #[serde(borrow)]
    at: Str<'a>,
    decision: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawException<'a> {
    id: String,
    policy: String,
    requirements: Option<Vec<String>>,
    #[serde(borrow)]
    kind: Str<'a>,
    owner_role: String,
    scope: Option<Obj<RawScope>>,
    risk: Option<String>,
    #[serde(borrow)]
    expires_at: Option<Str<'a>>,
    remediation_plan: Option<String>,
    compensating_controls: Option<Vec<String>>,
    #[serde(borrow)]
    review_by: Option<Str<'a>>,
    author: String,
    approvers: Option<Vec<Obj<RawExceptionApprover>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScope {
    environment: Option<Vec<String>>,
    transition: Option<Vec<String>>,
    repository: Option<Vec<String>>,
    branch: Option<Vec<String>>,
    service: Option<Vec<String>>,
    tier: Option<Vec<String>>,
    risk: Option<Vec<String>>,
    change_type: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExceptionApprover {
    approver: String,
    roles: Option<Vec<String>>,
}

/// Any string: at most [`MAX_STRING_BYTES`].
fn text(s: String) -> Option<String> {
    (s.len() <= MAX_STRING_BYTES).then_some(s)
}

fn opt_text(s: Option<String>) -> Option<Option<String>> {
    s.map_or(Some(None), |s| text(s).map(Some))
}

/// A name: a string that [`name_problem`] accepts.
fn name(s: String) -> Option<String> {
    (s.len() <= MAX_STRING_BYTES && name_problem(&s).is_none()).then_some(s)
}

fn opt_name(s: Option<String>) -> Option<Option<String>> {
    s.map_or(Some(None), |s| name(s).map(Some))
}

/// A list of at most `max` names, sorted and without duplicates.
fn name_set(list: Option<Vec<String>>, max: usize) -> Option<Vec<String>> {
    let Some(mut list) = list else {
        return Some(Vec::new());
    };
    if list.len() > max
        || list
            .iter()
            .any(|s| s.len() > MAX_STRING_BYTES || name_problem(s).is_some())
    {
        return None;
    }
    list.sort();
    list.dedup();
    Some(list)
}

/// A list of at most `max` texts that are not blank, in order.
fn text_list(list: Option<Vec<String>>, max: usize) -> Option<Vec<String>> {
    let Some(list) = list else {
        return Some(Vec::new());
    };
    (list.len() <= max
        && list
            .iter()
            .all(|s| s.len() <= MAX_STRING_BYTES && !s.trim().is_empty()))
    .then_some(list)
}

fn timestamp(s: &Str<'_>) -> Option<jiff::Timestamp> {
    if s.0.len() > MAX_STRING_BYTES {
        return None;
    }
    parse_timestamp(&s.0)
}

fn opt_timestamp(s: Option<&Str<'_>>) -> Option<Option<jiff::Timestamp>> {
    s.map_or(Some(None), |s| timestamp(s).map(Some))
}

/// A map of at most `max` entries whose keys are names.
fn named_map<V>(map: Option<Unique<V>>, max: usize) -> Option<BTreeMap<String, V>> {
    let Some(Unique(map)) = map else {
        return Some(BTreeMap::new());
    };
    (map.len() <= max && map.keys().all(|k| name_problem(k).is_none())).then_some(map)
}

impl RawRequest<'_> {
    fn into_request(self) -> Option<Request> {
        if self.version.is_some_and(|v| v != REQUEST_VERSION) {
            return None;
        }
        let approvals = match self.approvals {
            None => Vec::new(),
            Some(list) if list.len() > MAX_APPROVALS => return None,
            Some(list) => list
                .into_iter()
                .map(|Obj(a)| a.into_approval())
                .collect::<Option<Vec<_>>>()?,
        };
        let mut evidence = BTreeMap::new();
        for (k, RawEvidence(v)) in named_map(self.evidence, MAX_EVIDENCE)? {
            let ok = match &v {
                EvidenceValue::Text(s) => s.len() <= MAX_STRING_BYTES,
                EvidenceValue::List(l) => l.iter().all(|s| s.len() <= MAX_STRING_BYTES),
                EvidenceValue::Number(_) | EvidenceValue::Flag(_) => true,
            };
            if !ok {
                return None;
            }
            evidence.insert(k, v);
        }
        let mut checks = BTreeMap::new();
        for (k, Obj(c)) in named_map(self.checks, MAX_CHECKS)? {
            let status = match &*c.status.0 {
                "passed" => CheckStatus::Passed,
                "failed" => CheckStatus::Failed,
                "na" => CheckStatus::Na,
                "pending" => CheckStatus::Pending,
                _ => return None,
            };
            checks.insert(
                k,
                CheckResult {
                    status,
                    rationale: opt_text(c.rationale)?,
                    url: opt_text(c.url)?,
                },
            );
        }
        let artifact = match self.artifact {
            None => None,
            Some(Obj(a)) => Some(Artifact {
                version: name(a.version)?,
                commit: name(a.commit)?,
                digest: name(a.digest)?,
            }),
        };
        let labels = named_map(self.labels, MAX_LABELS)?;
        if labels.values().any(|v| v.len() > MAX_STRING_BYTES) {
            return None;
        }
        let emergency = match self.emergency {
            None => None,
            Some(Obj(e)) => Some(Box::new(EmergencyRecord {
                id: opt_name(e.id)?,
                reason: opt_text(e.reason)?,
                approver: opt_name(e.approver)?,
                approver_roles: name_set(e.approver_roles, MAX_ROLES)?,
                scope: opt_text(e.scope)?,
                rollback_plan: opt_text(e.rollback_plan)?,
                follow_ups: text_list(e.follow_ups, MAX_FOLLOW_UPS)?,
            })),
        };
        let context = match self.context {
            None => Context::default(),
            Some(Obj(c)) => c.into_context()?,
        };
        Some(Request {
            subject: name(self.subject)?,
            environment: name(self.environment)?,
            transition: opt_name(self.transition)?,
            repository: opt_name(self.repository)?,
            branch: opt_name(self.branch)?,
            service: opt_name(self.service)?,
            tier: opt_name(self.tier)?,
            risk: opt_name(self.risk)?,
            change_type: opt_name(self.change_type)?,
            author: name(self.author)?,
            co_authors: name_set(self.co_authors, MAX_CO_AUTHORS)?,
            requester: opt_name(self.requester)?,
            releaser: opt_name(self.releaser)?,
            approvals,
            evidence: evidence.into(),
            checks: checks.into(),
            artifact,
            labels: labels.into(),
            now: timestamp(&self.now)?,
            emergency,
            context,
        })
    }
}

impl RawApproval<'_> {
    fn into_approval(self) -> Option<Approval> {
        let kind = match &*self.kind.0 {
            "pr" => ApprovalKind::Pr,
            "production" => ApprovalKind::Production,
            _ => return None,
        };
        Some(Approval {
            approver: name(self.approver)?,
            roles: name_set(self.roles, MAX_ROLES)?,
            kind,
            at: timestamp(&self.at)?,
            rationale: opt_text(self.rationale)?,
        })
    }
}

impl RawContext<'_> {
    fn into_context(self) -> Option<Context> {
        let promotions = match self.promotions {
            None => Vec::new(),
            Some(list) if list.len() > MAX_PROMOTIONS => return None,
            Some(list) => list
                .into_iter()
                .map(|Obj(p)| {
                    Some(Promotion {
                        environment: name(p.environment)?,
                        version: name(p.version)?,
                        commit: name(p.commit)?,
                        digest: name(p.digest)?,
                        at: timestamp(&p.at)?,
                        decision: opt_name(p.decision)?,
                    })
                })
                .collect::<Option<Vec<_>>>()?,
        };
        let exceptions = match self.exceptions {
            None => Vec::new(),
            Some(list) if list.len() > MAX_EXCEPTIONS => return None,
            Some(list) => {
                let mut out: Vec<ExceptionRecord> = Vec::with_capacity(list.len());
                for Obj(e) in list {
                    let e = e.into_exception()?;
                    if out.iter().any(|o| o.id == e.id) {
                        return None;
                    }
                    out.push(e);
                }
                out
            }
        };
        Some(Context {
            promotions,
            exceptions,
        })
    }
}

impl RawException<'_> {
    fn into_exception(self) -> Option<ExceptionRecord> {
        let kind = match &*self.kind.0 {
            "temporary" => ExceptionKind::Temporary,
            "permanent" => ExceptionKind::Permanent,
            _ => return None,
        };
        let scope = match self.scope {
            None => Scope::default(),
            Some(Obj(s)) => s.into_scope()?,
        };
        let approvers = match self.approvers {
            None => Vec::new(),
            Some(list) if list.len() > MAX_EXCEPTION_LIST => return None,
            Some(list) => list
                .into_iter()
                .map(|Obj(a)| {
                    Some(ExceptionApprover {
                        approver: name(a.approver)?,
                        roles: name_set(a.roles, MAX_ROLES)?,
                    })
                })
                .collect::<Option<Vec<_>>>()?,
        };
        Some(ExceptionRecord {
            id: name(self.id)?,
            policy: name(self.policy)?,
            requirements: name_set(self.requirements, MAX_EXCEPTION_LIST)?,
            kind,
            owner_role: name(self.owner_role)?,
            scope,
            risk: opt_text(self.risk)?,
            expires_at: opt_timestamp(self.expires_at.as_ref())?,
            remediation_plan: opt_text(self.remediation_plan)?,
            compensating_controls: text_list(self.compensating_controls, MAX_EXCEPTION_LIST)?,
            review_by: opt_timestamp(self.review_by.as_ref())?,
            author: name(self.author)?,
            approvers,
        })
    }
}

impl RawScope {
    fn into_scope(self) -> Option<Scope> {
        let by_field = [
            (Field::Environment, self.environment),
            (Field::Transition, self.transition),
            (Field::Repository, self.repository),
            (Field::Branch, self.branch),
            (Field::Service, self.service),
            (Field::Tier, self.tier),
            (Field::Risk, self.risk),
            (Field::ChangeType, self.change_type),
        ];
        let mut patterns = Vec::new();
        for (field, list) in by_field {
            if list.is_none() {
                continue;
            }
            let list = name_set(list, MAX_EXCEPTION_LIST)?;
            let globs = list
                .into_iter()
                .map(|p| compile_glob(&p).ok().map(|g| (p, g)))
                .collect::<Option<Vec<_>>>()?;
            patterns.push((field, globs));
        }
        Some(Scope { patterns })
    }
}

#[cfg(test)]
mod tests {
    //! Whatever the fast reader accepts, the strict reader accepts as the same request; and
    //! the fast reader accepts every canonical snapshot of a valid request.

    use std::fmt::Write as _;

    use proptest::prelude::*;

    use super::read;
    use crate::request::Request;

    /// A JSON value to render, including what the strict parser and the schema refuse.
    #[derive(Clone, Debug)]
    enum J {
        Null,
        Bool(bool),
        Int(i64),
        /// A number exactly as written (`-0`, `1.0`, `1e2`, beyond `i64`).
        Number(&'static str),
        Str(String),
        Arr(Vec<J>),
        Obj(Vec<(String, J)>),
        /// The same key twice.
        Dup(Vec<(String, J)>),
    }

    fn write_string(out: &mut String, s: &str, escape: bool) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if u32::from(c) < 0x20 => {
                    let _ = write!(out, "\\u{:04x}", u32::from(c));
                }
                c if escape => {
                    let mut units = [0u16; 2];
                    for u in c.encode_utf16(&mut units) {
                        let _ = write!(out, "\\u{u:04X}");
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }

    fn render(j: &J, out: &mut String, escape: bool, spaced: bool) {
        let sep = if spaced { ", \n " } else { "," };
        match j {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Int(i) => out.push_str(&i.to_string()),
            J::Number(n) => out.push_str(n),
            J::Str(s) => write_string(out, s, escape),
            J::Arr(items) => {
                out.push('[');
                for (i, it) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(sep);
                    }
                    render(it, out, escape, spaced);
                }
                out.push(']');
            }
            J::Obj(entries) | J::Dup(entries) => {
                out.push('{');
                let mut all: Vec<&(String, J)> = entries.iter().collect();
                if let (J::Dup(_), Some(first)) = (j, entries.first()) {
                    all.push(first);
                }
                for (i, (k, v)) in all.into_iter().enumerate() {
                    if i > 0 {
                        out.push_str(sep);
                    }
                    write_string(out, k, escape);
                    out.push_str(if spaced { " : " } else { ":" });
                    render(v, out, escape, spaced);
                }
                out.push('}');
            }
        }
    }

    fn s(v: &str) -> J {
        J::Str(v.to_owned())
    }

    fn obj(entries: Vec<(&str, Option<J>)>) -> J {
        J::Obj(
            entries
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
                .collect(),
        )
    }

    /// Names, mostly valid, some refused (blank, padded, control characters, too long).
    fn name() -> BoxedStrategy<J> {
        prop_oneof![
            30 => prop::sample::select(vec![
                "alice", "bob", "Security", "QA", "production", "svc-3", "acme/team-3/api",
                "1.2.3", "sha256:01", "é", "日本", "😀 rocket", "a\"quote", "back\\slash",
            ])
            .prop_map(s),
            1 => prop::sample::select(vec!["", " padded", "tab\tinside", "new\nline", "  "])
                .prop_map(s),
            1 => prop_oneof![Just("x".repeat(4096)), Just("x".repeat(4097))].prop_map(J::Str),
        ]
        .boxed()
    }

    /// Free texts (may be blank).
    fn text() -> BoxedStrategy<J> {
        prop_oneof![
            4 => name(),
            1 => prop::sample::select(vec!["", " ", "a b ", "line\r\n"]).prop_map(s),
        ]
        .boxed()
    }

    fn timestamp() -> BoxedStrategy<J> {
        prop_oneof![
            8 => choice(vec![
                "2025-06-03T10:15:00Z",
                "2025-06-03T12:15:00+02:00",
                "2025-06-03T10:15:00.123456789Z",
                "2025-06-03T10:15:00-00:00",
            ]),
            1 => choice(vec![
                "2025-06-03 10:15:00Z",
                "2025-06-03t10:15:00z",
                "2025-06-03T10:15:00",
                "2025-06-03T10:15:00Z[UTC]",
                "2025-06-03T10:15:00+02:00[Europe/Berlin]",
                "2025-13-03T10:15:00Z",
                "yesterday",
            ]),
        ]
        .boxed()
    }

    /// One of `valid`, or rarely one of `invalid`.
    fn one_of(valid: Vec<&'static str>, invalid: Vec<&'static str>) -> BoxedStrategy<J> {
        prop_oneof![12 => choice(valid), 1 => choice(invalid)].boxed()
    }

    fn opt<S: Strategy<Value = J> + 'static>(inner: S) -> BoxedStrategy<Option<J>> {
        prop_oneof![
            3 => Just(None),
            1 => Just(Some(J::Null)),
            4 => inner.prop_map(Some),
        ]
        .boxed()
    }

    fn list<S: Strategy<Value = J> + 'static>(inner: S, max: usize) -> BoxedStrategy<J> {
        prop::collection::vec(inner, 0..max)
            .prop_map(J::Arr)
            .boxed()
    }

    fn choice(values: Vec<&'static str>) -> BoxedStrategy<J> {
        prop::sample::select(values).prop_map(s).boxed()
    }

    fn number() -> BoxedStrategy<J> {
        prop_oneof![
            12 => (-3i64..100).prop_map(J::Int),
            1 => prop::sample::select(vec![i64::MIN, i64::MAX]).prop_map(J::Int),
            1 => prop::sample::select(vec![
                "-0", "1.0", "1e2", "0.5", "9223372036854775808", "-9223372036854775809",
                "18446744073709551616",
            ])
            .prop_map(J::Number),
        ]
        .boxed()
    }

    fn evidence_value() -> BoxedStrategy<J> {
        prop_oneof![
            3 => text(),
            2 => number(),
            1 => any::<bool>().prop_map(J::Bool),
            2 => list(text(), 4),
            1 => prop_oneof![Just(J::Null), Just(J::Arr(vec![J::Int(1)]))],
        ]
        .boxed()
    }

    fn free_map<S: Strategy<Value = J> + 'static>(value: S, max: usize) -> BoxedStrategy<J> {
        prop::collection::vec((name(), value), 0..max)
            .prop_map(|entries| {
                J::Obj(
                    entries
                        .into_iter()
                        .filter_map(|(k, v)| match k {
                            J::Str(k) => Some((k, v)),
                            _ => None,
                        })
                        .collect(),
                )
            })
            .boxed()
    }

    fn approval() -> BoxedStrategy<J> {
        (
            name(),
            opt(list(name(), 4)),
            one_of(vec!["pr", "production"], vec!["prod"]),
            timestamp(),
            opt(text()),
        )
            .prop_map(|(approver, roles, kind, at, rationale)| {
                obj(vec![
                    ("approver", Some(approver)),
                    ("roles", roles),
                    ("kind", Some(kind)),
                    ("at", Some(at)),
                    ("rationale", rationale),
                ])
            })
            .boxed()
    }

    fn check() -> BoxedStrategy<J> {
        (
            one_of(vec!["passed", "failed", "na", "pending"], vec!["ok"]),
            opt(text()),
            opt(text()),
        )
            .prop_map(|(status, rationale, url)| {
                obj(vec![
                    ("status", Some(status)),
                    ("rationale", rationale),
                    ("url", url),
                ])
            })
            .boxed()
    }

    fn promotion() -> BoxedStrategy<J> {
        (name(), name(), name(), name(), timestamp(), opt(name()))
            .prop_map(|(environment, version, commit, digest, at, decision)| {
                obj(vec![
                    ("environment", Some(environment)),
                    ("version", Some(version)),
                    ("commit", Some(commit)),
                    ("digest", Some(digest)),
                    ("at", Some(at)),
                    ("decision", decision),
                ])
            })
            .boxed()
    }

    fn exception() -> BoxedStrategy<J> {
        let glob = prop_oneof![
            12 => choice(vec!["acme/*", "production", "svc-?", "**", "b"]),
            1 => choice(vec!["a[", "", " x"]),
        ];
        let scope = (opt(list(glob.clone(), 3)), opt(list(glob, 3)))
            .prop_map(|(r, e)| obj(vec![("repository", r), ("environment", e)]));
        (
            (
                choice(vec!["EXC-1", "EXC-2"]),
                name(),
                opt(list(name(), 3)),
                one_of(vec!["temporary", "permanent"], vec!["forever"]),
                name(),
                opt(scope),
            ),
            (
                opt(text()),
                opt(timestamp()),
                opt(list(text(), 3)),
                opt(timestamp()),
                name(),
                opt(list(
                    (name(), opt(list(name(), 3)))
                        .prop_map(|(a, r)| obj(vec![("approver", Some(a)), ("roles", r)])),
                    3,
                )),
            ),
        )
            .prop_map(
                |(
                    (id, policy, requirements, kind, owner_role, scope),
                    (risk, expires_at, controls, review_by, author, approvers),
                )| {
                    obj(vec![
                        ("id", Some(id)),
                        ("policy", Some(policy)),
                        ("requirements", requirements),
                        ("kind", Some(kind)),
                        ("owner_role", Some(owner_role)),
                        ("scope", scope),
                        ("risk", risk),
                        ("expires_at", expires_at),
                        ("remediation_plan", None),
                        ("compensating_controls", controls),
                        ("review_by", review_by),
                        ("author", Some(author)),
                        ("approvers", approvers),
                    ])
                },
            )
            .boxed()
    }

    fn emergency() -> BoxedStrategy<J> {
        (
            opt(name()),
            opt(text()),
            opt(name()),
            opt(list(name(), 3)),
            opt(list(text(), 3)),
        )
            .prop_map(|(id, reason, approver, roles, follow_ups)| {
                obj(vec![
                    ("id", id),
                    ("reason", reason),
                    ("approver", approver),
                    ("approver_roles", roles),
                    ("scope", None),
                    ("rollback_plan", Some(s("revert"))),
                    ("follow_ups", follow_ups),
                ])
            })
            .boxed()
    }

    fn request() -> BoxedStrategy<J> {
        let who = (
            name(),
            name(),
            opt(choice(vec!["staging->production", "merge"])),
            opt(name()),
            opt(name()),
            opt(name()),
            opt(choice(vec!["low", "high"])),
            name(),
            opt(list(name(), 4)),
            opt(name()),
        );
        let what = (
            opt(list(approval(), 5)),
            opt(free_map(evidence_value(), 5)),
            opt(free_map(check(), 4)),
            opt((name(), name(), name()).prop_map(|(v, c, d)| {
                obj(vec![
                    ("version", Some(v)),
                    ("commit", Some(c)),
                    ("digest", Some(d)),
                ])
            })),
            opt(free_map(text(), 3)),
            timestamp(),
            opt(emergency()),
            opt((opt(list(promotion(), 3)), opt(list(exception(), 3)))
                .prop_map(|(p, e)| obj(vec![("promotions", p), ("exceptions", e)]))),
            opt(prop_oneof![4 => Just(J::Int(1)), 1 => number()]),
        );
        (who, what)
            .prop_map(
                |(
                    (
                        subject,
                        environment,
                        transition,
                        repository,
                        branch,
                        service,
                        risk,
                        author,
                        co,
                        req,
                    ),
                    (
                        approvals,
                        evidence,
                        checks,
                        artifact,
                        labels,
                        now,
                        emergency,
                        context,
                        version,
                    ),
                )| {
                    obj(vec![
                        ("version", version),
                        ("subject", Some(subject)),
                        ("environment", Some(environment)),
                        ("transition", transition),
                        ("repository", repository),
                        ("branch", branch),
                        ("service", service),
                        ("risk", risk),
                        ("author", Some(author)),
                        ("co_authors", co),
                        ("requester", req),
                        ("approvals", approvals),
                        ("evidence", evidence),
                        ("checks", checks),
                        ("artifact", artifact),
                        ("labels", labels),
                        ("now", Some(now)),
                        ("emergency", emergency),
                        ("context", context),
                    ])
                },
            )
            .boxed()
    }

    /// Damages `j` in places chosen by `dice`: members dropped, unknown or repeated, objects
    /// written as arrays, strings as enum objects or numbers, keys reordered.
    fn mutate(j: J, dice: &mut impl Iterator<Item = u8>) -> J {
        let roll = dice.next().unwrap_or(255);
        match j {
            J::Obj(mut entries) => {
                entries = entries
                    .into_iter()
                    .map(|(k, v)| (k, mutate(v, dice)))
                    .collect();
                match roll {
                    0 if !entries.is_empty() => {
                        entries.remove(0);
                        J::Obj(entries)
                    }
                    1 => {
                        entries.push(("colour".to_owned(), s("blue")));
                        J::Obj(entries)
                    }
                    2 if !entries.is_empty() => J::Dup(entries),
                    3 => J::Arr(entries.into_iter().map(|(_, v)| v).collect()),
                    4 => J::Null,
                    5 if entries.len() > 1 => {
                        entries.reverse();
                        J::Obj(entries)
                    }
                    _ => J::Obj(entries),
                }
            }
            J::Arr(items) => {
                let mut items: Vec<J> = items.into_iter().map(|v| mutate(v, dice)).collect();
                match roll {
                    0 => J::Obj(vec![("0".to_owned(), J::Arr(items))]),
                    1 => {
                        items.push(J::Null);
                        J::Arr(items)
                    }
                    2 if !items.is_empty() => {
                        items.push(items[0].clone());
                        J::Arr(items)
                    }
                    _ => J::Arr(items),
                }
            }
            J::Str(v) => match roll {
                0 => J::Obj(vec![(v, J::Null)]),
                1 => J::Int(7),
                2 => J::Arr(vec![J::Str(v)]),
                _ => J::Str(v),
            },
            other => match roll {
                0 => s("7"),
                1 => J::Number("1.0"),
                _ => other,
            },
        }
    }

    fn check_agreement(json: &str) -> Result<(), TestCaseError> {
        let strict = Request::from_json_strict(json.as_bytes());
        if let Some(fast) = read(json.as_bytes()) {
            prop_assert_eq!(Ok(&fast), strict.as_ref(), "{}", json);
            let strict = strict
                .as_ref()
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(fast.canonical_json(), strict.canonical_json());
        }
        if let Ok(valid) = &strict {
            // A recorded snapshot is the canonical JSON of a valid request.
            let snapshot = valid.canonical_json();
            let fast = read(&snapshot);
            prop_assert_eq!(fast.as_ref(), Some(valid), "{}", json);
            let either = Request::from_json(json.as_bytes());
            prop_assert_eq!(either.as_ref(), Ok(valid));
        } else {
            prop_assert_eq!(Request::from_json(json.as_bytes()), strict);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn the_fast_reader_agrees_with_the_strict_one(
            j in request(),
            dice in prop::collection::vec(0u8..=255, 0..256),
            escape in any::<bool>(),
            spaced in any::<bool>(),
        ) {
            let mut dice = dice.into_iter();
            let j = mutate(j, &mut dice);
            let mut json = String::new();
            render(&j, &mut json, escape, spaced);
            check_agreement(&json)?;
        }

        #[test]
        fn valid_requests_are_read_by_the_fast_reader(j in request(), escape in any::<bool>()) {
            let mut json = String::new();
            render(&j, &mut json, escape, false);
            check_agreement(&json)?;
            if Request::from_json_strict(json.as_bytes()).is_ok() {
                prop_assert!(read(json.as_bytes()).is_some() || json.contains("-0"), "{}", json);
            }
        }
    }

    #[test]
    fn what_serde_alone_would_accept_is_left_to_the_strict_reader() {
        let base =
            r#""subject": "c", "environment": "e", "author": "a", "now": "2025-06-03T10:15:00Z""#;
        for extra in [
            r#""artifact": ["1", "abc", "sha256:00"]"#,
            r#""approvals": [{"approver": "b", "kind": {"pr": null}, "at": "2025-06-03T10:15:00Z"}]"#,
            r#""evidence": {"a": 1, "a": 2}"#,
            r#""labels": {"team": "x", "team": "y"}"#,
            r#""checks": {"lint": ["passed"]}"#,
            r#""evidence": {"n": 1.0}"#,
            r#""evidence": {"n": -0}"#,
            r#""colour": "blue""#,
            r#""version": 2"#,
            r#""co_authors": ["x", " y"]"#,
        ] {
            let json = format!("{{{base}, {extra}}}");
            assert_eq!(read(json.as_bytes()), None, "{json}");
            let strict = Request::from_json_strict(json.as_bytes());
            assert_eq!(Request::from_json(json.as_bytes()), strict, "{json}");
        }
        let json = format!("{{{base}, \"evidence\": {{\"n\": -0}}}}");
        assert!(
            Request::from_json(json.as_bytes()).is_ok(),
            "-0 is an integer"
        );
        let json = format!("{{{base}}}");
        assert!(read(json.as_bytes()).is_some());
    }
}
