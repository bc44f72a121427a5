//! The source form of a policy bundle: what a YAML or JSON text says, with locations.
//!
//! [`SourceBundle::parse`] applies the strict schema (unknown fields and wrong types are
//! errors, each with its path, line and column) and keeps the location of every policy and
//! field so that [`SourceBundle::lint`](crate::lint) findings can point at them. Cross
//! references (roles, parameters, calendars, CEL) are checked later, by the compiler.

mod parse;

use std::fmt;

use jiff::civil;

use crate::document::reader::{FieldError, Text};
use crate::document::{Format, Loc};
use crate::duration::Duration;
use crate::request::Field;

/// The only bundle `version` this build reads.
pub const BUNDLE_VERSION: i64 = 1;

/// Largest bundle text accepted, in bytes.
pub const MAX_BUNDLE_BYTES: usize = 1 << 20;

/// Most policies in one bundle.
pub const MAX_POLICIES: usize = 1024;

/// A parsed policy bundle with source locations, not yet compiled.
#[derive(Clone, Debug)]
pub struct SourceBundle {
    pub(crate) format: Format,
    pub(crate) name: Text,
    pub(crate) description: String,
    pub(crate) strict: bool,
    pub(crate) roles: Vec<Text>,
    pub(crate) vocabulary: Vec<VocabularyDecl>,
    pub(crate) parameters: Vec<ParamDecl>,
    pub(crate) calendars: Vec<CalendarDecl>,
    pub(crate) overlays: Vec<OverlayDecl>,
    pub(crate) policies: Vec<PolicyDecl>,
}

impl SourceBundle {
    /// Parses a bundle text in `format`, applying the strict schema.
    ///
    /// # Errors
    ///
    /// Returns every schema violation found (unknown fields, wrong types, missing required
    /// fields, malformed values, duplicate ids), each with its path, line and column; or a
    /// single syntax error when the text is not valid YAML or JSON.
    pub fn parse(text: &str, format: Format) -> Result<SourceBundle, ParseErrors> {
        parse::parse(text, format)
    }

    /// The bundle's `name`.
    pub fn name(&self) -> &str {
        &self.name.value
    }

    /// The text format the bundle was parsed from.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The ids of the policies, in declaration order, with where each is declared.
    pub fn policy_ids(&self) -> Vec<(&str, Loc)> {
        self.policies
            .iter()
            .map(|p| (p.id.value.as_str(), p.id.loc))
            .collect()
    }
}

/// Why a bundle text could not be parsed: one or more located errors, in document order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub struct ParseErrors {
    /// The errors, sorted by location then path.
    pub errors: Vec<FieldError>,
}

impl fmt::Display for ParseErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// A declared list of the values a request field (or evidence or check name) may take.
#[derive(Clone, Debug)]
pub(crate) struct VocabularyDecl {
    pub(crate) key: VocabularyKey,
    pub(crate) values: Vec<Text>,
}

/// What a vocabulary list constrains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum VocabularyKey {
    Field(Field),
    Evidence,
    Checks,
}

impl VocabularyKey {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            VocabularyKey::Field(f) => f.as_str(),
            VocabularyKey::Evidence => "evidence",
            VocabularyKey::Checks => "checks",
        }
    }
}

/// A value that is either written in place or taken from a named parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Amount<T> {
    Value(T),
    Param(Text),
}

/// An [`Amount`] with where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Quantity<T> {
    pub(crate) amount: Amount<T>,
    pub(crate) loc: Loc,
}

/// The type of a parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum ParamType {
    Integer,
    Duration,
    String,
    Strings,
    Boolean,
}

impl ParamType {
    pub(crate) const NAMES: [&'static str; 5] =
        ["integer", "duration", "string", "strings", "boolean"];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ParamType::Integer => "integer",
            ParamType::Duration => "duration",
            ParamType::String => "string",
            ParamType::Strings => "strings",
            ParamType::Boolean => "boolean",
        }
    }
}

