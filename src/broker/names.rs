//! Kafka's topic-name rules (`org.apache.kafka.common.internals.Topic`).

use crate::error::{Error, Result};

/// Longest legal topic name.
pub(crate) const TOPIC_NAME_CHARS_MAX: usize = 249;

/// Checks Kafka's rules; the error says which one `name` broke.
pub(crate) fn validate(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidTopicName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("a topic name must not be empty");
    }
    if name.len() > TOPIC_NAME_CHARS_MAX {
        return bad("a topic name must be at most 249 characters");
    }
    if name == "." || name == ".." {
        return bad("a topic name must not be '.' or '..'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("a topic name may contain only ASCII letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

/// Names starting with `__` are reserved for internal topics such as `__consumer_offsets`.
pub(crate) fn is_internal(name: &str) -> bool {
    name.starts_with("__")
}

/// Kafka rejects a topic whose name equals an existing one's with `.` and `_` swapped, because
/// the two collide in metric names; we keep the rule so names port both ways.
pub(crate) fn collides(a: &str, b: &str) -> bool {
    a != b && a.replace('.', "_") == b.replace('.', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_rules() {
        for ok in ["orders", "a.b_c-D9", &"x".repeat(249)] {
            validate(ok).unwrap();
        }
        for (bad, rule) in [
            ("", "empty"),
            (&"x".repeat(250), "249"),
            (".", "'.'"),
            ("..", "'.'"),
            ("../etc", "only ASCII"),
            ("a/b", "only ASCII"),
            ("nul\0", "only ASCII"),
            ("spa ce", "only ASCII"),
            ("ümlaut", "only ASCII"),
        ] {
            let e = validate(bad).unwrap_err().to_string();
            assert!(e.contains(rule), "{bad:?}: {e}");
        }
        assert!(collides("foo.bar", "foo_bar"));
        assert!(!collides("foo.bar", "foo.bar"));
        assert!(is_internal("__consumer_offsets"));
    }
}
