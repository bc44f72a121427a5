//! A located document tree: what a YAML or JSON text becomes before any schema is applied.
//!
//! Bundles and requests are first parsed into [`Node`]s that remember where each value and
//! each mapping key was written, then read field by field with [`reader::Reader`], which
//! builds the error paths (`policies[2].require.approvals.min`) and never stops at the first
//! error. Parsing this way, rather than deriving `Deserialize`, is what lets every error carry
//! both the path of the field and its line and column, in both formats alike.

pub(crate) mod json;
pub(crate) mod reader;
pub(crate) mod yaml;

use std::fmt;

use serde::{Deserialize, Serialize};

/// The text format of a bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// YAML 1.2 (one document; anchors allowed; duplicate keys rejected).
    Yaml,
    /// JSON (RFC 8259; duplicate keys rejected).
    Json,
}

impl Format {
    /// The format's name as recorded and accepted by the API: `yaml` or `json`.
    pub const fn name(self) -> &'static str {
        match self {
            Format::Yaml => "yaml",
            Format::Json => "json",
        }
    }

    /// The format named `name` (as [`Format::name`] writes it).
    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "yaml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            _ => None,
        }
    }

    /// Guesses the format of a bundle text: JSON when its first non-blank character is `{`,
    /// YAML otherwise (YAML flow mappings start with `{` too, but bundles are written in
    /// block style).
    pub fn detect(text: &str) -> Format {
        if text.trim_start().starts_with('{') {
            Format::Json
        } else {
            Format::Yaml
        }
    }

    /// What a mapping is called in this format's error messages.
    pub(crate) fn mapping_noun(self) -> &'static str {
        match self {
            Format::Yaml => "a mapping",
            Format::Json => "an object",
        }
    }
}

/// A position in a source text: 1-based line and column (columns count characters).
///
/// Line 0 means "unknown"; it only appears for values that were not read from a text.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Loc {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
}

impl Loc {
    /// A location.
    pub const fn new(line: u32, column: u32) -> Self {
        Loc { line, column }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// A parsed value with the location it was written at.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Node {
    pub(crate) kind: NodeKind,
    pub(crate) loc: Loc,
}

/// A mapping key with its location.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Key {
    pub(crate) name: String,
    pub(crate) loc: Loc,
}

/// The value of a [`Node`].
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum NodeKind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in document order; keys are unique (both parsers reject duplicates).
    Map(Vec<(Key, Node)>),
}

/// Longest rendering of a string value inside an error message, in characters.
const SHOWN_STRING_CHARS: usize = 40;

impl Node {
    /// How the value is shown after "got" in an error message.
    pub(crate) fn describe(&self, format: Format) -> String {
        match &self.kind {
            NodeKind::Null => "null".to_owned(),
            NodeKind::Bool(b) => b.to_string(),
            NodeKind::Int(i) => i.to_string(),
            NodeKind::Float(x) => x.to_string(),
            NodeKind::Str(s) => quote_for_message(s),
            NodeKind::Seq(_) => "a list".to_owned(),
            NodeKind::Map(_) => format.mapping_noun().to_owned(),
        }
    }
}

/// Quotes `s` JSON-style for an error message, shortening long strings.
pub(crate) fn quote_for_message(s: &str) -> String {
    let mut shown: String = s.chars().take(SHOWN_STRING_CHARS).collect();
    if shown.len() < s.len() {
        shown.push('…');
    }
    serde_json::Value::String(shown).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_shortens_long_strings_and_names_containers() {
        let long = Node {
            kind: NodeKind::Str("x".repeat(50)),
            loc: Loc::default(),
        };
        assert_eq!(
            long.describe(Format::Yaml),
            format!("\"{}…\"", "x".repeat(40))
        );
        let map = Node {
            kind: NodeKind::Map(Vec::new()),
            loc: Loc::default(),
        };
        assert_eq!(map.describe(Format::Yaml), "a mapping");
        assert_eq!(map.describe(Format::Json), "an object");
        let quote = Node {
            kind: NodeKind::Str("a\"b".to_owned()),
            loc: Loc::default(),
        };
        assert_eq!(quote.describe(Format::Json), r#""a\"b""#);
    }
}
