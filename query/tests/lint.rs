//! One test per lint finding: a small bundle that has the problem, and the exact finding.

use vouch_query::{Format, Severity, SourceBundle, compile};

const HEADER: &str = "version: 1\nname: t\nroles: [Security, ReleaseManager]\n";

/// Lints `HEADER` + `rest` and returns the findings rendered, asserting that compilation fails
/// exactly when there is an error-severity finding.
fn lint(rest: &str) -> Vec<String> {
    let text = format!("{HEADER}{rest}");
    let source = SourceBundle::parse(&text, Format::Yaml).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let findings = source.lint();
    let has_errors = findings.iter().any(|f| f.severity == Severity::Error);
    assert_eq!(
        compile(&source).is_err(),
        has_errors,
        "compile and lint disagree:\n{text}"
    );
    findings.iter().map(ToString::to_string).collect()
}

/// Asserts that the findings include exactly `expected` (other findings are allowed only if
/// listed too: the list must match in full).
fn assert_findings(rest: &str, expected: &[&str]) {
    assert_eq!(lint(rest), expected, "bundle:\n{rest}");
}

#[test]
fn a_clean_bundle_has_no_findings() {
    assert_findings(
        "policies:\n  - id: p\n    when: {environment: production}\n    require:\n      approvals: {min: 1, roles: {Security: 1}}\n",
        &[],
    );
}

#[test]
fn undeclared_role() {
    assert_findings(
        "policies:\n  - id: p\n    require:\n      approvals: {min: 1, roles: {Securty: 1}}\n",
        &[
            "error[undeclared-role]: policies[0].require.approvals.roles.Securty: role \"Securty\" is not declared in roles; did you mean \"Security\"? (line 7, column 35)",
        ],
    );
}

#[test]
fn unknown_parameter_and_type_mismatch() {
    assert_findings(
        "parameters:\n  window_hours: {type: duration, default: 4h}\npolicies:\n  - id: p\n    require:\n      approvals: {min: {param: min_aprovals}}\n  - id: q\n    require:\n      approvals: {min: {param: window_hours}}\n",
        &[
            "error[unknown-parameter]: policies[0].require.approvals.min: unknown parameter \"min_aprovals\"; declared: window_hours (line 9, column 32)",
            "error[parameter-type-mismatch]: policies[1].require.approvals.min: parameter \"window_hours\" is of type duration, but type integer is needed here (line 12, column 32)",
        ],
    );
}

#[test]
fn parameter_bounds() {
    assert_findings(
        "parameters:\n  n: {type: integer, default: 12, minimum: 5, maximum: 3}\npolicies:\n  - id: p\n    require:\n      approvals: {min: {param: n}}\n",
        &[
            "error[parameter-out-of-range]: parameters.n.default: 12 is above the maximum 3 of parameter \"n\" (line 5, column 31)",
            "error[invalid-parameter-bounds]: parameters.n.minimum: minimum 5 is greater than maximum 3 (line 5, column 44)",
        ],
    );
}

#[test]
fn overlays_tighten_only_directed_parameters() {
    assert_findings(
        "parameters:\n  n: {type: integer, default: 2}\n  m: {type: integer, default: 2, stricter: higher}\noverlays:\n  - id: o\n    when: {service: payments}\n    tighten: {n: 3, m: 1}\npolicies:\n  - id: p\n    require:\n      approvals: {min: {param: n}, roles: {Security: {param: m}}}\n",
        &[
            "error[tighten-without-direction]: overlays[0].tighten.n: parameter \"n\" declares no stricter direction (add stricter: higher or lower), so it can only be set (line 10, column 15)",
            "warning[ineffective-tighten]: overlays[0].tighten.m: 1 is not stricter than the default 2 of \"m\"; tighten never loosens, so this has no effect on its own (line 10, column 21)",
        ],
    );
}

#[test]
fn unknown_calendar_and_time_zone() {
    assert_findings(
        "calendars:\n  office:\n    timezone: Europe/Berlyn\n    weekly: [{days: [mon], start: \"09:00\", end: \"17:00\"}]\npolicies:\n  - id: p\n    require:\n      window: {calendar: ofice}\n",
        &[
            "warning[unused-calendar]: calendars.office: calendar \"office\" is never used (line 5, column 3)",
            "error[unknown-time-zone]: calendars.office.timezone: \"Europe/Berlyn\" is not an IANA time zone name (e.g. \"Europe/Berlin\") (line 6, column 15)",
            "error[unknown-calendar]: policies[0].require.window.calendar: unknown calendar \"ofice\"; did you mean \"office\"? (line 11, column 26)",
        ],
    );
}

#[test]
fn invalid_glob() {
    assert_findings(
        "policies:\n  - id: p\n    when: {branch: {glob: \"release/[0-9\"}}\n    require:\n      checks: [lint]\n",
        &[
            "error[invalid-glob]: policies[0].when.branch: invalid glob \"release/[0-9\": unclosed character class; missing ']' (line 6, column 27)",
        ],
    );
}