/// A parameter value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum ParamValue {
    Integer(i64),
    Duration(Duration),
    String(String),
    Strings(Vec<String>),
    Boolean(bool),
}

impl ParamValue {
    /// The value as a number, for ordered types (integers, and durations in seconds).
    pub(crate) fn ordinal(&self) -> Option<i64> {
        match self {
            ParamValue::Integer(i) => Some(*i),
            ParamValue::Duration(d) => Some(d.seconds()),
            _ => None,
        }
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Integer(i) => write!(f, "{i}"),
            ParamValue::Duration(d) => write!(f, "{d}"),
            ParamValue::String(s) => write!(f, "{}", crate::document::quote_for_message(s)),
            ParamValue::Strings(v) => write!(f, "[{}]", v.join(", ")),
            ParamValue::Boolean(b) => write!(f, "{b}"),
        }
    }
}

/// Which direction of an ordered parameter is the stricter one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Stricter {
    Higher,
    Lower,
}

/// `parameters.<name>`.
#[derive(Clone, Debug)]
pub(crate) struct ParamDecl {
    pub(crate) name: Text,
    pub(crate) param_type: ParamType,
    pub(crate) default: ParamValue,
    pub(crate) default_loc: Loc,
    pub(crate) minimum: Option<(i64, Loc)>,
    pub(crate) maximum: Option<(i64, Loc)>,
    pub(crate) stricter: Option<Stricter>,
    pub(crate) description: String,
}

/// A day of the week.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Day {
    pub(crate) const NAMES: [&'static str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    pub(crate) const ALL: [Day; 7] = [
        Day::Mon,
        Day::Tue,
        Day::Wed,
        Day::Thu,
        Day::Fri,
        Day::Sat,
        Day::Sun,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        Day::NAMES[self as usize]
    }
}

/// `calendars.<name>.weekly[i]`: open on `days` from `start` to `end` (minutes after midnight).
#[derive(Clone, Debug)]
pub(crate) struct WeeklyDecl {
    pub(crate) days: Vec<Day>,
    pub(crate) start: u16,
    pub(crate) end: u16,
}

/// `calendars.<name>.dates[i]`: open from `start` to `end`, civil times in the calendar's zone.
#[derive(Clone, Debug)]
pub(crate) struct DateRangeDecl {
    pub(crate) start: civil::DateTime,
    pub(crate) end: civil::DateTime,
    pub(crate) label: String,
    pub(crate) loc: Loc,
}

/// `calendars.<name>`.
#[derive(Clone, Debug)]
pub(crate) struct CalendarDecl {
    pub(crate) name: Text,
    pub(crate) timezone: Text,
    pub(crate) description: String,
    pub(crate) weekly: Vec<WeeklyDecl>,
    pub(crate) dates: Vec<DateRangeDecl>,
}

/// A `when` matcher for one field: alternatives (exact values and globs), possibly negated.
#[derive(Clone, Debug)]
pub(crate) struct MatcherDecl {
    pub(crate) field: Field,
    pub(crate) values: Vec<Text>,
    pub(crate) globs: Vec<Text>,
    pub(crate) negated: bool,
    pub(crate) loc: Loc,
}

/// `overlays[i]`.
#[derive(Clone, Debug)]
pub(crate) struct OverlayDecl {
    pub(crate) id: Text,
    pub(crate) description: String,
    pub(crate) when: Vec<MatcherDecl>,
    pub(crate) set: Vec<(Text, Option<ParamValue>)>,
    pub(crate) tighten: Vec<(Text, Option<ParamValue>)>,
}

/// Which approvals count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum KindFilter {
    Any,
    Pr,
    Production,
}

impl KindFilter {
    pub(crate) const NAMES: [&'static str; 3] = ["any", "pr", "production"];
}

/// `require.approvals`.
#[derive(Clone, Debug)]
pub(crate) struct ApprovalsDecl {
    pub(crate) min: Quantity<i64>,
    pub(crate) roles: Vec<(Text, Quantity<i64>)>,
    pub(crate) kind: KindFilter,
    pub(crate) exclude_requester: bool,
    pub(crate) exclude_releaser: bool,
    pub(crate) require_rationale: bool,
    pub(crate) loc: Loc,
}

/// A separation-of-duties rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum SodRule {
    AuthorCannotApprove,
    RequesterCannotApprove,
    ReleaserCannotApprove,
    ProductionApproverNotSolePrApprover,
    NotSoleAuthorAndReleaser,
}

