//! Parsing Kafka-style `key=value` properties into typed values.
//!
//! Every parser names the key in its error, so `from_properties` on any config type reports
//! exactly which setting was wrong and why.

use crate::error::{Error, Result};

/// Chainable setters named after the fields they set: `setters! { /// doc\n name: Type, }`
/// expands to `pub fn name(mut self, value: Type) -> Self`. Shared by every config type.
macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty,)*) => {
        $(
            $(#[$doc])*
            #[must_use]
            pub fn $name(mut self, value: $ty) -> Self {
                self.$name = value;
                self
            }
        )*
    };
}
pub(crate) use setters;

/// Parses a signed integer in `min..=max`.
pub(crate) fn parse_i64(key: &str, value: &str, min: i64, max: i64) -> Result<i64> {
    let v: i64 = value
        .trim()
        .parse()
        .map_err(|_| Error::config(key, value, "not an integer"))?;
    if v < min || v > max {
        return Err(Error::config(
            key,
            value,
            format!("must be between {min} and {max}"),
        ));
    }
    Ok(v)
}

/// Parses an `i32` in `min..=max`.
pub(crate) fn parse_i32(key: &str, value: &str, min: i32, max: i32) -> Result<i32> {
    let v = parse_i64(key, value, i64::from(min), i64::from(max))?;
    i32::try_from(v).map_err(|_| Error::config(key, value, "out of range"))
}

/// Parses a `u32` in `min..=max`.
pub(crate) fn parse_u32(key: &str, value: &str, min: u32, max: u32) -> Result<u32> {
    let v = parse_i64(key, value, i64::from(min), i64::from(max))?;
    u32::try_from(v).map_err(|_| Error::config(key, value, "out of range"))
}

/// Parses a float in `min..=max`.
pub(crate) fn parse_f64(key: &str, value: &str, min: f64, max: f64) -> Result<f64> {
    let v: f64 = value
        .trim()
        .parse()
        .map_err(|_| Error::config(key, value, "not a number"))?;
    if !(min..=max).contains(&v) {
        return Err(Error::config(
            key,
            value,
            format!("must be between {min} and {max}"),
        ));
    }
    Ok(v)
}

/// Parses `true` or `false` (any ASCII case, as Kafka's `ConfigDef` does).
pub(crate) fn parse_bool(key: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Error::config(key, value, "must be true or false")),
    }
}

/// Parses one of a fixed set of spellings, matched ignoring ASCII case and surrounding spaces.
/// `expected` completes the error message "must be ...".
pub(crate) fn parse_choice<T: Copy>(
    key: &str,
    value: &str,
    choices: &[(&str, T)],
    expected: &str,
) -> Result<T> {
    let wanted = value.trim();
    choices
        .iter()
        .find(|(spelling, _)| spelling.eq_ignore_ascii_case(wanted))
        .map(|(_, choice)| *choice)
        .ok_or_else(|| Error::config(key, value, format!("must be {expected}")))
}

/// Splits a Kafka list value (`a, b,c`) into its trimmed, non-empty items.
pub(crate) fn list_items(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

/// Checks that `value` lies in `min..=max`, for typed setters validated at use.
pub(crate) fn check_range<T: PartialOrd + std::fmt::Display>(
    key: &str,
    value: T,
    min: T,
    max: T,
) -> Result<()> {
    if value < min || value > max {
        return Err(Error::config(
            key,
            &value,
            format!("must be between {min} and {max}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_key() {
        let e = parse_i64("retention.ms", "ten", -1, i64::MAX).unwrap_err();
        assert!(e.to_string().contains("retention.ms"), "{e}");
        let e = parse_i32("num.partitions", "0", 1, 1000).unwrap_err();
        assert!(e.to_string().contains("between 1 and 1000"), "{e}");
        assert!(parse_bool("x", "TRUE").unwrap());
        assert!(parse_bool("x", "yes").is_err());
        assert!(parse_f64("r", "NaN", 0.0, 1.0).is_err());
        let choices = [("all", 2), ("-1", 2), ("1", 1)];
        assert_eq!(
            parse_choice("acks", " ALL ", &choices, "all or 1").unwrap(),
            2
        );
        let e = parse_choice("acks", "2", &choices, "all or 1").unwrap_err();
        assert_eq!(e.to_string(), "invalid config acks=\"2\": must be all or 1");
        assert_eq!(list_items(" a, ,b,").collect::<Vec<_>>(), ["a", "b"]);
    }
}
