//! Data-driven tests of bundle parse errors: each case is a bundle text and the exact errors
//! it must produce, each with its path, line and column.

use vouch_query::{Format, SourceBundle};

/// Parses `text` and returns the rendered errors (or panics if it parses).
fn errors(text: &str, format: Format) -> Vec<String> {
    match SourceBundle::parse(text, format) {
        Ok(_) => panic!("expected parse errors for:\n{text}"),
        Err(e) => e.errors.iter().map(ToString::to_string).collect(),
    }
}

/// The cases: (name, YAML text, expected errors in order).
const YAML_CASES: &[(&str, &str, &[&str])] = &[
    (
        "wrong type with path",
        "version: 1
name: t
roles: [Security]
policies:
  - id: a
  - id: b
  - id: c
    require:
      approvals:
        min: two
",
        &[
            "policies[2].require.approvals.min: expected an integer, got \"two\" (line 10, column 14)",
        ],
    ),
    (
        "unknown field with suggestion",
        "version: 1
name: t
polices: []
",
        &[
            "missing required field \"policies\" (line 1, column 1)",
            "polices: unknown field \"polices\"; did you mean \"policies\"? (line 3, column 1)",
        ],
    ),
    (
        "unknown field lists the known ones",
        "version: 1
name: t
policies:
  - id: a
    require:
      colour: red
",
        &[
            "policies[0].require.colour: unknown field \"colour\"; expected one of: approvals, separation_of_duties, evidence, checks, artifact, window, conditions (line 6, column 7)",
        ],
    ),
    (
        "missing version",
        "name: t
policies: []
",
        &["missing required field \"version\" (line 1, column 1)"],
    ),
    (
        "unsupported version",
        "version: 2
name: t
policies: []
",
        &["version: unsupported bundle version 2; this build reads version 1 (line 1, column 10)"],
    ),
    (
        "quoted number is a string",
        "version: \"1\"
name: t
policies: []
",
        &["version: expected an integer, got \"1\" (line 1, column 10)"],
    ),
    (
        "duplicate policy id",
        "version: 1
name: t
policies:
  - id: prod
  - id: prod
",
        &[
            "policies[1].id: duplicate policy id \"prod\" (first declared at policies[0]) (line 5, column 9)",
        ],
    ),
    (
        "bad duration and bad time of day",
        "version: 1
name: t
calendars:
  office:
    timezone: Europe/Berlin
    weekly:
      - days: [mon, fry]
        start: 9am
        end: \"17:00\"
policies:
  - id: p
    overrides:
      allowed_roles: [ReleaseManager]
      max_duration: 24 hours
",
        &[
            "calendars.office.weekly[0].days[1]: expected one of \"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\", got \"fry\"; did you mean \"fri\"? (line 7, column 21)",
            "calendars.office.weekly[0].start: expected a time of day \"HH:MM\" (00:00 to 23:59), got \"9am\" (line 8, column 16)",
            "policies[0].overrides.max_duration: expected a duration such as \"30m\", \"24h\" or \"1d12h\" (units d, h, m, s in that order), got \"24 hours\" (line 14, column 21)",
        ],
    ),
    (
        "window crossing midnight",
        "version: 1
name: t
calendars:
  night:
    timezone: UTC
    weekly:
      - {days: [sat], start: \"22:00\", end: \"02:00\"}
policies: []
",
        &[
            "calendars.night.weekly[0].end: must be later than start (split windows that cross midnight in two) (line 7, column 44)",
        ],
    ),
    (
        "unknown separation-of-duties rule",
        "version: 1
name: t
policies:
  - id: p
    require:
      separation_of_duties: [author_cannot_aprove]
",
        &[
            "policies[0].require.separation_of_duties[0]: expected one of \"author_cannot_approve\", \"requester_cannot_approve\", \"releaser_cannot_approve\", \"production_approver_not_sole_pr_approver\", \"not_sole_author_and_releaser\", got \"author_cannot_aprove\"; did you mean \"author_cannot_approve\"? (line 6, column 30)",
        ],
    ),
    (
        "window needs a calendar or a freeze",
        "version: 1
name: t
policies:
  - id: p
    require:
      window:
        emergency: {review_within: 24h}
",
        &[
            "policies[0].require.window: a window needs a calendar, a freeze list, or both (line 7, column 9)",
        ],
    ),
    (
        "nested not",
        "version: 1
name: t
policies:
  - id: p
    when:
      environment: {not: {not: dev}}
",
        &["policies[0].when.environment.not: \"not\" cannot be nested (line 6, column 26)"],
    ),
    (
        "matcher of the wrong type",
        "version: 1
name: t
policies:
  - id: p
    when:
      risk: 3
",
        &[
            "policies[0].when.risk: expected a string, a list of alternatives, {glob: ...} or {not: ...}, got 3 (line 6, column 13)",
        ],
    ),
    (
        "invalid identifiers and names",
        "version: 1
name: \" t\"
parameters:
  MinApprovals: {type: integer, default: 1}
policies:
  - id: prod high
",
        &[
            "name: \" t\" has leading or trailing whitespace (line 2, column 7)",
            "parameters.MinApprovals: \"MinApprovals\" is not a valid parameter name (lowercase letters, digits and '_', not starting with a digit) (line 4, column 3)",
            "policies[0].id: \"prod high\" is not a valid identifier (letters, digits, '.', '_' and '-', starting with a letter or digit, at most 128 characters) (line 6, column 9)",
        ],
    ),
    (
        "parameter default of the wrong type",
        "version: 1
name: t
parameters:
  review: {type: duration, default: 3}
  flag: {type: boolean, default: yes}
policies: []
",
        &[
            "parameters.review.default: expected a string, got 3 (line 4, column 37)",
            "parameters.flag.default: expected true or false, got \"yes\" (line 5, column 34)",
        ],
    ),
    (
        "override roles must not be empty",
        "version: 1
name: t
policies:
  - id: p
    overrides: {allowed_roles: []}
",
        &[
            "policies[0].overrides.allowed_roles: must name at least one role (omit overrides to forbid them) (line 5, column 32)",
        ],
    ),
    (
        "duplicate YAML key",
        "version: 1
name: t
name: u
policies: []
",
        &["invalid YAML: duplicate key \"name\" (line 3, column 1)"],
    ),
    (
        "YAML syntax error",
        "version: 1
policies: [
",
        &["invalid YAML: unclosed bracket '[' (line 2, column 11)"],
    ),
    (
        "empty document",
        "",
        &["the bundle is empty (line 1, column 1)"],
    ),
    (
        "a list where a mapping belongs",
        "- version: 1
",
        &["expected a mapping, got a list (line 1, column 1)"],
    ),
];

#[test]
fn yaml_errors_are_located_with_paths() {
    let mut failures = Vec::new();
    for (name, text, expected) in YAML_CASES {
        let actual = errors(text, Format::Yaml);
        if actual != *expected {
            failures.push(format!(
                "case {name:?}\n  expected: {expected:#?}\n  actual:   {actual:#?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn json_errors_are_located_with_paths() {
    let cases: &[(&str, &[&str])] = &[
        (
            "{\"version\": 1, \"name\": \"t\", \"policies\": [{\"id\": \"p\", \"require\": {\"approvals\": {\"min\": \"2\"}}}]}",
            &[
                "policies[0].require.approvals.min: expected an integer, got \"2\" (line 1, column 87)",
            ],
        ),
        (
            "{\"version\": 1, \"name\": \"t\", \"policies\": {}}",
            &["policies: expected a list, got an object (line 1, column 41)"],
        ),
        (
            "{\"version\": 1, \"name\": \"t\",\n \"policies\": [], \"policies\": []}",
            &["invalid JSON: duplicate key \"policies\" (line 2, column 18)"],
        ),
        (
            "{\"version\": 1,}",
            &["invalid JSON: expected a string key (line 1, column 15)"],
        ),
        (
            "{\"version\": 1, \"name\": \"t\", \"settings\": {\"strict\": \"no\"}, \"policies\": []}",
            &["settings.strict: expected true or false, got \"no\" (line 1, column 52)"],
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(errors(text, Format::Json), *expected, "{text}");
    }
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let text = "version: 1
name: t
policies:
  - id: a
    require:
      approvals: {min: -1, kind: prod}
      evidence: ticket
  - id: b
    honour_exceptions: sometimes
";
    assert_eq!(
        errors(text, Format::Yaml),
        vec![
            "policies[0].require.approvals.min: expected an integer from 0 to 9223372036854775807, got -1 (line 6, column 24)",
            "policies[0].require.approvals.kind: expected one of \"any\", \"pr\", \"production\", got \"prod\" (line 6, column 34)",
            "policies[0].require.evidence: expected a list, got \"ticket\" (line 7, column 17)",
            "policies[1].honour_exceptions: expected true or false, got \"sometimes\" (line 9, column 24)",
        ]
    );
}

#[test]
fn oversized_bundles_are_rejected_before_parsing() {
    let text = format!(
        "version: 1\nname: t\npolicies: []\n#{}\n",
        "x".repeat(1 << 20)
    );
    assert_eq!(
        errors(&text, Format::Yaml),
        vec![format!(
            "bundle too large: {} bytes (at most 1048576) (line 1, column 1)",
            text.len()
        )]
    );
}

#[test]
fn yaml_and_json_spellings_of_a_bundle_parse_alike() {
    let yaml = "version: 1\nname: t\nroles: [QA]\npolicies:\n  - id: p\n    when: {environment: production}\n    require:\n      approvals: {min: 1, roles: {QA: 1}}\n";
    let json = r#"{"policies": [{"require": {"approvals": {"roles": {"QA": 1}, "min": 1}}, "when": {"environment": "production"}, "id": "p"}], "roles": ["QA"], "name": "t", "version": 1}"#;
    let a = vouch_query::compile(&SourceBundle::parse(yaml, Format::Yaml).unwrap()).unwrap();
    let b = vouch_query::compile(&SourceBundle::parse(json, Format::Json).unwrap()).unwrap();
    assert_eq!(a.canonical_bytes(), b.canonical_bytes());
    assert_eq!(a.hash(), b.hash());
}
