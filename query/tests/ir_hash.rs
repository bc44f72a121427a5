//! Known-answer test for the canonical IR and its hash, as documented in `docs/policy.md`.

use vouch_query::{Format, SourceBundle, compile};

#[test]
fn the_documented_example_hashes_as_documented() {
    let text = "version: 1
name: example
roles: [Security]
policies:
  - id: prod-approvals
    when:
      environment: production
    require:
      approvals:
        min: 2
        roles: {Security: 1}
";
    let bundle = compile(&SourceBundle::parse(text, Format::Yaml).unwrap()).unwrap();
    let expected = r#"{"bundle_version":1,"calendars":{},"description":"","ir_version":1,"name":"example","overlays":[],"parameters":{},"policies":[{"description":"","honour_exceptions":false,"id":"prod-approvals","obligations":[],"overrides":null,"require":{"approvals":{"exclude_releaser":false,"exclude_requester":true,"kind":"any","min":2,"require_rationale":false,"roles":{"Security":1}},"artifact":null,"checks":[],"conditions":[],"evidence":null,"separation_of_duties":[],"window":null},"when":[{"field":"environment","globs":[],"negated":false,"values":["production"]}]}],"roles":["Security"],"strict":true,"vocabulary":{}}"#;
    assert_eq!(
        String::from_utf8(bundle.canonical_bytes().to_vec()).unwrap(),
        expected
    );
    assert_eq!(
        bundle.hash(),
        "sha256:ff2bfc2efcedf6bfac9235d5908bacd4a9d8e4f28dbce616ab7e8dbb4f2197aa"
    );
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/policy.md")).unwrap();
    assert!(
        docs.contains(expected) && docs.contains(bundle.hash()),
        "docs/policy.md shows another example"
    );
}
