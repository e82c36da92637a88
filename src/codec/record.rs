//! One record inside a batch: varint-framed, Kafka's record layout.
//!
//! ```text
//! length varint | attributes i8 | timestampDelta varlong | offsetDelta varint
//! keyLength varint (-1 = null) | key | valueLength varint (-1 = null) | value
//! headerCount varint | headers: keyLength varint, key (UTF-8), valueLength varint, value
//! ```

use super::varint::{
    get_varint, get_varlong, put_varint, put_varlong, take_zigzag, varint_size, varlong_size,
};
use super::DecodeError;
use crate::types::Header;

/// Bytes a record's key, value and headers take with their length prefixes: the part of its
/// size that does not depend on where in a batch it lands. `None` when a field is too large
/// for the format.
pub(crate) fn fields_size(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[Header],
) -> Option<usize> {
    let mut size = bytes_size(key)? + bytes_size(value)?;
    size += varint_size(i32::try_from(headers.len()).ok()?);
    for h in headers {
        size += bytes_size(Some(h.key.as_bytes()))?;
        size += bytes_size(h.value.as_deref())?;
    }
    Some(size)
}

/// Bytes a record takes, its own length prefix included, and its body length, from its
/// [`fields_size`] and its deltas: cheap arithmetic, for a caller that sizes one record at more
/// than one place.
#[inline]
pub(crate) fn placed_size(
    fields: usize,
    timestamp_delta: i64,
    offset_delta: i32,
) -> Option<(usize, i32)> {
    let body = 1 + varlong_size(timestamp_delta) + varint_size(offset_delta) + fields;
    let body_len = i32::try_from(body).ok()?;
    Some((varint_size(body_len) + body, body_len))
}

fn bytes_size(b: Option<&[u8]>) -> Option<usize> {
    match b {
        None => Some(varint_size(-1)),
        Some(b) => Some(varint_size(i32::try_from(b.len()).ok()?) + b.len()),
    }
}

/// Appends one record. The caller has checked sizes with [`placed_size`].
pub(crate) fn encode(
    out: &mut Vec<u8>,
    body_len: i32,
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[Header],
) {
    let start = out.len();
    put_varint(out, body_len);
    let body_start = out.len();
    out.push(0); // attributes: unused, as in Kafka
    put_varlong(out, timestamp_delta);
    put_varint(out, offset_delta);
    put_bytes(out, key);
    put_bytes(out, value);
    put_varint(out, headers.len() as i32);
    for h in headers {
        put_bytes(out, Some(h.key.as_bytes()));
        put_bytes(out, h.value.as_deref());
    }
    debug_assert_eq!(out.len() - body_start, body_len as usize);
    debug_assert!(out.len() > start);
}

/// Appends the record encoded at the front of `raw` (already checked) with its timestamp delta
/// replaced by `timestamp_delta`; every other byte is copied. `None` (nothing appended) when
/// `raw` does not start with a record.
pub(crate) fn encode_with_timestamp_delta(
    out: &mut Vec<u8>,
    raw: &[u8],
    timestamp_delta: i64,
) -> Option<()> {
    let mut cur = raw;
    let len = usize::try_from(take_zigzag(&mut cur)?).ok()?;
    let body = cur.get(..len)?;
    let mut rest = body.get(1..)?; // past the attributes byte
    take_zigzag(&mut rest)?;
    let new_len = i32::try_from(1 + varlong_size(timestamp_delta) + rest.len()).ok()?;
    put_varint(out, new_len);
    out.push(body[0]);
    put_varlong(out, timestamp_delta);
    out.extend_from_slice(rest);
    Some(())
}

fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}

/// A record inside a checked batch, borrowing the batch's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// Offset relative to the batch's base offset.
    pub offset_delta: i32,
    /// Timestamp relative to the batch's base timestamp.
    pub timestamp_delta: i64,
    /// The key, if any.
    pub key: Option<&'a [u8]>,
    /// The value; `None` is a tombstone.
    pub value: Option<&'a [u8]>,
    /// The headers.
    pub headers: RecordHeaders<'a>,
}

/// The headers of a [`RecordView`], decoded on iteration.
///
/// Even their count is read only when asked for: most readers never look at headers, and
/// decoding the count took a load from the end of every record (~6% of a 100-byte read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordHeaders<'a> {
    /// From the header count on, until the count is decoded; then the headers not yet
    /// iterated.
    bytes: &'a [u8],
    /// [`COUNT_UNREAD`] until decoded.
    count: usize,
}

/// `RecordHeaders::count` before the count is decoded.
const COUNT_UNREAD: usize = usize::MAX;

impl<'a> RecordHeaders<'a> {
    /// Headers whose count is the varint at the front of `bytes`.
    fn unread(bytes: &'a [u8]) -> Self {
        RecordHeaders {
            bytes,
            count: COUNT_UNREAD,
        }
    }

