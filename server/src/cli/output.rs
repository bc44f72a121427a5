//! Writing results: aligned `label: value` blocks for people, JSON for scripts.
//!
//! Every write goes through [`write_stdout`], so a closed pipe (`vouch entries | head`) ends
//! the command quietly instead of panicking as `println!` would.

use std::fmt::Write as _;
use std::io::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;

/// Writes `text` to standard output as is.
///
/// # Errors
///
/// The write failed (a closed pipe included).
pub fn write_stdout(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Writes one line to standard output.
///
/// # Errors
///
/// The write failed.
pub fn line(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Writes a JSON value on one line.
///
/// # Errors
///
/// The write failed.
pub fn json(value: &Value) -> std::io::Result<()> {
    line(&value.to_string())
}

/// A block of `label: value` lines with the values aligned.
#[derive(Debug, Default)]
pub struct Block {
    title: Option<String>,
    rows: Vec<(String, String)>,
}

impl Block {
    /// A block under a title line.
    pub fn titled(title: impl Into<String>) -> Self {
        Self {
            title: Some(title.into()),
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    #[must_use]
    pub fn row(mut self, label: &str, value: impl std::fmt::Display) -> Self {
        self.rows.push((label.to_owned(), value.to_string()));
        self
    }

    /// Adds a line under the previous row's value.
    #[must_use]
    pub fn more(self, value: impl std::fmt::Display) -> Self {
        self.row("", value)
    }

    /// Adds a row if there is a value.
    #[must_use]
    pub fn row_opt(self, label: &str, value: Option<impl std::fmt::Display>) -> Self {
        match value {
            Some(v) => self.row(label, v),
            None => self,
        }
    }

    /// The block as text, ending with a newline.
    pub fn render(&self) -> String {
        let width = self.rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0) + 1;
        let indent = if self.title.is_some() { "  " } else { "" };
        let mut out = String::new();
        if let Some(title) = &self.title {
            out.push_str(title);
            out.push('\n');
        }
        for (label, value) in &self.rows {
            // An empty label continues the row above.
            let label = if label.is_empty() {
                String::new()
            } else {
                format!("{label}:")
            };
            let _ = writeln!(out, "{indent}{label:<width$} {value}");
        }
        out
    }

    /// Writes the block to standard output.
    ///
    /// # Errors
    ///
    /// The write failed.
    pub fn print(&self) -> std::io::Result<()> {
        write_stdout(&self.render())
    }
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    ::hex::encode(bytes)
}

/// Standard padded base64 of bytes.
pub fn base64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// A payload for a person: the text itself when it is short printable UTF-8, else its size.
pub fn payload_preview(payload: &[u8], limit: usize) -> String {
    match std::str::from_utf8(payload) {
        Ok(text)
            if !text
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t') =>
        {
            let shown: String = text.chars().take(limit).collect();
            let more = if shown.len() < text.len() { "…" } else { "" };
            format!("{shown:?}{more}")
        }
        _ => format!("({} bytes of binary data)", payload.len()),
    }
}

/// A count with its unit, singular or plural.
pub fn count(n: u64, singular: &str, plural: &str) -> String {
    if n == 1 {
        format!("1 {singular}")
    } else {
        format!("{n} {plural}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_align_values_and_continue_rows() {
        let text = Block::titled("entry 3")
            .row("kind", "record")
            .row("leaf hash", "ab")
            .more("cd")
            .row_opt("key", None::<&str>)
            .render();
        assert_eq!(
            text,
            "entry 3\n  kind:      record\n  leaf hash: ab\n             cd\n"
        );
        assert_eq!(Block::default().row("a", 1).render(), "a: 1\n");
    }

    #[test]
    fn payload_previews() {
        assert_eq!(payload_preview(b"hello", 10), "\"hello\"");
        assert_eq!(payload_preview(b"hello world", 5), "\"hello\"…");
        assert_eq!(
            payload_preview(&[0, 159, 146], 10),
            "(3 bytes of binary data)"
        );
        assert_eq!(count(1, "hash", "hashes"), "1 hash");
        assert_eq!(count(0, "hash", "hashes"), "0 hashes");
    }
}
