//! Exceptions: when a recorded exception may waive a policy's requirements.
//!
//! Exceptions are records the server injects into the request context. A policy honours them
//! only if it says `honour_exceptions: true`. An exception applies to a violated requirement
//! of a policy when it names that policy, its requirement selectors cover the requirement
//! (a selector covers itself and everything below it: `checks` covers `checks.sast`; no
//! selectors cover everything), the request is within its scope, and it is valid at `now`:
//!
//! - temporary: `expires_at` is later than `now` and `remediation_plan` is not blank;
//! - permanent: `compensating_controls` is not empty and `review_by` is later than `now`;
//! - approved by someone other than its author (the author cannot be the sole approver).

use jiff::Timestamp;

use crate::canonical::timestamp_text;
use crate::request::{ExceptionKind, ExceptionRecord, Request};

/// Why an exception cannot be used, if it cannot.
pub(crate) fn invalid_because(
    exception: &ExceptionRecord,
    request: &Request,
    now: Timestamp,
) -> Option<String> {
    if !exception.scope.contains(request) {
        return Some("the request is outside its scope".to_owned());
    }
    match exception.kind {
        ExceptionKind::Temporary => {
            match exception.expires_at {
                None => return Some("a temporary exception needs expires_at".to_owned()),
                Some(t) if t <= now => return Some(format!("it expired at {}", timestamp_text(t))),
                Some(_) => {}
            }
            if exception
                .remediation_plan
                .as_deref()
                .is_none_or(|p| p.trim().is_empty())
            {
                return Some("a temporary exception needs a remediation_plan".to_owned());
            }
        }
        ExceptionKind::Permanent => {
            if exception.compensating_controls.is_empty() {
                return Some("a permanent exception needs compensating_controls".to_owned());
            }
            match exception.review_by {
                None => return Some("a permanent exception needs a review_by date".to_owned()),
                Some(t) if t <= now => {
                    return Some(format!("its re-review was due at {}", timestamp_text(t)));
                }
                Some(_) => {}
            }
        }
    }
    if exception.approvers.is_empty() {
        return Some("it has no approvers".to_owned());
    }
    if exception
        .approvers
        .iter()
        .all(|a| a.approver == exception.author)
    {
        return Some(format!(
            "its author {} is its only approver",
            exception.author
        ));
    }
    None
}

/// Whether selector `selector` covers requirement path `requirement`.
pub(crate) fn covers(selector: &str, requirement: &str) -> bool {
    requirement == selector
        || (requirement.len() > selector.len()
            && requirement.starts_with(selector)
            && requirement.as_bytes().get(selector.len()) == Some(&b'.'))
}

/// Whether `exception` covers `requirement` (no selectors: everything).
pub(crate) fn waives(exception: &ExceptionRecord, requirement: &str) -> bool {
    exception.requirements.is_empty()
        || exception
            .requirements
            .iter()
            .any(|s| covers(s, requirement))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Context;

    fn setup(exception: &str) -> (ExceptionRecord, Request) {
        let ctx =
            Context::from_json(format!(r#"{{"exceptions": [{exception}]}}"#).as_bytes()).unwrap();
        let request = Request::from_json(
            br#"{"subject": "c", "environment": "production", "author": "alice", "repository": "acme/pay",
                "now": "2025-06-03T10:00:00Z"}"#,
        )
        .unwrap();
        (ctx.exceptions[0].clone(), request)
    }

    #[test]
    fn selectors_cover_their_subtree() {
        assert!(covers("checks", "checks.sast"));
        assert!(covers("checks.sast", "checks.sast"));
        assert!(!covers("checks.sa", "checks.sast"));
        assert!(!covers("checks.sast", "checks"));
    }

    #[test]
    fn validity_rules() {
        let base = r#""id": "E", "policy": "p", "owner_role": "R", "author": "alice""#;
        let cases = [
            (
                r#""kind": "temporary", "expires_at": "2025-07-01T00:00:00Z", "remediation_plan": "fix", "approvers": [{"approver": "bob"}]"#,
                None,
            ),
            (
                r#""kind": "temporary", "expires_at": "2025-06-01T00:00:00Z", "remediation_plan": "fix", "approvers": [{"approver": "bob"}]"#,
                Some("it expired at 2025-06-01T00:00:00Z"),
            ),
            (
                r#""kind": "temporary", "expires_at": "2025-07-01T00:00:00Z", "approvers": [{"approver": "bob"}]"#,
                Some("a temporary exception needs a remediation_plan"),
            ),
            (
                r#""kind": "temporary", "expires_at": "2025-07-01T00:00:00Z", "remediation_plan": "fix", "approvers": [{"approver": "alice"}]"#,
                Some("its author alice is its only approver"),
            ),
            (
                r#""kind": "permanent", "review_by": "2026-01-01T00:00:00Z", "compensating_controls": ["dual review"], "approvers": [{"approver": "alice"}, {"approver": "bob"}]"#,
                None,
            ),
            (
                r#""kind": "permanent", "review_by": "2026-01-01T00:00:00Z", "approvers": [{"approver": "bob"}]"#,
                Some("a permanent exception needs compensating_controls"),
            ),
            (
                r#""kind": "permanent", "review_by": "2025-01-01T00:00:00Z", "compensating_controls": ["x"], "approvers": [{"approver": "bob"}]"#,
                Some("its re-review was due at 2025-01-01T00:00:00Z"),
            ),
            (
                r#""kind": "temporary", "expires_at": "2025-07-01T00:00:00Z", "remediation_plan": "fix", "approvers": [{"approver": "bob"}], "scope": {"repository": ["other/*"]}"#,
                Some("the request is outside its scope"),
            ),
        ];
        for (fields, expected) in cases {
            let (e, r) = setup(&format!("{{{base}, {fields}}}"));
            assert_eq!(
                invalid_because(&e, &r, r.now()).as_deref(),
                expected,
                "{fields}"
            );
        }
    }
}
