//! Attribute walking (`struct nlattr`) over netlink-packet-core's `NlasIterator`, and the
//! checked readers for attribute payloads. It owns framing and length checks only; what an
//! attribute means is decided by `flow.rs`, `expect.rs` and `tuple.rs`. It must never
//! panic: every slice access is bounds-checked and a bad length becomes a `DecodeError`.
//!
//! `NlasIterator` yields `NlaBuffer`s that borrow the receive buffer (no allocation per
//! attribute) and already masks `NLA_F_NESTED`/`NLA_F_NET_BYTEORDER` out of the kind. Its
//! own error is a formatted string; this wrapper turns a failure into our `DecodeError`,
//! naming the enclosing structure, which the user's error message carries.

use netlink_packet_core::{NlaBuffer, NlasIterator};

use super::DecodeError;
use crate::abi::NLA_TYPE_MASK;

/// Size of `struct nlattr` (nla_len, nla_type).
const NLA_HDRLEN: usize = 4;

/// Round up to the netlink 4-byte alignment (`NLA_ALIGN`), saturating instead of overflowing.
pub(crate) fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

/// Iterator over the attributes packed in one buffer (a message body or a nest).
#[derive(Clone)]
pub(crate) struct Attrs<'a> {
    inner: NlasIterator<&'a [u8]>,
    buf: &'a [u8],
    /// Offset of the next attribute, mirrored from the inner iterator so that a failure
    /// can say what was wrong with the bytes there.
    at: usize,
    context: &'static str,
}

impl<'a> Attrs<'a> {
    /// Walk `buf`; `context` names the enclosing structure for error messages.
    #[inline]
    pub(crate) fn new(buf: &'a [u8], context: &'static str) -> Attrs<'a> {
        Attrs {
            inner: NlasIterator::new(buf),
            buf,
            at: 0,
            context,
        }
    }

    /// Why the attribute at `self.at` could not be framed (`NlaBuffer::check_buffer_length`
    /// refused it): a header cut short, a length below the header, or past the buffer.
    #[cold]
    #[inline(never)]
    fn failure(&self) -> DecodeError {
        let rest = self.buf.get(self.at..).unwrap_or(&[]);
        let Some(hdr) = rest.get(..NLA_HDRLEN) else {
            return DecodeError::Truncated {
                need: NLA_HDRLEN,
                have: rest.len(),
            };
        };
        let len = usize::from(u16::from_ne_bytes([hdr[0], hdr[1]]));
        if len < NLA_HDRLEN {
            let kind = NlaBuffer::new(hdr).kind();
            return bad(self.context, kind, "length shorter than its header");
        }
        DecodeError::Truncated {
            need: len,
            have: rest.len(),
        }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<(u16, &'a [u8]), DecodeError>;

    // Inlined into each walk (a dump walks ~30 attributes per flow), so that only the
    // crate's own `NlasIterator::next` remains a call per attribute.
    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        match self.inner.next()? {
            Ok(nla) => {
                // `new_checked` proved HDRLEN <= nla_len <= the bytes left. The header is
                // read here from the borrowed bytes rather than through `kind()`/`value()`:
                // those are out-of-line calls returning a `Result` with a `String` error
                // each, which cost ~30% more decode CPU on a full dump, and `value()`
                // borrows the NlaBuffer where the payload must borrow the message.
                let bytes = nla.into_inner();
                let (len, kind) = match bytes {
                    [l0, l1, k0, k1, ..] => (
                        usize::from(u16::from_ne_bytes([*l0, *l1])),
                        u16::from_ne_bytes([*k0, *k1]) & NLA_TYPE_MASK,
                    ),
                    _ => return Some(Err(self.failure())),
                };
                let payload = bytes.get(NLA_HDRLEN..len).unwrap_or_default();
                // The last attribute may omit its trailing padding.
                self.at = self.at.saturating_add(align4(len));
                Some(Ok((kind, payload)))
            }
            // The inner iterator stops after one error: once framing is lost, the rest
            // cannot be trusted.
            Err(_) => Some(Err(self.failure())),
        }
    }
}

