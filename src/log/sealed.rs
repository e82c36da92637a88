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

/// The big-endian i64 at `at` of a body whose length the caller checked.
pub(crate) fn i64_at(body: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&body[at..at + 8]);
    i64::from_be_bytes(a)
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
}
