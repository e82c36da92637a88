//! Zig-zag varints, as Kafka's record format uses them (protobuf `sint32`/`sint64`).
//!
//! A varint for an `i32` takes at most 5 bytes and one for an `i64` at most 10; the decoder
//! rejects longer encodings and values that do not fit, so arbitrary input never overflows.

use super::DecodeError;

/// Most bytes a zig-zag varint of an `i32` takes.
pub const VARINT_BYTES_MAX: usize = 5;
/// Most bytes a zig-zag varint of an `i64` takes.
pub const VARLONG_BYTES_MAX: usize = 10;

fn zigzag32(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}

fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Bytes the varint of `v` takes.
pub fn varint_size(v: i32) -> usize {
    unsigned_size(u64::from(zigzag32(v)))
}

/// Bytes the varlong of `v` takes.
pub fn varlong_size(v: i64) -> usize {
    unsigned_size(zigzag64(v))
}

fn unsigned_size(mut u: u64) -> usize {
    let mut n = 1;
    while u >= 0x80 {
        u >>= 7;
        n += 1;
    }
    n
}

/// Appends the varint of `v`.
pub fn put_varint(out: &mut Vec<u8>, v: i32) {
    put_unsigned(out, u64::from(zigzag32(v)));
}

/// Appends the varlong of `v`.
pub fn put_varlong(out: &mut Vec<u8>, v: i64) {
    put_unsigned(out, zigzag64(v));
}

fn put_unsigned(out: &mut Vec<u8>, mut u: u64) {
    while u >= 0x80 {
        out.push((u as u8 & 0x7f) | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

/// Reads a varint from the front of `buf`, returning the value and the bytes it took.
#[inline]
pub fn get_varint(buf: &[u8]) -> Result<(i32, usize), DecodeError> {
    let (u, n) = get_unsigned(buf, VARINT_BYTES_MAX)?;
    let u = u32::try_from(u).map_err(|_| DecodeError::corrupt(0, "varint overflows 32 bits"))?;
    Ok((((u >> 1) as i32) ^ -((u & 1) as i32), n))
}

/// Reads a varlong from the front of `buf`, returning the value and the bytes it took.
#[inline]
pub fn get_varlong(buf: &[u8]) -> Result<(i64, usize), DecodeError> {
    let (u, n) = get_unsigned(buf, VARLONG_BYTES_MAX)?;
    Ok((unzigzag(u), n))
}

#[inline]
fn get_unsigned(buf: &[u8], bytes_max: usize) -> Result<(u64, usize), DecodeError> {
    // Most lengths and deltas fit one or two bytes: decide those without entering the loop.
    match buf {
        [b0, ..] if *b0 < 0x80 => Ok((u64::from(*b0), 1)),
        [b0, b1, ..] if *b1 < 0x80 => Ok((u64::from(b0 & 0x7f) | (u64::from(*b1) << 7), 2)),
        _ => get_unsigned_slow(buf, bytes_max),
    }
}

/// Takes a zig-zag varint (of either width) off the front of `cur`; `None` when the bytes
/// are not a varint. For bytes already checked: no error is built, and this runs several times
/// per record on every read.
///
/// One and two bytes (values to ±8191, every length and delta of a small record) are decoded
/// here; longer ones by a call that takes and returns values only, so that nothing of the
/// caller's has to live in memory for it (a `&mut pos` there kept a parser's position in a
/// stack slot, stored and reloaded for every field).
#[inline(always)]
pub(crate) fn take_zigzag(cur: &mut &[u8]) -> Option<i64> {
    let (u, rest): (u64, &[u8]) = match **cur {
        [b0, ref rest @ ..] if b0 < 0x80 => (u64::from(b0), rest),
        [b0, b1, ref rest @ ..] if b1 < 0x80 => (u64::from(b0 & 0x7f) | (u64::from(b1) << 7), rest),
        _ => {
            let (v, n) = zigzag_long(cur)?;
            *cur = cur.get(n..)?;
            return Some(v);
        }
    };
    *cur = rest;
    Some(unzigzag(u))
}

/// A zig-zag varint of any length at the front of `buf`, and its length in bytes.
#[cold]
fn zigzag_long(buf: &[u8]) -> Option<(i64, usize)> {
    let (u, n) = get_unsigned_slow(buf, VARLONG_BYTES_MAX).ok()?;
    Some((unzigzag(u), n))
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

#[cold]
fn get_unsigned_slow(buf: &[u8], bytes_max: usize) -> Result<(u64, usize), DecodeError> {
    let mut u: u64 = 0;
    for (i, &b) in buf.iter().enumerate().take(bytes_max) {
        let shift = 7 * i as u32;
        let bits = u64::from(b & 0x7f);
        // The tenth byte of a varlong may only carry the top bit of the value.
        if shift == 63 && bits > 1 {
            return Err(DecodeError::corrupt(i, "varint overflows 64 bits"));
        }
        u |= bits << shift;
        if b & 0x80 == 0 {
            return Ok((u, i + 1));
        }
    }
    if buf.len() < bytes_max {
        Err(DecodeError::corrupt(
            buf.len(),
            "varint runs past the end of its record",
        ))
    } else {
        Err(DecodeError::corrupt(
            bytes_max,
            "varint longer than its type allows",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn kafka_examples() {
        // kafka-semantics.md §5: 0→00, −1→01, 1→02, 300→D8 04.
        for (v, bytes) in [
            (0, &[0x00][..]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (300, &[0xD8, 0x04]),
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out, bytes, "{v}");
            assert_eq!(get_varint(&out).unwrap(), (v, bytes.len()));
            assert_eq!(varint_size(v), bytes.len());
        }
    }

    #[test]
    fn rejects_overlong_and_truncated() {
        assert!(get_varint(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]).is_err());
        assert!(get_varint(&[0xff, 0xff, 0xff, 0xff, 0x7f]).is_err()); // > u32
        assert!(get_varint(&[0x80]).is_err());
        assert!(get_varint(&[]).is_err());
        assert!(get_varlong(&[0xff; 10]).is_err());
        assert!(
            get_varlong(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]).is_err()
        );
    }

    proptest! {
        #[test]
        fn varint_round_trip(v: i32) {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            prop_assert_eq!(out.len(), varint_size(v));
            prop_assert_eq!(get_varint(&out).unwrap(), (v, out.len()));
        }

        #[test]
        fn varlong_round_trip(v: i64) {
            let mut out = Vec::new();
            put_varlong(&mut out, v);
            prop_assert_eq!(out.len(), varlong_size(v));
            prop_assert_eq!(get_varlong(&out).unwrap(), (v, out.len()));
        }

        #[test]
        fn decoders_never_panic(bytes: Vec<u8>) {
            let _ = get_varint(&bytes);
            let _ = get_varlong(&bytes);
        }
    }
}
