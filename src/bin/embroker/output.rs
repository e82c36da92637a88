//! Output helpers shared by every subcommand: aligned tables for people, the one JSON
//! convention for scripts ([`JSON_CONVENTION`], written with `serde_json`), and the rendering
//! of keys and values for people (text, or hex when not text).

use std::fmt::Write as _;
use std::io::{self, Write};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Value};

/// A table printed with columns padded to their widest cell.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| (*h).to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (as many cells as there are columns).
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.header.len());
        self.rows.push(cells);
    }

    /// Writes the table to `out`; the last column is not padded.
    pub fn print(&self, out: &mut impl Write) -> io::Result<()> {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    let pad = widths[i] - cell.chars().count();
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad + 2));
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// The JSON convention of every `--json` output (and of `produce --json-input`), in one place:
///
/// - null (an absent key, a tombstone's value, a null header value) is `null`;
/// - bytes that are valid UTF-8 are a JSON string;
/// - other bytes are an object `{"base64": "..."}` (RFC 4648 standard alphabet, padded);
/// - headers are a list of `{"key": "...", "value": <bytes or null>}`, in record order.
///
/// Everything is written through `serde_json`, one JSON document per line.
pub const JSON_CONVENTION: &str = "JSON (--json): one document per line. null is null; bytes \
    that are UTF-8 are a string, other bytes are {\"base64\": \"...\"} (standard alphabet, \
    padded); headers are [{\"key\": \"...\", \"value\": bytes or null}].";

/// The marker field of bytes that are not UTF-8.
pub const BASE64_FIELD: &str = "base64";

/// Bytes as JSON: a string when they are UTF-8, else `{"base64": "..."}`.
pub fn bytes_json(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(s) => Value::String(s.to_string()),
        Err(_) => json!({ BASE64_FIELD: BASE64.encode(bytes) }),
    }
}

/// Nullable bytes as JSON: `null`, or [`bytes_json`].
pub fn opt_bytes_json(bytes: Option<&[u8]>) -> Value {
    bytes.map_or(Value::Null, bytes_json)
}

/// Headers as JSON: `[{"key": "...", "value": <bytes or null>}]`.
pub fn headers_json<'a>(headers: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>) -> Value {
    Value::Array(
        headers
            .into_iter()
            .map(|(k, v)| json!({ "key": k, "value": opt_bytes_json(v) }))
            .collect(),
    )
}

/// The inverse of [`opt_bytes_json`]: `null`, a string (its UTF-8 bytes) or
/// `{"base64": "..."}`.
pub fn bytes_from_json(v: &Value) -> Result<Option<Vec<u8>>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone().into_bytes())),
        Value::Object(o) if o.len() == 1 => match o.get(BASE64_FIELD) {
            Some(Value::String(b)) => BASE64
                .decode(b)
                .map(Some)
                .map_err(|e| format!("bad base64: {e}")),
            _ => Err(format!(
                "expected null, a string or {{\"{BASE64_FIELD}\": \"...\"}}, got {v}"
            )),
        },
        _ => Err(format!(
            "expected null, a string or {{\"{BASE64_FIELD}\": \"...\"}}, got {v}"
        )),
    }
}

/// Writes `v` on one line of `out`.
pub fn print_json(out: &mut impl Write, v: &Value) -> io::Result<()> {
    serde_json::to_writer(&mut *out, v)?;
    writeln!(out)
}

/// Bytes for display in `dump`: quoted text when UTF-8 without control characters, else hex.
pub fn text_or_hex(bytes: Option<&[u8]>) -> String {
    match bytes {
        None => "null".to_string(),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) if !s.chars().any(char::is_control) => format!("{s:?}"),
            _ => format!("0x{}", hex(b)),
        },
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Metrics as JSON: a list of `{"group", "name", "tags", "value"}`, in snapshot order.
pub fn metrics_json(metrics: &embroker::Metrics) -> Value {
    metrics
        .iter()
        .map(|m| {
            json!({
                "group": m.name.group,
                "name": m.name.name,
                "tags": m.name.tags,
                "value": m.value,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_follow_the_convention() {
        assert_eq!(bytes_json(b"hi \"x\"\n"), json!("hi \"x\"\n"));
        assert_eq!(bytes_json(&[0, 0xff, 0xfe]), json!({"base64": "AP/+"}));
        assert_eq!(opt_bytes_json(None), Value::Null);
        assert_eq!(bytes_json(b""), json!(""));
        let h = headers_json([
            ("a", Some(&b"1"[..])),
            ("b", None),
            ("c", Some(&[0x80][..])),
        ]);
        assert_eq!(
            h,
            json!([
                {"key": "a", "value": "1"},
                {"key": "b", "value": null},
                {"key": "c", "value": {"base64": "gA=="}}
            ])
        );
        let mut out = Vec::new();
        print_json(&mut out, &h).unwrap();
        assert!(out.ends_with(b"]\n") && !out[..out.len() - 1].contains(&b'\n'));
    }

    #[test]
    fn bytes_round_trip() {
        for b in [&b""[..], b"text", &[0, 1, 2, 0xff], &[0xe2, 0x82]] {
            assert_eq!(bytes_from_json(&bytes_json(b)).unwrap().as_deref(), Some(b));
        }
        assert_eq!(bytes_from_json(&Value::Null).unwrap(), None);
        assert!(bytes_from_json(&json!(5)).is_err());
        assert!(bytes_from_json(&json!({"base64": "!!"})).is_err());
        assert!(bytes_from_json(&json!({"hex": "00"})).is_err());
        assert!(bytes_from_json(&json!({"base64": "AA==", "x": 1})).is_err());
    }

    #[test]
    fn table_aligns_columns() {
        let mut t = Table::new(&["A", "LONG"]);
        t.row(vec!["xyz".into(), "1".into()]);
        let mut out = Vec::new();
        t.print(&mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "A    LONG\nxyz  1\n");
    }

    #[test]
    fn non_text_is_hex() {
        assert_eq!(text_or_hex(Some(b"hi")), "\"hi\"");
        assert_eq!(text_or_hex(Some(&[0, 255])), "0x00ff");
        assert_eq!(text_or_hex(None), "null");
    }
}