#[test]
fn cel_findings() {
    let condition = |cel: &str| {
        format!(
            "policies:\n  - id: p\n    require:\n      conditions:\n        - id: c\n          cel: '{cel}'\n"
        )
    };
    let cases = [
        ("risk ==", "cel-syntax"),
        ("rsik == \"high\"", "cel-unknown-variable"),
        ("artifact.digset == \"\"", "cel-unknown-field"),
        ("params.nope == 1", "cel-unknown-field"),
        (
            "timestamp(\"2025-01-01T00:00:00Z\") > now",
            "cel-unknown-function",
        ),
        ("checks.all(k, k != \"\")", "cel-map-iteration"),
        ("((((((((((((((true))))))))))))))", "cel-too-complex"),
    ];
    for (cel, code) in cases {
        let findings = lint(&condition(cel));
        assert_eq!(findings.len(), 1, "{cel}: {findings:?}");
        assert!(
            findings[0].starts_with(&format!(
                "error[{code}]: policies[0].require.conditions[0].cel: "
            )),
            "{cel}: {findings:?}"
        );
        assert!(
            findings[0].ends_with("(line 9, column 16)"),
            "{cel}: {findings:?}"
        );
    }
    assert_eq!(
        lint(&condition("rsik == \"high\"")),
        [
            "error[cel-unknown-variable]: policies[0].require.conditions[0].cel: unknown variable \"rsik\"; did you mean \"risk\"? (at line 1, column 1 of the expression) (line 9, column 16)"
        ]
    );
}

#[test]
fn vocabulary_checks_names() {
    assert_findings(
        "vocabulary:\n  evidence: [ticket]\n  checks: [lint]\n  environment: [staging, production]\npolicies:\n  - id: p\n    require:\n      evidence: [tiket]\n      checks: [lnt]\n      artifact: {same_digest_in: [stagin]}\n",
        &[
            "error[unknown-evidence]: policies[0].require.evidence[0]: \"tiket\" is not in vocabulary.evidence; did you mean \"ticket\"? (line 11, column 18)",
            "error[unknown-check]: policies[0].require.checks[0]: \"lnt\" is not in vocabulary.checks; did you mean \"lint\"? (line 12, column 16)",
            "error[unknown-environment]: policies[0].require.artifact.same_digest_in[0]: \"stagin\" is not in vocabulary.environment; did you mean \"staging\"? (line 13, column 35)",
        ],
    );
}

#[test]
fn unsatisfiable_approvals() {
    assert_findings(
        "policies:\n  - id: p\n    require:\n      approvals: {min: 65}\n",
        &[
            "error[unsatisfiable-approvals]: policies[0].require.approvals.min: 65 approvals can never be given: a request carries at most 64 (line 7, column 24)",
        ],
    );
}

#[test]
fn unreachable_policy_and_overlay() {
    assert_findings(
        "vocabulary:\n  environment: [dev, staging, production]\nparameters:\n  n: {type: integer, default: 1, stricter: higher}\noverlays:\n  - id: o\n    when: {environment: prod}\n    tighten: {n: 2}\npolicies:\n  - id: p\n    when: {environment: prod}\n    require:\n      approvals: {min: {param: n}}\n  - id: q\n    when: {risk: []}\n    require:\n      approvals: {min: 1}\n",
        &[
            "warning[unreachable-overlay]: overlays[0].when.environment: overlay \"o\" can never apply: no environment value matches (line 10, column 25)",
            "error[unreachable-policy]: policies[0].when.environment: policy \"p\" can never match: no value in vocabulary.environment (dev, production, staging) matches (line 14, column 25)",
            "error[unreachable-policy]: policies[1].when.risk: policy \"q\" can never match: no risk value matches (line 18, column 18)",
        ],
    );
}

#[test]
fn shadowed_policy() {
    assert_findings(
        "policies:\n  - id: broad\n    when: {environment: [staging, production]}\n    require:\n      approvals: {min: 2, roles: {Security: 1}}\n      checks: [lint, test]\n  - id: narrow\n    when: {environment: production, service: api}\n    require:\n      approvals: {min: 1}\n      checks: [lint]\n  - id: stricter\n    when: {environment: production}\n    require:\n      approvals: {min: 3}\n",
        &[
            "warning[shadowed-policy]: policies[1]: policy \"narrow\" is shadowed by \"broad\": \"broad\" applies to every request \"narrow\" matches and requires at least as much, so \"narrow\" never changes a decision (line 10, column 9)",
        ],
    );
}

#[test]
fn empty_policy_and_unused_parameter() {
    assert_findings(
        "parameters:\n  n: {type: integer, default: 1}\npolicies:\n  - id: p\n    when: {environment: production}\n",
        &[
            "warning[unused-parameter]: parameters.n: parameter \"n\" is never used (line 5, column 3)",
            "warning[empty-policy]: policies[0]: policy \"p\" requires nothing: every request it matches is allowed (line 7, column 9)",
        ],
    );
}

#[test]
fn calendar_never_open() {
    assert_findings(
        "calendars:\n  never:\n    timezone: UTC\npolicies:\n  - id: p\n    require:\n      window: {calendar: never}\n",
        &[
            "warning[calendar-never-open]: policies[0].require.window.calendar: calendar \"never\" has no weekly windows and no dates: changes are always outside it (line 10, column 15)",
        ],
    );
}

#[test]
fn contradictory_window() {
    assert_findings(
        "calendars:\n  office:\n    timezone: UTC\n    weekly: [{days: [mon], start: \"09:00\", end: \"17:00\"}]\npolicies:\n  - id: p\n    require:\n      window: {calendar: office, freeze: [office]}\n",
        &[
            "error[contradictory-window]: policies[0].require.window.freeze: calendar \"office\" is both the change window and a freeze: no time is inside one and outside the other (line 11, column 15)",
        ],
    );
}
