//! Evaluation: the pure function from (compiled bundle, request) to a decision.
//!
//! The order is fixed and documented in `docs/policy.md`: vocabulary check, parameters
//! (defaults, then overlays), `when` matching of every policy, then each matched policy's
//! requirements (approvals, separation of duties, evidence, checks, artifact, window,
//! conditions), then exceptions, then the outcome. Nothing here reads a clock, the
//! environment, a file or a random source, and every collection that reaches the output is
//! sorted, so the same input always gives byte-identical canonical JSON.

use std::cell::OnceCell;
use std::collections::BTreeSet;
use std::fmt;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::bundle::{KindFilter, ParamValue, SodRule};
use crate::cel_condition::{Bindings, VarSet};
use crate::compiler::{CompiledBundle, RtAmount, RtApprovals, RtPolicy, RtWindow};
use crate::duration::Duration;
use crate::exception;
use crate::request::{ApprovalKind, CheckStatus, Field, Request};
use crate::window;

/// The decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// Every matched policy is satisfied (or excepted).
    #[serde(rename = "ALLOW")]
    Allow,
    /// Some matched policy is violated, or (in strict mode) evaluation failed.
    #[serde(rename = "BLOCK")]
    Block,
    /// No policy matched the request.
    #[serde(rename = "SKIPPED")]
    Skipped,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Allow => "ALLOW",
            Outcome::Block => "BLOCK",
            Outcome::Skipped => "SKIPPED",
        })
    }
}

/// One reason for a decision: which policy, which requirement, a stable code, and a message
/// that says what is missing.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    /// The policy, or `None` for reasons about the request as a whole.
    pub policy: Option<String>,
    /// The requirement path, e.g. `approvals.roles.Security` or `checks.sast`.
    pub requirement: String,
    /// Stable kebab-case code (listed in `docs/policy.md`).
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl Reason {
    fn new(
        policy: Option<&str>,
        requirement: impl Into<String>,
        code: &str,
        message: impl Into<String>,
    ) -> Self {
        Reason {
            policy: policy.map(str::to_owned),
            requirement: requirement.into(),
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.policy {
            Some(p) => write!(
                f,
                "[{p}] {} ({}): {}",
                self.requirement, self.code, self.message
            ),
            None => write!(f, "{} ({}): {}", self.requirement, self.code, self.message),
        }
    }
}

/// How a matched policy came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyStatus {
    /// All requirements met.
    Satisfied,
    /// Some requirement not met.
    Violated,
    /// Requirements not met, all waived by exceptions.
    Excepted,
    /// Requirements met as far as they could be evaluated, but evaluating one failed.
    Error,
}

/// A policy whose `when` matched.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchedPolicy {
    /// Policy id.
    pub policy: String,
    /// Result.
    pub status: PolicyStatus,
    /// The change window the request was inside, if the policy has one and it was.
    pub window: Option<String>,
    /// Whether the emergency path was taken for this policy's window.
    pub emergency: bool,
}

/// Something that must happen after an allowed change, by `due`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Obligation {
    /// Deadline.
    #[serde(with = "timestamp_serde")]
    pub due: Timestamp,
    /// Kind, e.g. `post-facto-review`.
    pub kind: String,
    /// The policy that imposes it.
    pub policy: String,
    /// Roles that must carry it out.
    pub roles: Vec<String>,
    /// What to do.
    pub description: String,
}

/// An exception that waived requirements.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppliedException {
    /// Exception id.
    pub exception: String,
    /// Policy whose requirements it waived.
    pub policy: String,
    /// Requirement paths waived.
    pub waived: Vec<String>,
}

/// The result of [`evaluate`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evaluation {
    /// ALLOW, BLOCK or SKIPPED.
    pub outcome: Outcome,
    /// The bundle's hash.
    pub bundle: String,
    /// Why: for BLOCK the unmet requirements (and, in strict mode, evaluation errors); for
    /// SKIPPED `no-policy-matched`; for ALLOW nothing. Sorted by policy (`None` first),
    /// requirement, code, message.
    pub reasons: Vec<Reason>,
    /// Policies whose `when` matched, sorted by id.
    pub matched_policies: Vec<MatchedPolicy>,
    /// Obligations (ALLOW only), sorted by due, kind, policy.
    pub obligations: Vec<Obligation>,
    /// Exceptions that waived requirements, sorted by exception then policy.
    pub applied_exceptions: Vec<AppliedException>,
    /// Evaluation errors that did not block because the bundle is not strict, sorted like
    /// reasons.
    pub errors: Vec<Reason>,
    /// Overlays that applied, most specific first.
    pub overlays: Vec<String>,
}

