//! Typed, strict reading of a [`Node`] tree, collecting every error with its path.
//!
//! Each reading function takes the path of the value it reads and returns `None` after
//! recording an error, so a caller can keep reading siblings and report all problems of a
//! document at once rather than only the first.

use std::fmt;

use super::{Format, Key, Loc, Node, NodeKind, quote_for_message};

/// One problem found while reading a document: where it is and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldError {
    /// Location of the offending value or key (or of the enclosing mapping for a missing field).
    pub loc: Loc,
    /// Path of the field, e.g. `policies[2].require.approvals.min`; empty for the whole document.
    pub path: String,
    /// What is wrong, lowercase, without a trailing period.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{} ({})", self.message, self.loc)
        } else {
            write!(f, "{}: {} ({})", self.path, self.message, self.loc)
        }
    }
}

/// The path of child `key` under `path`.
pub(crate) fn child(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !key.starts_with(|c: char| c.is_ascii_digit());
    match (path.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{}]", quote_for_message(key)),
    }
}

/// The path of item `index` under `path`.
pub(crate) fn item(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

/// A string value with the location it was written at.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Text {
    pub(crate) value: String,
    pub(crate) loc: Loc,
}

/// Reads nodes against a schema, collecting [`FieldError`]s.
pub(crate) struct Reader {
    pub(crate) format: Format,
    pub(crate) errors: Vec<FieldError>,
    /// Longest string accepted anywhere, in bytes.
    pub(crate) max_string_bytes: usize,
}

/// The fields of a mapping that passed the unknown-field check.
pub(crate) struct Fields<'n> {
    pub(crate) entries: &'n [(Key, Node)],
    pub(crate) loc: Loc,
    pub(crate) path: String,
}

impl<'n> Fields<'n> {
    /// The value of field `name`, if present.
    pub(crate) fn get(&self, name: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == name)
            .map(|(_, v)| v)
    }

    /// The path of field `name`.
    pub(crate) fn path_of(&self, name: &str) -> String {
        child(&self.path, name)
    }

    /// The value of field `name`, recording an error if it is absent.
    pub(crate) fn required(&self, reader: &mut Reader, name: &str) -> Option<&'n Node> {
        let found = self.get(name);
        if found.is_none() {
            reader.error(
                &self.path,
                self.loc,
                format!("missing required field \"{name}\""),
            );
        }
        found
    }
}

impl Reader {
    pub(crate) fn new(format: Format, max_string_bytes: usize) -> Self {
        Reader {
            format,
            errors: Vec::new(),
            max_string_bytes,
        }
    }

    pub(crate) fn error(&mut self, path: &str, loc: Loc, message: String) {
        self.errors.push(FieldError {
            loc,
            path: path.to_owned(),
            message,
        });
    }

    /// Records "expected X, got Y".
    pub(crate) fn expected(&mut self, path: &str, node: &Node, what: &str) {
        let got = node.describe(self.format);
        self.error(path, node.loc, format!("expected {what}, got {got}"));
    }

