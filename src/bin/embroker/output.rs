//! Output helpers shared by every subcommand: aligned tables for people, a tiny JSON writer
//! for scripts, and the rendering of keys and values (lossy UTF-8, or hex when not text).
//!
//! JSON is written by hand (an escaper and a few builders) so the tool needs no serde.

use std::fmt::Write as _;
use std::io::{self, Write};

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

/// `s` as a JSON string literal, quotes included.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An optional string as JSON (`null` when absent).
pub fn json_opt_str(s: Option<&str>) -> String {
    s.map_or_else(|| "null".to_string(), json_str)
}

/// An optional number as JSON (`null` when absent).
pub fn json_opt_num(n: Option<i64>) -> String {
    n.map_or_else(|| "null".to_string(), |n| n.to_string())
}

/// A JSON object from `(name, already-encoded value)` pairs.
pub fn json_obj(fields: &[(&str, String)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", json_str(k)))
        .collect();
    format!("{{{}}}", body.join(","))
}

/// A JSON array from already-encoded values.
pub fn json_arr(items: &[String]) -> String {
    format!("[{}]", items.join(","))
}

/// Bytes for display: the text if they are UTF-8, else lossy text.
pub fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes_controls_and_quotes() {
        assert_eq!(json_str("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
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