impl Evaluation {
    /// The evaluation as canonical JSON (see `docs/policy.md`).
    pub fn canonical_json(&self) -> Vec<u8> {
        crate::canonical::to_vec(self)
    }
}

mod timestamp_serde {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    #[allow(clippy::trivially_copy_pass_by_ref)] // serde passes a reference.
    pub(super) fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        crate::canonical::timestamp(t, s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Parameter values in force for one request: defaults, refined by overlays.
pub(crate) struct Params<'b> {
    pub(crate) values: Vec<&'b ParamValue>,
    pub(crate) overlays: Vec<&'b str>,
}

impl<'b> Params<'b> {
    /// Resolves parameters for `request`: among matching overlays, ordered by specificity
    /// (most constrained fields first, then most exact-value fields) and then by declaration
    /// (later first), the first that `set`s a parameter wins; then every matching `tighten`
    /// applies if it is stricter than the value so far.
    pub(crate) fn resolve(
        bundle: &'b CompiledBundle,
        request: &Request,
        memo: &mut Memo,
    ) -> Params<'b> {
        let mut values: Vec<&ParamValue> = bundle.params.iter().map(|p| &p.default).collect();
        if bundle.overlays.is_empty() {
            return Params {
                values,
                overlays: Vec::new(),
            };
        }
        let mut matching: Vec<(usize, usize, usize)> = Vec::new();
        for (index, o) in bundle.overlays.iter().enumerate() {
            if o.matchers.iter().all(|m| memo.matches(bundle, *m, request)) {
                let exact = o
                    .matchers
                    .iter()
                    .filter(|m| {
                        let rt = &bundle.matchers[**m];
                        rt.globs.is_empty() && !rt.negated
                    })
                    .count();
                matching.push((o.matchers.len(), exact, index));
            }
        }
        matching.sort_by(|a, b| b.cmp(a));
        let mut set = vec![false; values.len()];
        for (_, _, index) in &matching {
            for (param, value) in &bundle.overlays[*index].set {
                if !set[*param] {
                    set[*param] = true;
                    values[*param] = value;
                }
            }
        }
        for (_, _, index) in &matching {
            for (param, value) in &bundle.overlays[*index].tighten {
                if let Some(dir) = bundle.params[*param].stricter
                    && crate::compiler::is_stricter(dir, value, values[*param])
                {
                    values[*param] = value;
                }
            }
        }
        let overlays = matching
            .iter()
            .map(|(_, _, i)| bundle.overlays[*i].id.as_str())
            .collect();
        Params { values, overlays }
    }

    fn int(&self, a: &RtAmount<i64>) -> i64 {
        match a {
            RtAmount::Value(v) => *v,
            RtAmount::Param(i) => match self.values.get(*i) {
                Some(ParamValue::Integer(v)) => *v,
                _ => 0,
            },
        }
    }

    pub(crate) fn duration(&self, a: &RtAmount<Duration>) -> Option<Duration> {
        match a {
            RtAmount::Value(v) => Some(*v),
            RtAmount::Param(i) => match self.values.get(*i) {
                Some(ParamValue::Duration(d)) => Some(*d),
                _ => None,
            },
        }
    }

    fn named(&self, bundle: &CompiledBundle) -> Vec<(String, ParamValue)> {
        bundle
            .params
            .iter()
            .zip(&self.values)
            .map(|(p, v)| (p.name.clone(), (*v).clone()))
            .collect()
    }
}

/// Lazily evaluated matchers, shared by overlays and policies.
pub(crate) struct Memo {
    /// 0: not evaluated, 1: false, 2: true.
    state: Vec<u8>,
    /// Per field, the interned symbol of the request's value, looked up on first use
    /// ([`Memo::UNKNOWN`] until then, [`Memo::NOT_INTERNED`] if no matcher names the value).
    symbols: [u32; 8],
    /// Per field, the ids of the field's glob patterns that match the request value, once
    /// computed (sorted).
    glob_hits: [Option<Vec<usize>>; 8],
}

impl Memo {
    const UNKNOWN: u32 = u32::MAX;
    const NOT_INTERNED: u32 = u32::MAX - 1;

    pub(crate) fn new(bundle: &CompiledBundle) -> Memo {
        Memo {
            state: vec![0; bundle.matchers.len()],
            symbols: [Memo::UNKNOWN; 8],
            glob_hits: Default::default(),
        }
    }

