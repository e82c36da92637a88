//! [`Headers`]: the headers of a record a consumer receives, one pointer wide.
//!
//! Most records carry no headers. As a `Vec<Header>` (three words) the empty list was a third
//! of what building a [`ConsumerRecord`](crate::ConsumerRecord) wrote, and the move of the
//! built record stalled on it (docs/ARCHITECTURE.md, "Thirteenth session: owned records").
//! `Headers` is a null pointer when empty and a boxed list otherwise.
//!
//! Invariant: the box is there only when the list is not empty, so two empty `Headers` are
//! equal however they were made.

use std::fmt;
use std::ops::{Deref, DerefMut};

use crate::types::Header;

/// A record's headers, in order; one pointer wide, no allocation when empty. Reads as a slice
/// of [`Header`] (`len`, `iter`, indexing, `for h in &headers`), compares with a
/// `Vec<Header>`, and converts from and into one.
///
/// ```
/// use embroker::{Header, Headers};
/// let mut headers = Headers::new();
/// assert!(headers.is_empty());
/// headers.push(Header::new("trace", "abc"));
/// assert_eq!(headers[0].key, "trace");
/// assert_eq!(headers, vec![Header::new("trace", "abc")]);
/// let list: Vec<Header> = headers.into_vec();
/// assert_eq!(list.len(), 1);
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
// The box is the point: one word in the record, where a `Vec` is three.
#[allow(clippy::box_collection)]
pub struct Headers(Option<Box<Vec<Header>>>);

impl Headers {
    /// No headers (no allocation).
    pub const fn new() -> Self {
        Headers(None)
    }

    /// Appends a header.
    pub fn push(&mut self, header: Header) {
        self.0.get_or_insert_with(Box::default).push(header);
    }

    /// The headers as a slice.
    pub fn as_slice(&self) -> &[Header] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }

    /// The headers as a `Vec`.
    pub fn into_vec(self) -> Vec<Header> {
        self.0.map_or_else(Vec::new, |b| *b)
    }
}

impl Deref for Headers {
    type Target = [Header];

    fn deref(&self) -> &[Header] {
        self.as_slice()
    }
}

impl DerefMut for Headers {
    fn deref_mut(&mut self) -> &mut [Header] {
        self.0.as_deref_mut().map_or(&mut [], Vec::as_mut_slice)
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl From<Vec<Header>> for Headers {
    fn from(headers: Vec<Header>) -> Self {
        if headers.is_empty() {
            Headers::new()
        } else {
            Headers(Some(Box::new(headers)))
        }
    }
}

impl From<Headers> for Vec<Header> {
    fn from(headers: Headers) -> Self {
        headers.into_vec()
    }
}

impl FromIterator<Header> for Headers {
    fn from_iter<I: IntoIterator<Item = Header>>(iter: I) -> Self {
        Headers::from(iter.into_iter().collect::<Vec<_>>())
    }
}

impl Extend<Header> for Headers {
    fn extend<I: IntoIterator<Item = Header>>(&mut self, iter: I) {
        for h in iter {
            self.push(h);
        }
    }
}

impl IntoIterator for Headers {
    type Item = Header;
    type IntoIter = std::vec::IntoIter<Header>;

    fn into_iter(self) -> Self::IntoIter {
        self.into_vec().into_iter()
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a Header;
    type IntoIter = std::slice::Iter<'a, Header>;

    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl PartialEq<Vec<Header>> for Headers {
    fn eq(&self, other: &Vec<Header>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl PartialEq<Headers> for Vec<Header> {
    fn eq(&self, other: &Headers) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl PartialEq<[Header]> for Headers {
    fn eq(&self, other: &[Header]) -> bool {
        self.as_slice() == other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pointer_wide_and_empty_lists_are_equal() {
        assert_eq!(std::mem::size_of::<Headers>(), std::mem::size_of::<usize>());
        assert_eq!(Headers::from(Vec::new()), Headers::new());
        let mut h: Headers = vec![Header::new("a", "1")].into();
        h.extend([Header::null("b")]);
        assert_eq!(h.len(), 2);
        assert_eq!(h, vec![Header::new("a", "1"), Header::null("b")]);
        assert_eq!(format!("{h:?}"), format!("{:?}", h.as_slice()));
        let keys: Vec<&str> = (&h).into_iter().map(|x| x.key.as_str()).collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(h.clone().into_iter().count(), 2);
        assert_eq!(Vec::from(h).len(), 2);
    }
}