    /// The headers left and their bytes, decoding the count if that is still to do. A
    /// checked record cannot fail here; if one does, it has no headers.
    #[inline]
    fn decoded(&self) -> (usize, &'a [u8]) {
        if self.count != COUNT_UNREAD {
            return (self.count, self.bytes);
        }
        match get_varint(self.bytes) {
            Ok((count, n)) => (usize::try_from(count).unwrap_or(0), &self.bytes[n..]),
            Err(_) => (0, &[]),
        }
    }

    /// How many headers there are.
    #[inline]
    pub fn len(&self) -> usize {
        self.decoded().0
    }

    /// True when there are none.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn next_nullable(&mut self) -> Option<(&'a str, Option<&'a [u8]>)> {
        (self.count, self.bytes) = self.decoded();
        if self.count == 0 {
            return None;
        }
        // The batch was checked by `parse`, so these cannot fail; stop quietly if they do.
        let (key, n) = get_bytes(self.bytes).ok()?;
        let rest = &self.bytes[n..];
        let (value, m) = get_bytes(rest).ok()?;
        self.bytes = &rest[m..];
        self.count -= 1;
        let key = std::str::from_utf8(key.unwrap_or_default()).ok()?;
        Some((key, value))
    }
}

/// Each header's key and value; a null value (length -1, Kafka's header values are nullable)
/// is `None`, an empty one `Some(&[])`.
impl<'a> Iterator for RecordHeaders<'a> {
    type Item = (&'a str, Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        self.next_nullable()
    }
}

/// Parses one record from the front of `buf`, returning it and the bytes it took.
pub(crate) fn parse(buf: &[u8]) -> Result<(RecordView<'_>, usize), DecodeError> {
    let (body_len, n) = get_varint(buf)?;
    let body_len =
        usize::try_from(body_len).map_err(|_| DecodeError::corrupt(0, "negative record length"))?;
    let end = n
        .checked_add(body_len)
        .filter(|&e| e <= buf.len())
        .ok_or_else(|| DecodeError::corrupt(0, "record length runs past the end of its batch"))?;
    let body = &buf[n..end];
    parse_body(body).map(|r| (r, end)).map_err(|e| e.at(n))
}

fn parse_body(body: &[u8]) -> Result<RecordView<'_>, DecodeError> {
    let mut pos = 1; // attributes
    if body.is_empty() {
        return Err(DecodeError::corrupt(0, "empty record"));
    }
    let (timestamp_delta, n) = get_varlong(&body[pos..]).map_err(|e| e.at(pos))?;
    pos += n;
    let (offset_delta, n) = get_varint(&body[pos..]).map_err(|e| e.at(pos))?;
    pos += n;
    if offset_delta < 0 {
        return Err(DecodeError::corrupt(pos, "negative offset delta"));
    }
    let (key, n) = get_bytes(&body[pos..]).map_err(|e| e.at(pos))?;
    pos += n;
    let (value, n) = get_bytes(&body[pos..]).map_err(|e| e.at(pos))?;
    pos += n;
    let headers_start = pos;
    let (count, n) = get_varint(&body[pos..]).map_err(|e| e.at(pos))?;
    pos += n;
    let count =
        usize::try_from(count).map_err(|_| DecodeError::corrupt(pos, "negative header count"))?;
    for _ in 0..count {
        let (hkey, n) = get_bytes(&body[pos..]).map_err(|e| e.at(pos))?;
        let hkey = hkey.ok_or_else(|| DecodeError::corrupt(pos, "null header key"))?;
        if std::str::from_utf8(hkey).is_err() {
            return Err(DecodeError::corrupt(pos, "header key is not UTF-8"));
        }
        pos += n;
        let (_, n) = get_bytes(&body[pos..]).map_err(|e| e.at(pos))?;
        pos += n;
    }
    if pos != body.len() {
        return Err(DecodeError::corrupt(
            pos,
            "record has bytes past its last header",
        ));
    }
    Ok(RecordView {
        offset_delta,
        timestamp_delta,
        key,
        value,
        headers: RecordHeaders::unread(&body[headers_start..]),
    })
}

/// Parses a record of a batch that was already checked: same result as [`parse`], without
/// building errors (bounds are still checked: bad bytes give `None`, never a panic).
#[inline]
pub(crate) fn parse_checked(buf: &[u8]) -> Option<(RecordView<'_>, usize)> {
    // A cursor that shrinks from the front keeps its pointer and length in registers; an
    // index into the slice was kept on the stack, and every field paid a store and a reload.
    let mut cur = buf;
    let body_len = usize::try_from(take_zigzag(&mut cur)?).ok()?;
    let end = (buf.len() - cur.len()).checked_add(body_len)?;
    let mut body = cur.get(..body_len)?.get(1..)?; // past the attributes
    let timestamp_delta = take_zigzag(&mut body)?;
    let offset_delta = i32::try_from(take_zigzag(&mut body)?).ok()?;
    let key = take_bytes(&mut body)?;
    let value = take_bytes(&mut body)?;
    let record = RecordView {
        offset_delta,
        timestamp_delta,
        key,
        value,
        headers: RecordHeaders::unread(body),
    };
    Some((record, end))
}

