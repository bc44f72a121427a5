//! A strict RFC 8259 JSON parser that keeps the line and column of every value and key.
//!
//! `serde_json` reports where a syntax error is but not where a well-formed value sits, and
//! schema errors need the latter. This parser is small on purpose: UTF-8 input, no
//! extensions (no comments, no trailing commas, no NaN), duplicate keys rejected, nesting
//! bounded so that no input can exhaust the stack.

use super::{Key, Loc, Node, NodeKind};

/// Deepest nesting of arrays and objects accepted.
pub(crate) const MAX_DEPTH: usize = 64;

/// A JSON syntax error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub(crate) message: String,
    pub(crate) loc: Loc,
}

/// Parses one JSON value (surrounded by optional whitespace) from `text`.
pub(crate) fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut p = Parser {
        text,
        pos: 0,
        line: 1,
        column: 1,
    };
    p.skip_ws();
    let node = p.value(0)?;
    p.skip_ws();
    if p.pos < text.len() {
        return Err(p.error("unexpected characters after the JSON value"));
    }
    Ok(node)
}

struct Parser<'a> {
    text: &'a str,
    /// Byte offset of the next character.
    pos: usize,
    line: u32,
    column: u32,
}

impl Parser<'_> {
    fn loc(&self) -> Loc {
        Loc::new(self.line, self.column)
    }

    fn error(&self, message: &str) -> SyntaxError {
        SyntaxError {
            message: message.to_owned(),
            loc: self.loc(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.text
            .get(self.pos..)
            .and_then(|rest| rest.chars().next())
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line = self.line.saturating_add(1);
            self.column = 1;
        } else {
            self.column = self.column.saturating_add(1);
        }
        Some(c)
    }

    fn skip_ws(&mut self) {
        while let Some(' ' | '\t' | '\n' | '\r') = self.peek() {
            self.bump();
        }
    }

    fn expect_literal(&mut self, word: &str, kind: NodeKind) -> Result<Node, SyntaxError> {
        let loc = self.loc();
        let rest = self.text.get(self.pos..).unwrap_or("");
        if rest.starts_with(word) {
            for _ in 0..word.len() {
                self.bump();
            }
            Ok(Node { kind, loc })
        } else {
            Err(self.error("expected a JSON value"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Node, SyntaxError> {
        match self.peek() {
            None => Err(self.error("unexpected end of input, expected a JSON value")),
            Some('{') => self.object(depth),
            Some('[') => self.array(depth),
            Some('"') => {
                let loc = self.loc();
                let s = self.string()?;
                Ok(Node {
                    kind: NodeKind::Str(s),
                    loc,
                })
            }
            Some('t') => self.expect_literal("true", NodeKind::Bool(true)),
            Some('f') => self.expect_literal("false", NodeKind::Bool(false)),
            Some('n') => self.expect_literal("null", NodeKind::Null),
            Some('-' | '0'..='9') => self.number(),
            Some(_) => Err(self.error("expected a JSON value")),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Node, SyntaxError> {
        let loc = self.loc();
        if depth >= MAX_DEPTH {
            return Err(self.error("nesting deeper than 64 levels"));
        }
        self.bump();
        let mut entries: Vec<(Key, Node)> = Vec::new();
        self.skip_ws();
        if self.peek() == Some('}') {
            self.bump();
            return Ok(Node {
                kind: NodeKind::Map(entries),
                loc,
            });
        }
        loop {
            self.skip_ws();
            if self.peek() != Some('"') {
                return Err(self.error("expected a string key"));
            }
            let key_loc = self.loc();
            let name = self.string()?;
            if entries.iter().any(|(k, _)| k.name == name) {
                return Err(SyntaxError {
                    message: format!("duplicate key {}", super::quote_for_message(&name)),
                    loc: key_loc,
                });
            }
            self.skip_ws();
            if self.bump() != Some(':') {
                return Err(self.error("expected ':' after an object key"));
            }
            self.skip_ws();
            let value = self.value(depth + 1)?;
            entries.push((Key { name, loc: key_loc }, value));
            self.skip_ws();
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some('}') => {
                    self.bump();
                    return Ok(Node {
                        kind: NodeKind::Map(entries),
                        loc,
                    });
                }
                _ => return Err(self.error("expected ',' or '}' in an object")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Node, SyntaxError> {
        let loc = self.loc();
        if depth >= MAX_DEPTH {
            return Err(self.error("nesting deeper than 64 levels"));
        }
        self.bump();
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(']') {
            self.bump();
            return Ok(Node {
                kind: NodeKind::Seq(items),
                loc,
            });
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth + 1)?);
            self.skip_ws();
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some(']') => {
                    self.bump();
                    return Ok(Node {
                        kind: NodeKind::Seq(items),
                        loc,
                    });
                }
                _ => return Err(self.error("expected ',' or ']' in an array")),
            }
        }
    }

    fn digits(&mut self) -> usize {
        let mut n = 0;
        while let Some('0'..='9') = self.peek() {
            self.bump();
            n += 1;
        }
        n
    }

    fn number(&mut self) -> Result<Node, SyntaxError> {
        let loc = self.loc();
        let start = self.pos;
        if self.peek() == Some('-') {
            self.bump();
        }
        match self.peek() {
            Some('0') => {
                self.bump();
                if let Some('0'..='9') = self.peek() {
                    return Err(self.error("leading zeros are not allowed in JSON numbers"));
                }
            }
            Some('1'..='9') => {
                self.digits();
            }
            _ => return Err(self.error("expected a digit")),
        }
        let mut integral = true;
        if self.peek() == Some('.') {
            integral = false;
            self.bump();
            if self.digits() == 0 {
                return Err(self.error("expected a digit after the decimal point"));
            }
        }
        if let Some('e' | 'E') = self.peek() {
            integral = false;
            self.bump();
            if let Some('+' | '-') = self.peek() {
                self.bump();
            }
            if self.digits() == 0 {
                return Err(self.error("expected a digit in the exponent"));
            }
        }
        let literal = self.text.get(start..self.pos).unwrap_or("");
        if integral && let Ok(i) = literal.parse::<i64>() {
            return Ok(Node {
                kind: NodeKind::Int(i),
                loc,
            });
        }
        match literal.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(Node {
                kind: NodeKind::Float(x),
                loc,
            }),
            _ => Err(SyntaxError {
                message: "number out of range".to_owned(),
                loc,
            }),
        }
    }

    fn hex4(&mut self) -> Result<u32, SyntaxError> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = self
                .peek()
                .and_then(|c| c.to_digit(16))
                .ok_or_else(|| self.error("expected four hexadecimal digits after \\u"))?;
            self.bump();
            v = v * 16 + d;
        }
        Ok(v)
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        self.bump(); // the opening quote
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.error("unterminated string"));
            };
            match c {
                '"' => {
                    self.bump();
                    return Ok(out);
                }
                '\\' => {
                    self.bump();
                    let esc = self
                        .peek()
                        .ok_or_else(|| self.error("unterminated string"))?;
                    let simple = match esc {
                        '"' => Some('"'),
                        '\\' => Some('\\'),
                        '/' => Some('/'),
                        'b' => Some('\u{8}'),
                        'f' => Some('\u{c}'),
                        'n' => Some('\n'),
                        'r' => Some('\r'),
                        't' => Some('\t'),
                        'u' => None,
                        _ => return Err(self.error("invalid escape sequence")),
                    };
                    self.bump();
                    if let Some(ch) = simple {
                        out.push(ch);
                    } else {
                        out.push(self.unicode_escape()?);
                    }
                }
                c if u32::from(c) < 0x20 => {
                    return Err(self.error("control character in a string (escape it)"));
                }
                c => {
                    self.bump();
                    out.push(c);
                }
            }
        }
    }

    /// Decodes the rest of a `\u` escape (the four digits, and a low surrogate if needed).
    fn unicode_escape(&mut self) -> Result<char, SyntaxError> {
        let hi = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&hi) {
            let rest = self.text.get(self.pos..).unwrap_or("");
            if !rest.starts_with("\\u") {
                return Err(self.error("unpaired surrogate in a \\u escape"));
            }
            self.bump();
            self.bump();
            let lo = self.hex4()?;
            if !(0xDC00..0xE000).contains(&lo) {
                return Err(self.error("unpaired surrogate in a \\u escape"));
            }
            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
        } else if (0xDC00..0xE000).contains(&hi) {
            return Err(self.error("unpaired surrogate in a \\u escape"));
        } else {
            hi
        };
        char::from_u32(code).ok_or_else(|| self.error("invalid \\u escape"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> (String, u32, u32) {
        let e = parse(text).expect_err(text);
        (e.message, e.loc.line, e.loc.column)
    }

    #[test]
    fn values_keep_their_locations() {
        let node = parse("{\n  \"a\": [1, -2.5, \"x\"],\n  \"b\": null\n}").unwrap();
        let NodeKind::Map(entries) = node.kind else {
            panic!("expected an object")
        };
        assert_eq!(entries[0].0.name, "a");
        assert_eq!(entries[0].0.loc, Loc::new(2, 3));
        assert_eq!(entries[0].1.loc, Loc::new(2, 8));
        let NodeKind::Seq(items) = &entries[0].1.kind else {
            panic!("expected an array")
        };
        assert_eq!(items[1].kind, NodeKind::Float(-2.5));
        assert_eq!(items[2].loc, Loc::new(2, 18));
        assert_eq!(
            entries[1].1,
            Node {
                kind: NodeKind::Null,
                loc: Loc::new(3, 8)
            }
        );
    }

    #[test]
    fn strings_decode_escapes_and_surrogate_pairs() {
        let node = parse(r#""a\n\u00e9\ud83d\ude00\/""#).unwrap();
        assert_eq!(node.kind, NodeKind::Str("a\n\u{e9}\u{1f600}/".to_owned()));
    }

    #[test]
    fn integers_stay_integers_and_huge_ones_become_floats() {
        assert_eq!(
            parse("9223372036854775807").unwrap().kind,
            NodeKind::Int(i64::MAX)
        );
        assert_eq!(parse("1e2").unwrap().kind, NodeKind::Float(100.0));
        assert_eq!(
            parse("9223372036854775808").unwrap().kind,
            NodeKind::Float(9_223_372_036_854_775_808.0)
        );
    }

    #[test]
    fn syntax_errors_are_located() {
        assert_eq!(
            err("{\"a\": 1,}"),
            ("expected a string key".to_owned(), 1, 9)
        );
        assert_eq!(
            err("{\"a\": 1, \"a\": 2}"),
            ("duplicate key \"a\"".to_owned(), 1, 10)
        );
        assert_eq!(
            err("[1, 2"),
            ("expected ',' or ']' in an array".to_owned(), 1, 6)
        );
        assert_eq!(
            err("01"),
            (
                "leading zeros are not allowed in JSON numbers".to_owned(),
                1,
                2
            )
        );
        assert_eq!(
            err("\"\\ud800\""),
            ("unpaired surrogate in a \\u escape".to_owned(), 1, 8)
        );
        assert_eq!(
            err("{} x"),
            (
                "unexpected characters after the JSON value".to_owned(),
                1,
                4
            )
        );
        assert_eq!(
            err(""),
            (
                "unexpected end of input, expected a JSON value".to_owned(),
                1,
                1
            )
        );
        assert_eq!(err("nul"), ("expected a JSON value".to_owned(), 1, 1));
        assert_eq!(err("1e999"), ("number out of range".to_owned(), 1, 1));
        assert_eq!(
            err("\"a\tb\""),
            ("control character in a string (escape it)".to_owned(), 1, 3)
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        assert_eq!(err(&deep).0, "nesting deeper than 64 levels");
        let ok = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert!(parse(&ok).is_ok());
    }
}