    pub(crate) fn matches(
        &mut self,
        bundle: &CompiledBundle,
        id: usize,
        request: &Request,
    ) -> bool {
        match self.state.get(id) {
            Some(1) => return false,
            Some(2) => return true,
            _ => {}
        }
        let Some(m) = bundle.matchers.get(id) else {
            return false;
        };
        let result = match request.field(m.field) {
            None => false,
            Some(value) => {
                let slot = &mut self.symbols[m.field as usize];
                if *slot == Memo::UNKNOWN {
                    *slot = bundle
                        .symbols
                        .get(value)
                        .copied()
                        .unwrap_or(Memo::NOT_INTERNED);
                }
                let symbol = (*slot != Memo::NOT_INTERNED).then_some(*slot);
                let hit = symbol.is_some_and(|s| m.values.contains(&s))
                    || (!m.globs.is_empty() && {
                        let hits = self.glob_hits[m.field as usize].get_or_insert_with(|| {
                            bundle
                                .field_globs
                                .get(m.field as usize)
                                .and_then(Option::as_ref)
                                .map(|set| set.matches(value))
                                .unwrap_or_default()
                        });
                        m.globs.iter().any(|g| hits.binary_search(g).is_ok())
                    });
                hit != m.negated
            }
        };
        if let Some(slot) = self.state.get_mut(id) {
            *slot = if result { 2 } else { 1 };
        }
        result
    }
}

