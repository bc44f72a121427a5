//! Lint findings, and the checks that look at a bundle as a whole.
//!
//! The compiler reports reference and type problems as findings while it builds the IR; this
//! module adds the whole-bundle checks (unreachable and shadowed policies, unused
//! declarations). A bundle compiles exactly when it has no finding of severity
//! [`Severity::Error`]; warnings never block compilation.

// The subsumption rules compare two policies `s` and `w` field by field; short names keep them on one line.
#![allow(clippy::many_single_char_names)]

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

use crate::bundle::SourceBundle;
use crate::document::Loc;
use crate::ir::{IrAmount, IrMatcher, IrPolicy};
use crate::request::Field;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The bundle does not compile.
    Error,
    /// Compiles, but probably not what was meant.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One lint finding.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Finding {
    /// Where (line and column of the offending field).
    pub loc: Loc,
    /// Error or warning.
    pub severity: Severity,
    /// Stable, kebab-case code (listed in `docs/policy.md`).
    pub code: &'static str,
    /// Path of the offending field, e.g. `policies[1].require.approvals.roles.Securty`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}[{}]: {}: {} ({})",
            self.severity, self.code, self.path, self.message, self.loc
        )
    }
}

impl SourceBundle {
    /// Every finding for this bundle, errors and warnings, sorted by location, severity, code,
    /// path and message.
    pub fn lint(&self) -> Vec<Finding> {
        crate::compiler::analyze(self).1
    }
}

/// Collects findings.
#[derive(Default)]
pub(crate) struct Findings {
    pub(crate) items: Vec<Finding>,
}

impl Findings {
    pub(crate) fn error(
        &mut self,
        code: &'static str,
        path: impl Into<String>,
        loc: Loc,
        message: impl Into<String>,
    ) {
        self.items.push(Finding {
            loc,
            severity: Severity::Error,
            code,
            path: path.into(),
            message: message.into(),
        });
    }

    pub(crate) fn warning(
        &mut self,
        code: &'static str,
        path: impl Into<String>,
        loc: Loc,
        message: impl Into<String>,
    ) {
        self.items.push(Finding {
            loc,
            severity: Severity::Warning,
            code,
            path: path.into(),
            message: message.into(),
        });
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.items.iter().any(|f| f.severity == Severity::Error)
    }

    pub(crate) fn finish(mut self) -> Vec<Finding> {
        self.items.sort();
        self.items.dedup();
        self.items
    }
}

/// The set of values of a field that a matcher accepts, when it can be computed: always for
/// a field with a vocabulary, and for exact-value matchers otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Accepts {
    /// Exactly these values (a subset of the vocabulary if there is one).
    Values(BTreeSet<String>),
    /// Unknown statically (globs or negation over an open domain).
    Unknown,
}

/// What `m` accepts, given the field's vocabulary if declared.
pub(crate) fn accepts(
    m: &IrMatcher,
    vocabulary: Option<&[String]>,
    glob_matches: &dyn Fn(&str, &str) -> bool,
) -> Accepts {
    let hit =
        |v: &str| m.values.iter().any(|x| x == v) || m.globs.iter().any(|g| glob_matches(g, v));
    match vocabulary {
        Some(vocab) => Accepts::Values(
            vocab
                .iter()
                .filter(|v| hit(v) != m.negated)
                .cloned()
                .collect(),
        ),
        None if m.globs.is_empty() && !m.negated => {
            Accepts::Values(m.values.iter().cloned().collect())
        }
        None => Accepts::Unknown,
    }
}

/// Whether every request matched by `inner` is matched by `outer` (conservative: `false`
/// when it cannot be shown).
pub(crate) fn when_covers(
    outer: &[IrMatcher],
    inner: &[IrMatcher],
    vocabulary: &dyn Fn(Field) -> Option<Vec<String>>,
    glob_matches: &dyn Fn(&str, &str) -> bool,
) -> bool {
    outer.iter().all(|o| {
        let Some(i) = inner.iter().find(|i| i.field == o.field) else {
            // `inner` does not constrain a field `outer` constrains.
            return false;
        };
        if o == i {
            return true;
        }
        let field = Field::parse(o.field);
        let vocab = field.and_then(vocabulary);
        match (
            accepts(o, vocab.as_deref(), glob_matches),
            accepts(i, vocab.as_deref(), glob_matches),
        ) {
            (Accepts::Values(ov), Accepts::Values(iv)) => iv.is_subset(&ov),
            (Accepts::Unknown, Accepts::Values(iv)) if !o.negated => iv
                .iter()
                .all(|v| o.values.contains(v) || o.globs.iter().any(|g| glob_matches(g, v))),
            _ => false,
        }
    })
}

