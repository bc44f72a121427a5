//! Canonical JSON: the byte-exact serialisation that is hashed and recorded.
//!
//! The rules (also in `docs/policy.md`): UTF-8; no whitespace outside strings; object members
//! sorted by the bytes of their UTF-8 keys; strings escape only `"` as `\"`, `\` as `\\` and
//! U+0000–U+001F (as `\b`, `\t`, `\n`, `\f`, `\r`, or `\u00xx` with lowercase hex), every other
//! character written as itself; integers in shortest decimal form; `true`, `false`, `null`.
//! Nothing this crate serialises holds a floating-point number. Timestamps are RFC 3339
//! strings in UTC with a `Z` suffix and a fractional part only when it is not zero.
//!
//! Keys are sorted here, explicitly, rather than relying on `serde_json`'s map type, whose
//! order changes with a Cargo feature another crate could turn on.

use jiff::Timestamp;
use serde::{Serialize, Serializer};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Serialises `value` to canonical JSON.
pub(crate) fn to_vec<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Serialising our own types to a `Value` cannot fail: they have only string map keys.
    let tree = serde_json::to_value(value).unwrap_or(Value::Null);
    let mut out = Vec::with_capacity(256);
    write_value(&mut out, &tree);
    out
}

/// `sha256:` followed by the lowercase hex SHA-256 of `bytes`.
pub(crate) fn sha256_tagged(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Writes `value` in canonical form.
pub(crate) fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, v);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(out, k);
                out.push(b':');
                write_value(out, v);
            }
            out.push(b'}');
        }
    }
}

/// Writes a JSON string with the minimal escaping described in the module docs.
pub(crate) fn write_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\r' => out.extend_from_slice(b"\\r"),
            c if u32::from(c) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", u32::from(c)).as_bytes());
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// The canonical text of a timestamp: RFC 3339, UTC, `Z`.
pub(crate) fn timestamp_text(t: Timestamp) -> String {
    t.to_string()
}

/// Serde helper: a timestamp as its canonical text.
#[allow(clippy::trivially_copy_pass_by_ref)] // serde's `serialize_with` passes a reference.
pub(crate) fn timestamp<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&timestamp_text(*t))
}

/// Serde helper: an optional timestamp as its canonical text.
#[allow(clippy::ref_option)] // serde's `serialize_with` passes a reference.
pub(crate) fn opt_timestamp<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&timestamp_text(*t)),
        None => s.serialize_none(),
    }
}

/// Serde helper: reads an optional timestamp written by [`opt_timestamp`].
pub(crate) fn deserialize_opt_timestamp<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Timestamp>, D::Error> {
    let text: Option<String> = serde::Deserialize::deserialize(d)?;
    text.map(|t| t.parse().map_err(serde::de::Error::custom))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sorted_by_bytes_and_whitespace_dropped() {
        let v: Value =
            serde_json::from_str(r#"{"b": 1, "a": [true, null, "x"], "B": {"é": 1, "z": 2}}"#)
                .unwrap();
        let mut out = Vec::new();
        write_value(&mut out, &v);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"B":{"z":2,"é":1},"a":[true,null,"x"],"b":1}"#
        );
    }

    #[test]
    fn strings_escape_minimally() {
        let mut out = Vec::new();
        write_string(&mut out, "a\"b\\c\n\u{1}\u{7f}é/😀");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"b\\\\c\\n\\u0001\u{7f}é/😀\""
        );
    }

    #[test]
    fn timestamps_are_utc_with_z() {
        let t: Timestamp = "2025-06-03T12:15:00+02:00".parse().unwrap();
        assert_eq!(timestamp_text(t), "2025-06-03T10:15:00Z");
        let t: Timestamp = "2025-06-03T10:15:00.250Z".parse().unwrap();
        assert_eq!(timestamp_text(t), "2025-06-03T10:15:00.25Z");
    }

    #[test]
    fn sha256_is_tagged_lowercase_hex() {
        assert_eq!(
            sha256_tagged(b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
