//! The frame of the small metadata files of a partition directory (`recovery-point`,
//! `cleaner-checkpoint`, `cleaner-swap`): a 4-byte magic, a big-endian u16 version, the body,
//! and a big-endian CRC-32 (IEEE) of everything before it.
//!
//! Invariant: [`open`] returns a body only when magic, version and CRC all hold, so a torn,
//! foreign or damaged file is never mistaken for one of ours.

/// Bytes the frame adds around a body.
pub(crate) const FRAME_BYTES: usize = 4 + 2 + 4;

/// Frames `body`.
pub(crate) fn seal(magic: &[u8; 4], version: u16, body: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(FRAME_BYTES + body.len());
    b.extend_from_slice(magic);
    b.extend_from_slice(&version.to_be_bytes());
    b.extend_from_slice(body);
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_be_bytes());
    b
}

/// The body of a framed file, if magic, version and CRC hold.
pub(crate) fn open<'a>(magic: &[u8; 4], version: u16, bytes: &'a [u8]) -> Option<&'a [u8]> {
    let (framed, crc) = bytes.split_last_chunk::<4>()?;
    let (head, body) = framed.split_first_chunk::<6>()?;
    let ok = head[..4] == magic[..]
        && head[4..] == version.to_be_bytes()
        && u32::from_be_bytes(*crc) == crc32fast::hash(framed);
    ok.then_some(body)
}

/// Frames a body of big-endian i64s (the checkpoints' bodies).
pub(crate) fn seal_i64s(magic: &[u8; 4], version: u16, values: &[i64]) -> Vec<u8> {
    let body: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
    seal(magic, version, &body)
}

/// The `N` big-endian i64s of a framed file, if magic, version and CRC hold and the body is
/// exactly that long.
pub(crate) fn open_i64s<const N: usize>(
    magic: &[u8; 4],
    version: u16,
    bytes: &[u8],
) -> Option<[i64; N]> {
    let body = open(magic, version, bytes).filter(|body| body.len() == N * 8)?;
    let mut values = [0i64; N];
    for (v, chunk) in values.iter_mut().zip(body.chunks_exact(8)) {
        *v = i64::from_be_bytes(chunk.try_into().ok()?);
    }
    Some(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_damage_is_refused() {
        let b = seal(b"TEST", 3, b"body bytes");
        assert_eq!(open(b"TEST", 3, &b), Some(&b"body bytes"[..]));
        assert_eq!(open(b"TEST", 4, &b), None);
        assert_eq!(open(b"TSET", 3, &b), None);
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 0x01;
            assert_eq!(open(b"TEST", 3, &bad), None, "byte {i}");
        }
        for len in 0..b.len() {
            assert_eq!(open(b"TEST", 3, &b[..len]), None, "length {len}");
        }
    }

    #[test]
    fn i64_bodies_round_trip_and_need_their_exact_length() {
        let b = seal_i64s(b"TEST", 1, &[-1, 0, i64::MAX]);
        assert_eq!(b.len(), FRAME_BYTES + 24);
        assert_eq!(open_i64s::<3>(b"TEST", 1, &b), Some([-1, 0, i64::MAX]));
        assert_eq!(open_i64s::<2>(b"TEST", 1, &b), None);
        assert_eq!(open_i64s::<4>(b"TEST", 1, &b), None);
    }
}