#[cold]
fn bad(context: &'static str, attr: u16, reason: &'static str) -> DecodeError {
    DecodeError::Attribute {
        context,
        attr,
        reason,
    }
}

/// A `u8` attribute (the kernel pads it, so only the first byte counts).
#[inline]
pub(crate) fn u8_of(ctx: &'static str, attr: u16, p: &[u8]) -> Result<u8, DecodeError> {
    p.first().copied().ok_or_else(|| bad(ctx, attr, "empty u8"))
}

/// A big-endian `u16` (`nla_put_be16`).
#[inline]
pub(crate) fn be16(ctx: &'static str, attr: u16, p: &[u8]) -> Result<u16, DecodeError> {
    match p {
        [a, b] => Ok(u16::from_be_bytes([*a, *b])),
        _ => Err(bad(ctx, attr, "expected 2 bytes")),
    }
}

/// A big-endian `u32` (`nla_put_be32`).
#[inline]
pub(crate) fn be32(ctx: &'static str, attr: u16, p: &[u8]) -> Result<u32, DecodeError> {
    let b: [u8; 4] = p
        .try_into()
        .map_err(|_| bad(ctx, attr, "expected 4 bytes"))?;
    Ok(u32::from_be_bytes(b))
}

/// A big-endian `u64` (`nla_put_be64`).
#[inline]
pub(crate) fn be64(ctx: &'static str, attr: u16, p: &[u8]) -> Result<u64, DecodeError> {
    let b: [u8; 8] = p
        .try_into()
        .map_err(|_| bad(ctx, attr, "expected 8 bytes"))?;
    Ok(u64::from_be_bytes(b))
}

/// A NUL-terminated string (`nla_put_string`); the terminator is optional. The kernel
/// does not promise UTF-8 (a userspace cthelper names itself), so invalid bytes are kept
/// as `\xNN` (`escape::lossless`) rather than dropping the whole entry.
pub(crate) fn string(p: &[u8]) -> std::borrow::Cow<'_, str> {
    let end = p.iter().position(|b| *b == 0).unwrap_or(p.len());
    crate::escape::lossless(&p[..end])
}

/// An error for a payload whose shape is wrong, for callers outside this file.
pub(crate) fn malformed(ctx: &'static str, attr: u16, reason: &'static str) -> DecodeError {
    bad(ctx, attr, reason)
}

/// One attribute as the kernel lays it out (host-order header, payload, padding), for
/// tests that build messages by hand.
#[cfg(test)]
pub(crate) fn nla(kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    v.extend_from_slice(&kind.to_ne_bytes());
    v.extend_from_slice(payload);
    while v.len() % 4 != 0 {
        v.push(0);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_and_masks_flags() {
        let mut buf = nla(0x8000 | 1, &[1, 2, 3, 4]);
        buf.extend(nla(7, &[9]));
        let got: Vec<_> = Attrs::new(&buf, "t").collect::<Result<_, _>>().unwrap();
        assert_eq!(got, vec![(1, &[1u8, 2, 3, 4][..]), (7, &[9u8][..])]);
    }

    #[test]
    fn rejects_short_and_overlong() {
        let buf = [2u8, 0, 1, 0];
        assert!(matches!(
            Attrs::new(&buf, "t").next(),
            Some(Err(DecodeError::Attribute { .. }))
        ));
        let buf = [12u8, 0, 1, 0, 0, 0];
        let mut it = Attrs::new(&buf, "t");
        assert!(matches!(
            it.next(),
            Some(Err(DecodeError::Truncated { .. }))
        ));
        assert!(it.next().is_none());
    }

    #[test]
    fn checked_readers() {
        assert_eq!(be16("t", 1, &[1, 2]).unwrap(), 0x0102);
        assert!(be16("t", 1, &[1]).is_err());
        assert!(be32("t", 1, &[1, 2, 3]).is_err());
        assert_eq!(be64("t", 1, &[0, 0, 0, 0, 0, 0, 1, 0]).unwrap(), 256);
        assert_eq!(string(b"ftp\0\0"), "ftp");
        assert_eq!(string(b"f\xfftp\0"), "f\\xfftp");
        assert!(u8_of("t", 1, &[]).is_err());
    }
}