    /// Reads a mapping whose keys must all be in `known`.
    pub(crate) fn fields<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        known: &[&str],
    ) -> Option<Fields<'n>> {
        let entries = self.entries(node, path)?;
        for (key, _) in entries {
            if !known.contains(&key.name.as_str()) {
                let message = unknown_field_message(&key.name, known);
                self.error(&child(path, &key.name), key.loc, message);
            }
        }
        Some(Fields {
            entries,
            loc: node.loc,
            path: path.to_owned(),
        })
    }

    /// Reads a mapping with free-form keys.
    pub(crate) fn entries<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n [(Key, Node)]> {
        if let NodeKind::Map(entries) = &node.kind {
            Some(entries)
        } else {
            let noun = self.format.mapping_noun();
            self.expected(path, node, noun);
            None
        }
    }

    /// Reads a list.
    pub(crate) fn list<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n [Node]> {
        if let NodeKind::Seq(items) = &node.kind {
            Some(items)
        } else {
            self.expected(path, node, "a list");
            None
        }
    }

    /// Reads a list of at most `max` items.
    pub(crate) fn bounded_list<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        max: usize,
    ) -> Option<&'n [Node]> {
        let items = self.list(node, path)?;
        if items.len() > max {
            self.error(
                path,
                node.loc,
                format!("too many items: {} (at most {max})", items.len()),
            );
            return None;
        }
        Some(items)
    }

    /// Reads a string (any length up to the limit, possibly empty).
    pub(crate) fn string(&mut self, node: &Node, path: &str) -> Option<Text> {
        if let NodeKind::Str(s) = &node.kind {
            if s.len() > self.max_string_bytes {
                let max = self.max_string_bytes;
                self.error(
                    path,
                    node.loc,
                    format!("string too long: {} bytes (at most {max})", s.len()),
                );
                return None;
            }
            Some(Text {
                value: s.clone(),
                loc: node.loc,
            })
        } else {
            self.expected(path, node, "a string");
            None
        }
    }

    /// Reads a string that is not empty and not only whitespace.
    pub(crate) fn non_empty_string(&mut self, node: &Node, path: &str) -> Option<Text> {
        let text = self.string(node, path)?;
        if text.value.trim().is_empty() {
            self.error(path, node.loc, "must not be empty".to_owned());
            return None;
        }
        Some(text)
    }

    /// Reads a name: non-empty, no surrounding whitespace, no control characters.
    pub(crate) fn name(&mut self, node: &Node, path: &str) -> Option<Text> {
        let text = self.string(node, path)?;
        if let Some(problem) = name_problem(&text.value) {
            self.error(path, node.loc, problem);
            return None;
        }
        Some(text)
    }

    /// Reads an integer.
    pub(crate) fn int(&mut self, node: &Node, path: &str) -> Option<i64> {
        match node.kind {
            NodeKind::Int(i) => Some(i),
            NodeKind::Float(x) if x.fract() == 0.0 => {
                self.error(path, node.loc, format!("integer out of range, got {x}"));
                None
            }
            _ => {
                self.expected(path, node, "an integer");
                None
            }
        }
    }

    /// Reads an integer within `min..=max`.
    pub(crate) fn int_in(&mut self, node: &Node, path: &str, min: i64, max: i64) -> Option<i64> {
        let v = self.int(node, path)?;
        if v < min || v > max {
            self.error(
                path,
                node.loc,
                format!("expected an integer from {min} to {max}, got {v}"),
            );
            return None;
        }
        Some(v)
    }

    /// Reads a boolean.
    pub(crate) fn bool(&mut self, node: &Node, path: &str) -> Option<bool> {
        if let NodeKind::Bool(b) = node.kind {
            Some(b)
        } else {
            self.expected(path, node, "true or false");
            None
        }
    }

    /// Reads a string that must be one of `choices`.
    pub(crate) fn choice<'c>(
        &mut self,
        node: &Node,
        path: &str,
        choices: &[&'c str],
    ) -> Option<&'c str> {
        let text = self.string(node, path)?;
        if let Some(c) = choices.iter().find(|c| **c == text.value) {
            return Some(c);
        }
        let list = choices
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let mut message = format!(
            "expected one of {list}, got {}",
            quote_for_message(&text.value)
        );
        if let Some(near) = nearest(&text.value, choices) {
            message = format!("{message}; did you mean \"{near}\"?");
        }
        self.error(path, node.loc, message);
        None
    }

    /// Reads a list of names, rejecting duplicates.
    pub(crate) fn name_list(&mut self, node: &Node, path: &str, max: usize) -> Option<Vec<Text>> {
        let items = self.bounded_list(node, path, max)?;
        let mut out: Vec<Text> = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, n) in items.iter().enumerate() {
            let p = item(path, i);
            match self.name(n, &p) {
                Some(t) if out.iter().any(|o| o.value == t.value) => {
                    self.error(
                        &p,
                        n.loc,
                        format!("duplicate entry {}", quote_for_message(&t.value)),
                    );
                    ok = false;
                }
                Some(t) => out.push(t),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }
}