impl SodRule {
    pub(crate) const NAMES: [&'static str; 5] = [
        "author_cannot_approve",
        "requester_cannot_approve",
        "releaser_cannot_approve",
        "production_approver_not_sole_pr_approver",
        "not_sole_author_and_releaser",
    ];
    pub(crate) const ALL: [SodRule; 5] = [
        SodRule::AuthorCannotApprove,
        SodRule::RequesterCannotApprove,
        SodRule::ReleaserCannotApprove,
        SodRule::ProductionApproverNotSolePrApprover,
        SodRule::NotSoleAuthorAndReleaser,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        SodRule::NAMES[self as usize]
    }
}

/// `require.checks[i]`.
#[derive(Clone, Debug)]
pub(crate) struct CheckDecl {
    pub(crate) name: Text,
    pub(crate) allow_na: bool,
}

/// `require.artifact`.
#[derive(Clone, Debug)]
pub(crate) struct ArtifactDecl {
    pub(crate) same_digest_in: Vec<Text>,
    pub(crate) immutable_version: bool,
}

/// `require.window.emergency`.
#[derive(Clone, Debug)]
pub(crate) struct EmergencyDecl {
    pub(crate) approver_roles: Vec<Text>,
    pub(crate) review_within: Quantity<Duration>,
}

/// `require.window`.
#[derive(Clone, Debug)]
pub(crate) struct WindowDecl {
    pub(crate) calendar: Option<Text>,
    pub(crate) freeze: Vec<Text>,
    pub(crate) emergency: Option<EmergencyDecl>,
    pub(crate) loc: Loc,
}

/// `require.conditions[i]`.
#[derive(Clone, Debug)]
pub(crate) struct ConditionDecl {
    pub(crate) id: Text,
    pub(crate) cel: Text,
    pub(crate) message: Option<String>,
}

/// Required evidence: names written in place or a `strings` parameter.
#[derive(Clone, Debug)]
pub(crate) enum EvidenceDecl {
    Names(Vec<Text>),
    Param(Text),
}

/// `require`.
#[derive(Clone, Debug, Default)]
pub(crate) struct RequireDecl {
    pub(crate) approvals: Option<ApprovalsDecl>,
    pub(crate) separation_of_duties: Vec<(SodRule, Loc)>,
    pub(crate) evidence: Option<(EvidenceDecl, Loc)>,
    pub(crate) checks: Vec<CheckDecl>,
    pub(crate) artifact: Option<ArtifactDecl>,
    pub(crate) window: Option<WindowDecl>,
    pub(crate) conditions: Vec<ConditionDecl>,
}

/// `overrides`.
#[derive(Clone, Debug)]
pub(crate) struct OverridesDecl {
    pub(crate) allowed_roles: Vec<Text>,
    pub(crate) require_justification: bool,
    pub(crate) max_duration: Option<Quantity<Duration>>,
}

/// `obligations[i]`.
#[derive(Clone, Debug)]
pub(crate) struct ObligationDecl {
    pub(crate) kind: Text,
    pub(crate) within: Quantity<Duration>,
    pub(crate) roles: Vec<Text>,
    pub(crate) description: String,
}

/// `policies[i]`.
#[derive(Clone, Debug)]
pub(crate) struct PolicyDecl {
    pub(crate) id: Text,
    pub(crate) description: String,
    pub(crate) when: Vec<MatcherDecl>,
    pub(crate) require: RequireDecl,
    pub(crate) require_loc: Option<Loc>,
    pub(crate) overrides: Option<OverridesDecl>,
    pub(crate) honour_exceptions: bool,
    pub(crate) obligations: Vec<ObligationDecl>,
}