/// Evaluates `request` against `bundle`.
///
/// Pure and total: no clock, no I/O, no randomness; every input yields an [`Evaluation`]
/// (problems with the input become reasons or errors, never panics).
pub fn evaluate(bundle: &CompiledBundle, request: &Request) -> Evaluation {
    let mut memo = Memo::new(bundle);
    let mut errors: Vec<Reason> = Vec::new();
    for (field, vocabulary) in &bundle.vocabulary {
        if let Some(v) = request.field(*field)
            && !vocabulary.contains(v)
        {
            let known: Vec<&str> = vocabulary.iter().map(String::as_str).collect();
            errors.push(Reason::new(
                None,
                format!("vocabulary.{field}"),
                "unknown-value",
                format!(
                    "{field} {} is not in vocabulary.{field} ({})",
                    crate::document::quote_for_message(v),
                    known.join(", ")
                ),
            ));
        }
    }
    let params = Params::resolve(bundle, request, &mut memo);
    let matched: Vec<&RtPolicy> = bundle
        .policies
        .iter()
        .filter(|p| p.matchers.iter().all(|m| memo.matches(bundle, *m, request)))
        .collect();
    let cel_vars = matched
        .iter()
        .fold(VarSet::default(), |acc, p| acc.union(p.cel_vars));
    let named_params = OnceCell::new();
    let cel_context = OnceCell::new();
    let conditions = (cel_vars != VarSet::default()).then_some(Conditions {
        bundle,
        request,
        params: &params,
        vars: cel_vars,
        named_params: &named_params,
        context: &cel_context,
    });

    let mut reasons: Vec<Reason> = Vec::new();
    let mut matched_out: Vec<MatchedPolicy> = Vec::with_capacity(matched.len());
    let mut applied: Vec<AppliedException> = Vec::new();
    let mut obligations: Vec<Obligation> = Vec::new();
    for policy in &matched {
        let mut check = PolicyCheck {
            policy,
            request,
            params: &params,
            violations: Vec::new(),
            errors: Vec::new(),
        };
        if let Some(a) = &policy.approvals {
            check.approvals(a);
        }
        check.separation_of_duties();
        check.evidence();
        check.checks();
        check.artifact();
        let window = policy.window.as_ref().map(|w| check.window(bundle, w));
        if let Some(conditions) = &conditions {
            check.conditions(conditions);
        }
        let PolicyCheck {
            mut violations,
            errors: policy_errors,
            ..
        } = check;
        let mut status = PolicyStatus::Satisfied;
        if !violations.is_empty() {
            status = PolicyStatus::Violated;
            let (waived, notes) = apply_exceptions(policy, request, &mut violations, &mut applied);
            reasons.extend(notes);
            if waived && violations.is_empty() {
                status = PolicyStatus::Excepted;
            }
            reasons.extend(violations);
        }
        if status == PolicyStatus::Satisfied && !policy_errors.is_empty() {
            status = PolicyStatus::Error;
        }
        errors.extend(policy_errors);
        let (window_name, emergency) = match &window {
            Some(WindowResult {
                inside: Some(name), ..
            }) => (Some(name.clone()), false),
            Some(WindowResult {
                emergency: Some(_), ..
            }) => (None, true),
            _ => (None, false),
        };
        if let Some(WindowResult {
            emergency: Some(o), ..
        }) = window
        {
            obligations.push(o);
        }
        for o in &policy.obligations {
            if let Some(due) = params
                .duration(&o.within)
                .and_then(|d| add(request.now(), d))
            {
                obligations.push(Obligation {
                    due,
                    kind: o.kind.clone(),
                    policy: policy.id.clone(),
                    roles: o.roles.clone(),
                    description: o.description.clone(),
                });
            }
        }
        matched_out.push(MatchedPolicy {
            policy: policy.id.clone(),
            status,
            window: window_name,
            emergency,
        });
    }

    let strict = bundle.strict;
    let blocked_by_errors = strict && !errors.is_empty();
    if strict {
        reasons.append(&mut errors);
    }
    let outcome = if !reasons.is_empty() || blocked_by_errors {
        Outcome::Block
    } else if matched.is_empty() {
        reasons.push(Reason::new(
            None,
            "when",
            "no-policy-matched",
            format!("no policy matched ({})", describe_fields(request)),
        ));
        Outcome::Skipped
    } else {
        Outcome::Allow
    };
    if outcome != Outcome::Allow {
        obligations.clear();
    }
    reasons.sort();
    errors.sort();
    matched_out.sort();
    obligations.sort();
    applied.sort();
    Evaluation {
        outcome,
        bundle: bundle.hash().to_owned(),
        reasons,
        matched_policies: matched_out,
        obligations,
        applied_exceptions: applied,
        errors,
        overlays: params.overlays.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// `field=value` for every present matchable field, for the SKIPPED message.
fn describe_fields(request: &Request) -> String {
    Field::ALL
        .iter()
        .filter_map(|f| request.field(*f).map(|v| format!("{f}={v}")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `t + d`, if representable.
pub(crate) fn add(t: Timestamp, d: Duration) -> Option<Timestamp> {
    t.checked_add(SignedDuration::from_secs(d.seconds())).ok()
}

/// Waives violations covered by valid exceptions. Returns whether any was waived, and
/// reasons explaining exceptions that exist for the policy but could not be used.
fn apply_exceptions(
    policy: &RtPolicy,
    request: &Request,
    violations: &mut Vec<Reason>,
    applied: &mut Vec<AppliedException>,
) -> (bool, Vec<Reason>) {
    let mut candidates: Vec<_> = request
        .context()
        .exceptions
        .iter()
        .filter(|e| e.policy == policy.id)
        .collect();
    if candidates.is_empty() {
        return (false, Vec::new());
    }
    candidates.sort_by(|a, b| a.id.cmp(&b.id));
    let mut notes = Vec::new();
    if !policy.honour_exceptions {
        for e in candidates {
            notes.push(Reason::new(
                Some(&policy.id),
                format!("exceptions.{}", e.id),
                "exception-rejected",
                format!(
                    "exception {} was not applied: policy {} does not honour exceptions",
                    e.id, policy.id
                ),
            ));
        }
        return (false, notes);
    }
    let mut valid = Vec::new();
    for e in candidates {
        match exception::invalid_because(e, request, request.now()) {
            None => valid.push(e),
            Some(why) => notes.push(Reason::new(
                Some(&policy.id),
                format!("exceptions.{}", e.id),
                "exception-rejected",
                format!("exception {} was not applied: {why}", e.id),
            )),
        }
    }
    let mut waived_any = false;
    let mut per_exception: Vec<(usize, BTreeSet<String>)> = Vec::new();
    violations.retain(|v| {
        if let Some(index) = valid
            .iter()
            .position(|e| exception::waives(e, &v.requirement))
        {
            waived_any = true;
            match per_exception.iter_mut().find(|(i, _)| *i == index) {
                Some((_, set)) => {
                    set.insert(v.requirement.clone());
                }
                None => per_exception.push((index, BTreeSet::from([v.requirement.clone()]))),
            }
            false
        } else {
            true
        }
    });
    for (index, waived) in per_exception {
        applied.push(AppliedException {
            exception: valid[index].id.clone(),
            policy: policy.id.clone(),
            waived: waived.into_iter().collect(),
        });
    }
    (waived_any, notes)
}

/// The CEL conditions' view of one request: the variables that the matched policies'
/// conditions read, bound as CEL values only when a condition needs the interpreter (most are
/// evaluated directly; see [`crate::cel_condition::Condition::evaluate_direct`]), and then once
/// for all of them.
struct Conditions<'a, 'c, 'v> {
    bundle: &'a CompiledBundle,
    request: &'v Request,
    params: &'a Params<'a>,
    /// What the conditions of the matched policies read.
    vars: VarSet,
    /// The parameters by name, as the CEL variable `params` holds them, once needed.
    named_params: &'v OnceCell<Vec<(String, ParamValue)>>,
    /// The interpreter's context, once needed.
    context: &'c OnceCell<cel::Context<'v, 'v>>,
}

impl<'c, 'v> Conditions<'_, 'c, 'v> {
    /// The interpreter's context, built on first use.
    fn context(&self) -> &'c cel::Context<'v, 'v> {
        self.context.get_or_init(|| {
            let named = self
                .named_params
                .get_or_init(|| self.params.named(self.bundle));
            Bindings::new(self.request, named).context(&self.bundle.cel_env, self.vars)
        })
    }
}

/// What the window requirement found.
struct WindowResult {
    /// The calendar the request was inside, if the policy has one and it was.
    inside: Option<String>,
    /// The post-facto review obligation if the emergency path was taken.
    emergency: Option<Obligation>,
}

/// The evaluation of one matched policy.
struct PolicyCheck<'a> {
    policy: &'a RtPolicy,
    request: &'a Request,
    params: &'a Params<'a>,
    violations: Vec<Reason>,
    errors: Vec<Reason>,
}

impl PolicyCheck<'_> {
    fn violation(
        &mut self,
        requirement: impl Into<String>,
        code: &str,
        message: impl Into<String>,
    ) {
        self.violations.push(Reason::new(
            Some(&self.policy.id),
            requirement,
            code,
            message,
        ));
    }

    fn approvals(&mut self, a: &RtApprovals) {
        let r = self.request;
        let now = r.now();
        let mut eligible: Vec<(&str, Vec<&str>)> = Vec::new();
        let mut not_counted: Vec<(&str, &str)> = Vec::new();
        for approval in r.approvals() {
            let kind_ok = match a.kind {
                KindFilter::Any => true,
                KindFilter::Pr => approval.kind == ApprovalKind::Pr,
                KindFilter::Production => approval.kind == ApprovalKind::Production,
            };
            if !kind_ok {
                continue;
            }
            let who = approval.approver.as_str();
            let excluded = if r.is_author(who) {
                Some("author")
            } else if a.exclude_requester && r.requester() == Some(who) {
                Some("requester")
            } else if a.exclude_releaser && r.releaser() == Some(who) {
                Some("releaser")
            } else if approval.at > now {
                Some("approved after now")
            } else if a.require_rationale
                && approval
                    .rationale
                    .as_deref()
                    .is_none_or(|s| s.trim().is_empty())
            {
                Some("no rationale")
            } else {
                None
            };
            if let Some(why) = excluded {
                not_counted.push((who, why));
                continue;
            }
            match eligible.iter_mut().find(|(w, _)| *w == who) {
                Some((_, roles)) => roles.extend(approval.roles.iter().map(String::as_str)),
                None => eligible.push((who, approval.roles.iter().map(String::as_str).collect())),
            }
        }
        // A person counted for one approval is not "not counted" because of another.
        not_counted.retain(|(who, _)| !eligible.iter().any(|(w, _)| w == who));
        let kind_text = match a.kind {
            KindFilter::Any => "",
            KindFilter::Pr => " pr",
            KindFilter::Production => " production",
        };
        let note = || {
            if not_counted.is_empty() {
                return String::new();
            }
            let mut shown: Vec<String> = not_counted
                .iter()
                .map(|(w, why)| format!("{w} ({why})"))
                .collect();
            shown.sort();
            shown.dedup();
            format!("; not counted: {}", shown.join(", "))
        };
        let count = i64::try_from(eligible.len()).unwrap_or(i64::MAX);
        let min = self.params.int(&a.min).max(0);
        if count < min {
            self.violation(
                "approvals.min",
                "approvals-insufficient",
                format!(
                    "needs {} more{kind_text} {} ({min} required, {count} counted{})",
                    min - count,
                    if min - count == 1 {
                        "approval"
                    } else {
                        "approvals"
                    },
                    note()
                ),
            );
        }
        let mut roles_met = true;
        let mut slots: Vec<&str> = Vec::new();
        for (role, n) in &a.roles {
            let n = self.params.int(n).max(0);
            let have = i64::try_from(
                eligible
                    .iter()
                    .filter(|(_, roles)| roles.contains(&role.as_str()))
                    .count(),
            )
            .unwrap_or(i64::MAX);
            if have < n {
                roles_met = false;
                self.violation(
                    format!("approvals.roles.{role}"),
                    "approvals-role-missing",
                    format!(
                        "needs {} more{kind_text} {} from role {role} ({n} required, {have} counted)",
                        n - have,
                        if n - have == 1 { "approval" } else { "approvals" }
                    ),
                );
            }
            for _ in 0..n.min(64) {
                slots.push(role);
            }
        }
        if roles_met && a.roles.len() > 1 {
            let assigned = max_assignment(&slots, &eligible);
            if assigned < slots.len() {
                self.violation(
                    "approvals.roles",
                    "approvals-roles-overlap",
                    format!(
                        "the role requirements need {} distinct approvers, but only {} can be assigned: one approver cannot fill two role requirements",
                        slots.len(),
                        assigned
                    ),
                );
            }
        }
    }

    fn separation_of_duties(&mut self) {
        let r = self.request;
        for rule in &self.policy.sod {
            let requirement = || format!("separation_of_duties.{}", rule.as_str());
            match rule {
                SodRule::AuthorCannotApprove => {
                    let mut who: Vec<&str> = r
                        .approvals()
                        .iter()
                        .map(|a| a.approver.as_str())
                        .filter(|w| r.is_author(w))
                        .collect();
                    who.sort_unstable();
                    who.dedup();
                    if !who.is_empty() {
                        self.violation(
                            requirement(),
                            "sod-author-approved",
                            format!(
                                "{} authored the change and approved it; authors cannot approve",
                                who.join(", ")
                            ),
                        );
                    }
                }
                SodRule::RequesterCannotApprove => {
                    if let Some(req) = r.requester()
                        && r.approvals().iter().any(|a| a.approver == req)
                    {
                        self.violation(
                                requirement(),
                                "sod-requester-approved",
                                format!("{req} requested the change and approved it; the requester cannot approve"),
                            );
                    }
                }
                SodRule::ReleaserCannotApprove => {
                    if let Some(rel) = r.releaser()
                        && r.approvals().iter().any(|a| a.approver == rel)
                    {
                        self.violation(
                                requirement(),
                                "sod-releaser-approved",
                                format!("{rel} releases the change and approved it; the releaser cannot approve"),
                            );
                    }
                }
                SodRule::ProductionApproverNotSolePrApprover => {
                    let mut production: Vec<&str> = r
                        .approvals()
                        .iter()
                        .filter(|a| a.kind == ApprovalKind::Production)
                        .map(|a| a.approver.as_str())
                        .collect();
                    production.sort_unstable();
                    production.dedup();
                    let is_pr_approver = |w: &str| {
                        r.approvals()
                            .iter()
                            .any(|a| a.kind == ApprovalKind::Pr && a.approver == w)
                    };
                    if !production.is_empty() && production.iter().all(|w| is_pr_approver(w)) {
                        self.violation(
                            requirement(),
                            "sod-production-approver-is-pr-approver",
                            format!(
                                "every production approver ({}) also approved the pull request; at least one production approver must be independent of code review",
                                production.join(", ")
                            ),
                        );
                    }
                }
                SodRule::NotSoleAuthorAndReleaser => {
                    let author = r.author();
                    let approved_production = r
                        .approvals()
                        .iter()
                        .any(|a| a.kind == ApprovalKind::Production && a.approver == author);
                    if r.co_authors.is_empty()
                        && r.releaser() == Some(author)
                        && approved_production
                    {
                        self.violation(
                            requirement(),
                            "sod-sole-author-releaser-approved",
                            format!("{author} is the sole author and the releaser and must not also approve the production deployment"),
                        );
                    }
                }
            }
        }
    }

    fn evidence(&mut self) {
        let names: &[String] = match &self.policy.evidence {
            None => return,
            Some(crate::compiler::RtEvidence::Names(names)) => names,
            Some(crate::compiler::RtEvidence::Param(i)) => match self.params.values.get(*i) {
                Some(ParamValue::Strings(names)) => names,
                _ => return,
            },
        };
        for name in names {
            match self.request.evidence.get(name) {
                None => self.violation(
                    format!("evidence.{name}"),
                    "evidence-missing",
                    format!("evidence \"{name}\" is missing"),
                ),
                Some(v) if !v.is_present() => {
                    self.violation(
                        format!("evidence.{name}"),
                        "evidence-empty",
                        format!("evidence \"{name}\" is empty"),
                    );
                }
                Some(_) => {}
            }
        }
    }

    fn checks(&mut self) {
        for c in &self.policy.checks {
            let requirement = || format!("checks.{}", c.name);
            let name = &c.name;
            match self.request.checks.get(name) {
                None => self.violation(requirement(), "check-missing", format!("check \"{name}\" has no result")),
                Some(result) => match result.status {
                    CheckStatus::Passed => {}
                    CheckStatus::Failed => self.violation(requirement(), "check-failed", format!("check \"{name}\" failed")),
                    CheckStatus::Pending => {
                        self.violation(requirement(), "check-pending", format!("check \"{name}\" has not finished"));
                    }
                    CheckStatus::Na if !c.allow_na => self.violation(
                        requirement(),
                        "check-na-not-allowed",
                        format!("check \"{name}\" is marked not applicable, which this policy does not allow"),
                    ),
                    CheckStatus::Na => {
                        if result.rationale.as_deref().is_none_or(|s| s.trim().is_empty()) {
                            self.violation(
                                requirement(),
                                "check-na-without-rationale",
                                format!("check \"{name}\" is marked not applicable without a rationale"),
                            );
                        }
                    }
                },
            }
        }
    }

    fn artifact(&mut self) {
        let Some(rule) = &self.policy.artifact else {
            return;
        };
        let Some(artifact) = &self.request.artifact else {
            self.violation(
                "artifact",
                "artifact-missing",
                "the request names no artifact (version, commit, digest)",
            );
            return;
        };
        let promotions = &self.request.context().promotions;
        if rule.immutable_version {
            let mut conflicts: Vec<_> = promotions
                .iter()
                .filter(|p| {
                    p.version == artifact.version
                        && (p.commit != artifact.commit || p.digest != artifact.digest)
                })
                .collect();
            conflicts.sort_by(|a, b| {
                (a.at, &a.environment, &a.digest).cmp(&(b.at, &b.environment, &b.digest))
            });
            if let Some(p) = conflicts.first() {
                self.violation(
                    "artifact.immutable_version",
                    "version-rebound",
                    format!(
                        "version {} was promoted to {} as commit {} with digest {}; this request binds it to commit {} with digest {}: a version never changes",
                        artifact.version, p.environment, p.commit, p.digest, artifact.commit, artifact.digest
                    ),
                );
            }
        }
        for env in &rule.same_digest_in {
            let mut digests: Vec<&str> = promotions
                .iter()
                .filter(|p| p.version == artifact.version && p.environment == *env)
                .map(|p| p.digest.as_str())
                .collect();
            digests.sort_unstable();
            digests.dedup();
            let requirement = format!("artifact.same_digest_in.{env}");
            if digests.is_empty() {
                self.violation(
                    requirement,
                    "artifact-not-promoted",
                    format!(
                        "version {} has not been promoted to {env}",
                        artifact.version
                    ),
                );
            } else if !digests.contains(&artifact.digest.as_str()) {
                self.violation(
                    requirement,
                    "artifact-digest-mismatch",
                    format!(
                        "version {} went to {env} with digest {}, not {}: promote the same artifact",
                        artifact.version,
                        digests.join(", "),
                        artifact.digest
                    ),
                );
            }
        }
    }

    fn window(&mut self, bundle: &CompiledBundle, w: &RtWindow) -> WindowResult {
        let now = self.request.now();
        let mut problems: Vec<(String, &'static str, String)> = Vec::new();
        let mut inside = None;
        if let Some(index) = w.calendar
            && let Some(cal) = bundle.calendars.get(index)
        {
            if window::contains(cal, now) {
                inside = Some(cal.name.clone());
            } else {
                problems.push((
                    "window.calendar".to_owned(),
                    "outside-change-window",
                    format!(
                        "{} is outside change window {}",
                        window::local_time(cal, now),
                        cal.name
                    ),
                ));
            }
        }
        for index in &w.freeze {
            if let Some(cal) = bundle.calendars.get(*index)
                && window::contains(cal, now)
            {
                problems.push((
                    format!("window.freeze.{}", cal.name),
                    "inside-freeze",
                    format!(
                        "{} is inside freeze {}",
                        window::local_time(cal, now),
                        cal.name
                    ),
                ));
            }
        }
        if problems.is_empty() {
            return WindowResult {
                inside,
                emergency: None,
            };
        }
        let mut result = WindowResult {
            inside: None,
            emergency: None,
        };
        let Some(path) = &w.emergency else {
            for (req, code, msg) in problems {
                self.violation(req, code, msg);
            }
            return result;
        };
        let Some(record) = &self.request.emergency else {
            for (req, code, msg) in problems {
                self.violation(
                    req,
                    code,
                    format!("{msg}; only an emergency change record can allow it"),
                );
            }
            return result;
        };
        let mut missing = Vec::new();
        let blank = |v: &Option<String>| v.as_deref().is_none_or(|s| s.trim().is_empty());
        if blank(&record.approver) {
            missing.push("approver");
        }
        if record.follow_ups.is_empty() {
            missing.push("follow_ups");
        }
        if blank(&record.reason) {
            missing.push("reason");
        }
        if blank(&record.rollback_plan) {
            missing.push("rollback_plan");
        }
        if blank(&record.scope) {
            missing.push("scope");
        }
        let mut emergency_problems: Vec<(&'static str, String)> = Vec::new();
        if !missing.is_empty() {
            emergency_problems.push((
                "emergency-record-incomplete",
                format!("the emergency record is missing {}", missing.join(", ")),
            ));
        }
        if let Some(approver) = record.approver.as_deref().filter(|s| !s.trim().is_empty()) {
            if self.request.is_author(approver) {
                emergency_problems.push((
                    "emergency-self-approved",
                    format!("{approver} authored the change and cannot approve its emergency path"),
                ));
            } else if self.request.requester() == Some(approver) {
                emergency_problems.push((
                    "emergency-self-approved",
                    format!(
                        "{approver} requested the change and cannot approve its emergency path"
                    ),
                ));
            }
            if !path.approver_roles.is_empty()
                && !path
                    .approver_roles
                    .iter()
                    .any(|role| record.approver_roles.contains(role))
            {
                emergency_problems.push((
                    "emergency-approver-role",
                    format!(
                        "emergency approver {approver} holds none of the roles {}",
                        path.approver_roles.join(", ")
                    ),
                ));
            }
        }
        if !emergency_problems.is_empty() {
            for (req, code, msg) in problems {
                self.violation(req, code, msg);
            }
            for (code, msg) in emergency_problems {
                self.violation("window.emergency", code, msg);
            }
            return result;
        }
        let Some(within) = self.params.duration(&path.review_within) else {
            return result;
        };
        match add(now, within) {
            Some(due) => {
                let id = record.id.as_deref().unwrap_or("(no id)");
                result.emergency = Some(Obligation {
                    due,
                    kind: "post-facto-review".to_owned(),
                    policy: self.policy.id.clone(),
                    roles: record.approver_roles.clone(),
                    description: format!(
                        "post-facto review of emergency change {id} within {within}"
                    ),
                });
            }
            None => self.errors.push(Reason::new(
                Some(&self.policy.id),
                "window.emergency.review_within",
                "evaluation-error",
                "the review deadline is out of range",
            )),
        }
        result
    }

    fn conditions(&mut self, conditions: &Conditions<'_, '_, '_>) {
        for c in &self.policy.conditions {
            let requirement = || format!("conditions.{}", c.id);
            let result = match c
                .condition
                .evaluate_direct(self.request, &self.params.values)
            {
                Some(b) => Ok(b),
                None => c.condition.evaluate(conditions.context()),
            };
            match result {
                Ok(true) => {}
                Ok(false) => {
                    let message = c
                        .message
                        .clone()
                        .unwrap_or_else(|| format!("condition {} is not satisfied", c.id));
                    self.violation(requirement(), "condition-failed", message);
                }
                Err(e) => self.errors.push(Reason::new(
                    Some(&self.policy.id),
                    requirement(),
                    "evaluation-error",
                    format!("condition {} could not be evaluated: {e}", c.id),
                )),
            }
        }
    }
}

/// The largest number of `slots` (each a role) that distinct approvers holding that role can
/// fill (bipartite matching by augmenting paths; inputs are bounded by the request limits).
fn max_assignment(slots: &[&str], approvers: &[(&str, Vec<&str>)]) -> usize {
    fn augment(
        slot: usize,
        slots: &[&str],
        approvers: &[(&str, Vec<&str>)],
        owner: &mut [Option<usize>],
        seen: &mut [bool],
    ) -> bool {
        for (a, (_, roles)) in approvers.iter().enumerate() {
            if seen[a] || !roles.contains(&slots[slot]) {
                continue;
            }
            seen[a] = true;
            let free = match owner[a] {
                None => true,
                Some(other) => augment(other, slots, approvers, owner, seen),
            };
            if free {
                owner[a] = Some(slot);
                return true;
            }
        }
        false
    }
    let mut owner = vec![None; approvers.len()];
    let mut count = 0;
    for slot in 0..slots.len() {
        let mut seen = vec![false; approvers.len()];
        if augment(slot, slots, approvers, &mut owner, &mut seen) {
            count += 1;
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_needs_distinct_people() {
        let both = vec![("ann", vec!["Security", "EngineeringManager"])];
        assert_eq!(
            max_assignment(&["Security", "EngineeringManager"], &both),
            1
        );
        let two = vec![
            ("ann", vec!["Security", "EngineeringManager"]),
            ("bob", vec!["Security"]),
        ];
        assert_eq!(max_assignment(&["Security", "EngineeringManager"], &two), 2);
        assert_eq!(max_assignment(&["EngineeringManager", "Security"], &two), 2);
    }
}