/// Why `s` is not an acceptable name, if it is not.
pub(crate) fn name_problem(s: &str) -> Option<String> {
    if s.is_empty() {
        Some("must not be empty".to_owned())
    } else if s.trim() != s {
        Some(format!(
            "{} has leading or trailing whitespace",
            quote_for_message(s)
        ))
    } else if s.chars().any(char::is_control) {
        Some(format!(
            "{} contains a control character",
            quote_for_message(s)
        ))
    } else {
        None
    }
}

fn unknown_field_message(name: &str, known: &[&str]) -> String {
    let shown = quote_for_message(name);
    if let Some(near) = nearest(name, known) {
        format!("unknown field {shown}; did you mean \"{near}\"?")
    } else if known.is_empty() {
        format!("unknown field {shown}; no fields are allowed here")
    } else {
        format!(
            "unknown field {shown}; expected one of: {}",
            known.join(", ")
        )
    }
}

/// The candidate closest to `word` by edit distance, if close enough to be a likely typo.
pub(crate) fn nearest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let limit = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

/// Edit distance over characters, counting an adjacent transposition as one edit
/// (optimal string alignment), so `rsik` is one edit from `risk`.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().take(width).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = v;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::yaml;

    #[test]
    fn paths_quote_keys_that_are_not_identifiers() {
        assert_eq!(child("", "a"), "a");
        assert_eq!(child("a", "b_c"), "a.b_c");
        assert_eq!(child("calendars", "year end"), "calendars[\"year end\"]");
        assert_eq!(child("roles", "1st"), "roles[\"1st\"]");
        assert_eq!(item("policies", 2), "policies[2]");
    }

    #[test]
    fn unknown_fields_suggest_the_nearest_known_one() {
        let node = yaml::parse("aprovals: 1\nzzz: 2\n").unwrap();
        let mut r = Reader::new(Format::Yaml, 100);
        let fields = r.fields(&node, "require", &["approvals", "evidence"]);
        assert!(fields.is_some());
        let shown: Vec<String> = r.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            vec![
                "require.aprovals: unknown field \"aprovals\"; did you mean \"approvals\"? (line 1, column 1)",
                "require.zzz: unknown field \"zzz\"; expected one of: approvals, evidence (line 2, column 1)",
            ]
        );
    }

    #[test]
    fn type_errors_say_what_was_expected_and_found() {
        let node = yaml::parse("min: two\n").unwrap();
        let mut r = Reader::new(Format::Yaml, 100);
        let f = r.fields(&node, "a", &["min"]).unwrap();
        assert_eq!(r.int(f.get("min").unwrap(), &f.path_of("min")), None);
        assert_eq!(
            r.errors[0].to_string(),
            "a.min: expected an integer, got \"two\" (line 1, column 6)"
        );
    }

    #[test]
    fn choices_and_names_are_checked() {
        let node = yaml::parse("[prod, \" x\", x, x]").unwrap();
        let mut r = Reader::new(Format::Yaml, 100);
        let NodeKind::Seq(items) = &node.kind else {
            panic!("expected a list")
        };
        assert_eq!(r.choice(&items[0], "k", &["pr", "production"]), None);
        assert_eq!(r.name_list(&node, "n", 10), None);
        let shown: Vec<String> = r.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            vec![
                "k: expected one of \"pr\", \"production\", got \"prod\" (line 1, column 2)",
                "n[1]: \" x\" has leading or trailing whitespace (line 1, column 8)",
                "n[3]: duplicate entry \"x\" (line 1, column 17)",
            ]
        );
    }

    #[test]
    fn edit_distance_counts_transpositions_once() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("rsik", "risk"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(nearest("Securty", &["Security", "QA"]), Some("Security"));
        assert_eq!(nearest("xyz", &["Security"]), None);
    }
}