/// Whether policy `weaker`'s requirements are all implied by `stronger`'s, so that `weaker`
/// never blocks a request `stronger` lets through, and cannot be overridden or excepted
/// separately in a way that matters (conservative: `false` when unsure).
pub(crate) fn requirements_implied(stronger: &IrPolicy, weaker: &IrPolicy) -> bool {
    let s = &stronger.require;
    let w = &weaker.require;
    let approvals_ok = match (&s.approvals, &w.approvals) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(a), Some(b)) => {
            let amount_le = |x: &IrAmount, y: &IrAmount| match (x, y) {
                (IrAmount::Int(x), IrAmount::Int(y)) => x <= y,
                _ => x == y,
            };
            a.kind == b.kind
                && (a.exclude_requester || !b.exclude_requester)
                && (a.exclude_releaser || !b.exclude_releaser)
                && (a.require_rationale || !b.require_rationale)
                && amount_le(&b.min, &a.min)
                && b.roles
                    .iter()
                    .all(|(role, n)| a.roles.get(role).is_some_and(|m| amount_le(n, m)))
        }
    };
    let sod_ok = w
        .separation_of_duties
        .iter()
        .all(|r| s.separation_of_duties.contains(r));
    let evidence_ok = match (&s.evidence, &w.evidence) {
        (_, None) => true,
        (Some(crate::ir::IrEvidence::Names(a)), Some(crate::ir::IrEvidence::Names(b))) => {
            b.iter().all(|x| a.contains(x))
        }
        (Some(a), Some(b)) => a == b,
        (None, Some(_)) => false,
    };
    let checks_ok = w.checks.iter().all(|c| {
        s.checks
            .iter()
            .any(|d| d.name == c.name && (c.allow_na || !d.allow_na))
    });
    let artifact_ok = match (&s.artifact, &w.artifact) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(a), Some(b)) => {
            (a.immutable_version || !b.immutable_version)
                && b.same_digest_in
                    .iter()
                    .all(|e| a.same_digest_in.contains(e))
        }
    };
    let window_ok = w.window.is_none() || w.window == s.window;
    let conditions_ok = w
        .conditions
        .iter()
        .all(|c| s.conditions.iter().any(|d| d.cel == c.cel));
    let side_ok = !stronger.honour_exceptions
        && (stronger.overrides.is_none() || stronger.overrides == weaker.overrides)
        && weaker.obligations.is_empty();
    approvals_ok
        && sod_ok
        && evidence_ok
        && checks_ok
        && artifact_ok
        && window_ok
        && conditions_ok
        && side_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(field: &'static str, values: &[&str], globs: &[&str], negated: bool) -> IrMatcher {
        IrMatcher {
            field,
            values: values.iter().map(|s| (*s).to_owned()).collect(),
            globs: globs.iter().map(|s| (*s).to_owned()).collect(),
            negated,
        }
    }

    fn glob(pattern: &str, value: &str) -> bool {
        crate::request::compile_glob(pattern).is_ok_and(|g| g.is_match(value))
    }

    #[test]
    fn coverage_of_when_clauses() {
        let none = |_: Field| None;
        let vocab =
            |f: Field| (f == Field::Environment).then(|| vec!["dev".to_owned(), "prod".to_owned()]);
        let env_prod = [m("environment", &["prod"], &[], false)];
        let env_any_of = [m("environment", &["dev", "prod"], &[], false)];
        let env_not_dev = [m("environment", &["dev"], &[], true)];
        assert!(when_covers(&[], &env_prod, &none, &glob));
        assert!(!when_covers(&env_prod, &[], &none, &glob));
        assert!(when_covers(&env_any_of, &env_prod, &none, &glob));
        assert!(!when_covers(&env_prod, &env_any_of, &none, &glob));
        assert!(
            !when_covers(&env_not_dev, &env_prod, &none, &glob),
            "open domain: unknown"
        );
        assert!(
            when_covers(&env_not_dev, &env_prod, &vocab, &glob),
            "vocabulary closes the domain"
        );
        let release = [m("branch", &[], &["release/*"], false)];
        let release_one = [m("branch", &["release/1.2"], &[], false)];
        assert!(when_covers(&release, &release_one, &none, &glob));
        assert!(!when_covers(&release_one, &release, &none, &glob));
    }

    #[test]
    fn accepts_respects_the_vocabulary() {
        let vocab = vec!["dev".to_owned(), "staging".to_owned()];
        let typo = m("environment", &["prod"], &[], false);
        assert_eq!(
            accepts(&typo, Some(&vocab), &glob),
            Accepts::Values(BTreeSet::new())
        );
        let all_but = m("environment", &["dev", "staging"], &[], true);
        assert_eq!(
            accepts(&all_but, Some(&vocab), &glob),
            Accepts::Values(BTreeSet::new())
        );
        assert_eq!(accepts(&all_but, None, &glob), Accepts::Unknown);
    }
}
