//! A reader of Java `.properties` files, with `java.util.Properties.load` rules.
//!
//! * Lines end with `\n`, `\r` or `\r\n`. Leading spaces, tabs and form feeds are skipped.
//! * A line whose first other character is `#` or `!` is a comment; blank lines are skipped.
//! * A line ending in an odd number of backslashes continues on the next line, whose leading
//!   whitespace is dropped (a comment line never continues).
//! * The key ends at the first unescaped `=`, `:` or whitespace; whitespace, then at most one
//!   `=` or `:`, then whitespace separate it from the value. The value keeps trailing spaces.
//! * Escapes: `\t`, `\n`, `\r`, `\f`, `\uXXXX` (UTF-16 surrogate pairs combine), and `\` before
//!   any other character stands for that character.
//!
//! Files are read as UTF-8, or as ISO-8859-1 (what `Properties.load(InputStream)` reads) when
//! they are not valid UTF-8. Later duplicates of a key win, as in a `Properties` map.

use std::path::Path;

use crate::error::{Error, Result};

/// One `key=value` entry, with the line it starts on (1-based).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Property {
    pub(crate) key: String,
    pub(crate) value: String,
    pub(crate) line: usize,
}

/// Reads and parses a `.properties` file; errors name the file (and line).
pub(crate) fn read_file(path: &Path) -> Result<Vec<Property>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => e.into_bytes().iter().map(|&b| char::from(b)).collect(),
    };
    parse(&text).map_err(|(line, reason)| Error::ConfigFile {
        path: path.to_path_buf(),
        line,
        reason,
    })
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\x0c')
}

/// Parses the text of a `.properties` file into its entries, in file order. A syntax error is
/// `(line, reason)`.
pub(crate) fn parse(text: &str) -> std::result::Result<Vec<Property>, (usize, String)> {
    let lines: Vec<&str> = natural_lines(text);
    let mut out = Vec::new();
    let mut next = 0;
    while next < lines.len() {
        let line = next + 1;
        let mut current = lines[next].trim_start_matches(is_space);
        next += 1;
        if current.is_empty() || current.starts_with('#') || current.starts_with('!') {
            continue;
        }
        let mut logical = String::new();
        loop {
            let trailing = current.len() - current.trim_end_matches('\\').len();
            if trailing.is_multiple_of(2) {
                logical.push_str(current);
                break;
            }
            // The last backslash joins the next line; the ones before it are escapes.
            logical.push_str(&current[..current.len() - 1]);
            match lines.get(next) {
                Some(following) => {
                    current = following.trim_start_matches(is_space);
                    next += 1;
                }
                None => break,
            }
        }
        let (key, value) = split(&logical);
        out.push(Property {
            key: unescape(key).map_err(|reason| (line, reason))?,
            value: unescape(value).map_err(|reason| (line, reason))?,
            line,
        });
    }
    Ok(out)
}

/// Splits text at `\r\n`, `\r` and `\n`.
fn natural_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match rest.find(['\r', '\n']) {
            Some(at) => {
                lines.push(&rest[..at]);
                let skip = if rest[at..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[at + skip..];
            }
            None => {
                lines.push(rest);
                rest = "";
            }
        }
    }
    lines
}

/// Splits a logical line (still escaped) into its key and value parts.
fn split(logical: &str) -> (&str, &str) {
    let mut escaped = false;
    let mut key_end = logical.len();
    let mut value_start = logical.len();
    let mut has_separator = false;
    for (at, c) in logical.char_indices() {
        if !escaped && (c == '=' || c == ':') {
            key_end = at;
            value_start = at + 1;
            has_separator = true;
            break;
        }
        if !escaped && is_space(c) {
            key_end = at;
            value_start = at + 1;
            break;
        }
        escaped = c == '\\' && !escaped;
    }
    let mut value = &logical[value_start..];
    loop {
        value = value.trim_start_matches(is_space);
        if !has_separator && (value.starts_with('=') || value.starts_with(':')) {
            has_separator = true;
            value = &value[1..];
        } else {
            break;
        }
    }
    (&logical[..key_end], value)
}

/// Resolves escapes.
fn unescape(text: &str) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    let mut high: Option<u16> = None;
    let lone = |unit: u16| {
        format!("\\u{unit:04X} is half of a UTF-16 surrogate pair without the other half")
    };
    while let Some(c) = chars.next() {
        let c = if c == '\\' {
            match chars.next() {
                Some('u') => {
                    let hex: String = chars.by_ref().take(4).collect();
                    let unit = (hex.len() == 4)
                        .then(|| u16::from_str_radix(&hex, 16).ok())
                        .flatten()
                        .ok_or_else(|| format!("malformed \\uXXXX escape: \\u{hex}"))?;
                    match (high.take(), unit) {
                        (None, 0xD800..=0xDBFF) => {
                            high = Some(unit);
                            continue;
                        }
                        (Some(h), 0xDC00..=0xDFFF) => {
                            let code = 0x10000
                                + ((u32::from(h) - 0xD800) << 10)
                                + (u32::from(unit) - 0xDC00);
                            char::from_u32(code).ok_or_else(|| lone(h))?
                        }
                        (Some(h), _) => return Err(lone(h)),
                        (None, _) => char::from_u32(u32::from(unit)).ok_or_else(|| lone(unit))?,
                    }
                }
                Some('t') => '\t',
                Some('n') => '\n',
                Some('r') => '\r',
                Some('f') => '\x0c',
                Some(other) => other,
                None => break,
            }
        } else {
            c
        };
        if let Some(h) = high {
            return Err(lone(h));
        }
        out.push(c);
    }
    match high {
        Some(h) => Err(lone(h)),
        None => Ok(out),
    }
}