/// Takes a length-prefixed byte string (-1 = null) off the front of `cur`.
#[inline(always)]
fn take_bytes<'a>(cur: &mut &'a [u8]) -> Option<Option<&'a [u8]>> {
    let len = take_zigzag(cur)?;
    if len == -1 {
        return Some(None);
    }
    let len = usize::try_from(len).ok()?;
    let (bytes, rest) = cur.split_at_checked(len)?;
    *cur = rest;
    Some(Some(bytes))
}

/// Reads a length-prefixed byte string (-1 = null).
fn get_bytes(buf: &[u8]) -> Result<(Option<&[u8]>, usize), DecodeError> {
    let (len, n) = get_varint(buf)?;
    if len == -1 {
        return Ok((None, n));
    }
    let len = usize::try_from(len).map_err(|_| DecodeError::corrupt(0, "negative length"))?;
    let end = n
        .checked_add(len)
        .filter(|&e| e <= buf.len())
        .ok_or_else(|| DecodeError::corrupt(0, "field length runs past the end of its record"))?;
    Ok((Some(&buf[n..end]), end))
}

/// Iterates the records of a checked batch.
#[derive(Clone, Debug, Default)]
pub struct RecordIter<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) remaining: usize,
}

impl RecordIter<'_> {
    /// Skips `n` records reading only their length prefixes (cheaper than decoding them).
    pub(crate) fn skip_records(&mut self, n: usize) {
        for _ in 0..n.min(self.remaining) {
            let mut cur = self.bytes;
            let next = take_zigzag(&mut cur)
                .and_then(|len| usize::try_from(len).ok())
                .and_then(|len| cur.get(len..));
            let Some(rest) = next else {
                debug_assert!(false, "skipping records of an unchecked batch");
                self.remaining = 0;
                return;
            };
            self.bytes = rest;
            self.remaining -= 1;
        }
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = RecordView<'a>;

    #[inline]
    fn next(&mut self) -> Option<RecordView<'a>> {
        if self.remaining == 0 {
            return None;
        }
        match parse_checked(self.bytes) {
            Some((record, n)) => {
                self.bytes = &self.bytes[n..];
                self.remaining -= 1;
                Some(record)
            }
            None => {
                debug_assert!(false, "record iteration over an unchecked batch");
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smallest_record_matches_kafka() {
        // kafka-semantics.md §5: null key, null value, no headers, deltas 0 = 0C 00 00 00 01 01 00.
        let (size, body) = placed_size(fields_size(None, None, &[]).unwrap(), 0, 0).unwrap();
        let mut out = Vec::new();
        encode(&mut out, body, 0, 0, None, None, &[]);
        assert_eq!(out, [0x0C, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00]);
        assert_eq!(size, 7);
        let (r, n) = parse(&out).unwrap();
        assert_eq!(n, 7);
        assert_eq!((r.key, r.value, r.headers.len()), (None, None, 0));
    }

    proptest::proptest! {
        #[test]
        fn checked_parser_agrees_with_full_parser(bytes: Vec<u8>) {
            if let Ok((r, n)) = parse(&bytes) {
                proptest::prop_assert_eq!(parse_checked(&bytes), Some((r, n)));
            }
        }
    }

    #[test]
    fn a_null_header_value_is_none_when_asked_and_empty_otherwise() {
        // Kafka's record with headers "a" = null and "b" = "" (kafka-python writes a null header
        // value as length -1): length, attributes, deltas, null key, value "v", 2 headers.
        let body = [0u8, 0, 0, 1, 2, b'v', 4, 2, b'a', 1, 2, b'b', 0];
        let mut bytes = vec![(body.len() * 2) as u8];
        bytes.extend_from_slice(&body);
        let (r, n) = parse(&bytes).unwrap();
        assert_eq!(n, bytes.len());
        assert_eq!(
            r.headers.clone().collect::<Vec<_>>(),
            vec![("a", None), ("b", Some(&b""[..]))]
        );
    }

    #[test]
    fn rejects_trailing_bytes_and_bad_utf8() {
        let mut out = Vec::new();
        let headers = [Header::new("k", "v")];
        let fields = fields_size(Some(b"key"), Some(b"val"), &headers).unwrap();
        let (_, body) = placed_size(fields, 5, 1).unwrap();
        encode(&mut out, body, 5, 1, Some(b"key"), Some(b"val"), &headers);
        let (r, _) = parse(&out).unwrap();
        assert_eq!(
            r.headers.clone().collect::<Vec<_>>(),
            vec![("k", Some(&b"v"[..]))]
        );
        let mut bad = out.clone();
        let key_pos = bad.len() - 4; // header key byte
        bad[key_pos] = 0xff;
        assert!(parse(&bad).is_err());
        let mut longer = out.clone();
        longer[0] += 2; // claim one more byte of body
        longer.push(0);
        assert!(parse(&longer).is_err());
    }
}
