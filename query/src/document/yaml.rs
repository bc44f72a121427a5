//! YAML to [`Node`], through `serde-saphyr`.
//!
//! `serde-saphyr` is a maintained YAML 1.2 deserializer (the successor line to the
//! unmaintained `serde_yaml`) whose `Spanned<T>` wrapper yields the line and column of every
//! value, mapping keys included. It also rejects duplicate keys and multiple documents, and
//! bounds alias expansion. Booleans are restricted to the YAML 1.2 core spellings, so `yes`
//! and `no` stay strings.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use super::json::SyntaxError;
use super::{Key, Loc, Node, NodeKind};

/// Deepest nesting of sequences and mappings accepted.
pub(crate) const MAX_DEPTH: usize = 24;

/// Parses one YAML document from `text`.
pub(crate) fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut options = serde_saphyr::options::Options::default();
    options.with_snippet = false;
    options.strict_booleans = true;
    // Deserialising recurses once per level, with large frames: bound the nesting well below
    // what a 2 MiB thread stack holds, so no document can overflow it.
    let mut budget = serde_saphyr::budget::Budget::default();
    budget.max_depth = MAX_DEPTH;
    options.budget = Some(budget);
    match serde_saphyr::from_str_with_options::<Spanned<Value>>(text, options) {
        Ok(spanned) => Ok(into_node(spanned)),
        Err(e) => {
            let loc = e.location().map_or(Loc::new(1, 1), |l| to_loc(&l));
            Err(SyntaxError {
                message: clean_message(&e.to_string()),
                loc,
            })
        }
    }
}

/// Drops the location suffix `serde-saphyr` appends (we print our own) and advice that only
/// makes sense to a programmer using the library.
fn clean_message(raw: &str) -> String {
    let mut msg = raw;
    if let Some(i) = msg.rfind(" at line ") {
        msg = &msg[..i];
    }
    if msg.starts_with("budget breached: Depth") || msg.starts_with("recursion limit exceeded") {
        return format!("nesting deeper than {MAX_DEPTH} levels");
    }
    if let Some(key) = msg.strip_prefix("duplicate mapping key: ") {
        let key = key.split(", set DuplicateKeyPolicy").next().unwrap_or(key);
        return format!("duplicate key {}", super::quote_for_message(key));
    }
    msg.to_owned()
}

fn to_loc(l: &serde_saphyr::Location) -> Loc {
    let clamp = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    Loc::new(clamp(l.line()), clamp(l.column()))
}

fn into_node(spanned: Spanned<Value>) -> Node {
    let loc = to_loc(&spanned.referenced);
    let kind = match spanned.value {
        Value::Null => NodeKind::Null,
        Value::Bool(b) => NodeKind::Bool(b),
        Value::Int(i) => NodeKind::Int(i),
        Value::Float(x) => NodeKind::Float(x),
        Value::Str(s) => NodeKind::Str(s),
        Value::Seq(items) => NodeKind::Seq(items.into_iter().map(into_node).collect()),
        Value::Map(entries) => NodeKind::Map(
            entries
                .into_iter()
                .map(|(k, v)| {
                    let key = Key {
                        loc: to_loc(&k.referenced),
                        name: k.value,
                    };
                    (key, into_node(v))
                })
                .collect(),
        ),
    };
    Node { kind, loc }
}

/// The untyped YAML value, with a span on every child.
enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Value>>),
    Map(Vec<(Spanned<String>, Spanned<Value>)>),
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        // Out-of-range integers are kept as floats so the schema can say "out of range".
        #[allow(clippy::cast_precision_loss)] // Only reached for values above i64::MAX.
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }

    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        #[allow(clippy::cast_precision_loss)] // Only reached for values outside i64.
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }

    fn visit_u128<E>(self, v: u128) -> Result<Value, E> {
        #[allow(clippy::cast_precision_loss)] // Only reached for values outside i64.
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Value, E> {
        Err(E::custom("binary values are not supported"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Value>>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let value = map.next_value::<Spanned<Value>>()?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_follow_yaml_1_2_core() {
        let node =
            parse("a: two\nb: \"2\"\nc: yes\nd: 2\ne: ~\nf: 1.5\ng: true\nh: 09:00\n").unwrap();
        let NodeKind::Map(entries) = node.kind else {
            panic!("expected a mapping")
        };
        let kinds: Vec<NodeKind> = entries.into_iter().map(|(_, v)| v.kind).collect();
        assert_eq!(
            kinds,
            vec![
                NodeKind::Str("two".into()),
                NodeKind::Str("2".into()),
                NodeKind::Str("yes".into()),
                NodeKind::Int(2),
                NodeKind::Null,
                NodeKind::Float(1.5),
                NodeKind::Bool(true),
                NodeKind::Str("09:00".into()),
            ]
        );
    }

    #[test]
    fn keys_and_values_are_located() {
        let node = parse("policies:\n  - id: a\n    when: {env: prod}\n").unwrap();
        let NodeKind::Map(top) = node.kind else {
            panic!("expected a mapping")
        };
        assert_eq!(top[0].0.loc, Loc::new(1, 1));
        let NodeKind::Seq(items) = &top[0].1.kind else {
            panic!("expected a list")
        };
        let NodeKind::Map(policy) = &items[0].kind else {
            panic!("expected a mapping")
        };
        assert_eq!(policy[0].0.loc, Loc::new(2, 5));
        assert_eq!(policy[0].1.loc, Loc::new(2, 9));
        assert_eq!(policy[1].0.loc, Loc::new(3, 5));
    }

    #[test]
    fn syntax_errors_are_located_and_cleaned() {
        let e = parse("a: [1, 2\n").unwrap_err();
        assert_eq!(
            (e.message.as_str(), e.loc),
            ("unclosed bracket '['", Loc::new(1, 4))
        );
        let e = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!(
            (e.message.as_str(), e.loc),
            ("duplicate key \"a\"", Loc::new(2, 1))
        );
        let e = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(e.loc, Loc::new(3, 1));
    }

    #[test]
    fn deep_nesting_is_refused_before_it_can_overflow_the_stack() {
        let deep = format!("{}1{}", "[".repeat(25), "]".repeat(25));
        assert_eq!(
            parse(&deep).unwrap_err().message,
            "nesting deeper than 24 levels"
        );
        let ok = format!("{}1{}", "[".repeat(24), "]".repeat(24));
        assert!(parse(&ok).is_ok());
        assert_eq!(
            parse(&"[".repeat(100_000)).unwrap_err().message,
            "nesting deeper than 24 levels"
        );
    }

    #[test]
    fn huge_integers_become_floats() {
        let node = parse("99999999999999999999").unwrap();
        assert!(matches!(node.kind, NodeKind::Float(_)), "{node:?}");
    }
}