/// Writes a key or value so that [`parse`] reads it back unchanged (`Properties.store`'s
/// escaping, with non-ASCII characters left as they are).
#[cfg(test)]
pub(crate) fn escape(text: &str, is_key: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for (at, c) in text.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\x0c' => out.push_str("\\f"),
            '=' | ':' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            ' ' if is_key || at == 0 => out.push_str("\\ "),
            c if c.is_control() && u32::from(c) <= 0xFFFF => {
                out.push_str(&format!("\\u{:04X}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text)
            .unwrap()
            .into_iter()
            .map(|p| (p.key, p.value))
            .collect()
    }

    fn p(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn comments_blank_lines_and_separators() {
        let text = "# comment\n! also a comment\n\n   \nacks=all\nlinger.ms : 5\n\
                    batch.size 16384\n  client.id\t=\t app \nempty=\nbare\n";
        assert_eq!(
            pairs(text),
            [
                p("acks", "all"),
                p("linger.ms", "5"),
                p("batch.size", "16384"),
                p("client.id", "app "),
                p("empty", ""),
                p("bare", ""),
            ]
        );
        // `=` after a whitespace separator is still the separator; a second one is value.
        assert_eq!(pairs("a = =b\nc==d"), [p("a", "=b"), p("c", "=d")]);
    }

    #[test]
    fn line_numbers_and_line_endings() {
        let got = parse("a=1\r\n\r\n# x\rb=2\nc=3").unwrap();
        let lines: Vec<usize> = got.iter().map(|p| p.line).collect();
        assert_eq!(lines, [1, 4, 5]);
    }

    #[test]
    fn continuation_lines() {
        let text = "sasl.jaas.config=org.apache.Login required \\\n    username=\"u\" \\\n\
                    \tpassword=\"p\";\nnext=1\n";
        assert_eq!(
            pairs(text),
            [
                p(
                    "sasl.jaas.config",
                    "org.apache.Login required username=\"u\" password=\"p\";"
                ),
                p("next", "1"),
            ]
        );
        // An even number of backslashes is escaped backslashes, not a continuation.
        assert_eq!(pairs("a=x\\\\\nb=y"), [p("a", "x\\"), p("b", "y")]);
        // A comment never continues; a continued line may begin with `#`.
        assert_eq!(pairs("# c \\\na=1"), [p("a", "1")]);
        assert_eq!(pairs("a=1\\\n#2"), [p("a", "1#2")]);
        // A backslash at the end of the file is dropped.
        assert_eq!(pairs("a=1\\"), [p("a", "1")]);
    }

    #[test]
    fn escapes() {
        assert_eq!(
            pairs("k\\ e\\=y\\:=v\\tw\\n\\u00e9\\uD83D\\uDE00\\q"),
            [p("k e=y:", "v\tw\né😀q")]
        );
        for bad in [
            "a=\\u12",
            "a=\\u12G4",
            "a=\\uD83D",
            "a=\\uDE00x",
            "a=\\uD83Dx",
        ] {
            let (line, reason) = parse(bad).unwrap_err();
            assert_eq!(line, 1, "{bad}");
            assert!(reason.contains("\\u"), "{bad}: {reason}");
        }
    }

    #[test]
    fn read_file_names_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.properties");
        std::fs::write(&path, "a=1\nb=\\uZZZZ\n").unwrap();
        let e = read_file(&path).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("p.properties") && text.contains("line 2"),
            "{text}"
        );
        // Not UTF-8: read as ISO-8859-1.
        std::fs::write(&path, b"a=caf\xe9\n").unwrap();
        assert_eq!(read_file(&path).unwrap()[0].value, "café");
        let e = read_file(&dir.path().join("missing")).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }

    proptest! {
        #[test]
        fn any_input_never_panics(text in "[\\\\=: \\t\\r\\n#!ua-fD0-9\u{e9}]{0,60}") {
            let _ = parse(&text);
        }

        #[test]
        fn any_string_never_panics(text in any::<String>()) {
            let _ = parse(&text);
        }

        #[test]
        fn escaped_pairs_round_trip(
            entries in proptest::collection::vec((any::<String>(), any::<String>()), 0..6),
        ) {
            let text: String = entries
                .iter()
                .map(|(k, v)| format!("{}={}\n", escape(k, true), escape(v, false)))
                .collect();
            let back: Vec<(String, String)> =
                parse(&text).unwrap().into_iter().map(|p| (p.key, p.value)).collect();
            prop_assert_eq!(back, entries);
        }
    }
}
