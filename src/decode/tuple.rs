//! `CTA_TUPLE_*` nests → `model::Tuple`. Owns the per-protocol packing of the two 16-bit
//! fields (ports, ICMP type/code/id, GRE keys) exactly as `model::tuple` documents it.
//! It must not decide anything about flows or expectations.

use super::attr::{be16, malformed, u8_of, Attrs};
use super::DecodeError;
use crate::abi::*;
use crate::model::tuple::{proto, Family, Tuple};

/// Decode one `CTA_TUPLE_*` nest. `family` comes from `nfgenmsg`; the address attributes
/// must agree with it. Both an IP nest with two addresses and a proto nest with
/// `CTA_PROTO_NUM` are required: without them the tuple names nothing. A zone inside
/// the nest (`CTA_TUPLE_ZONE`) is read by `tuple_into` only: the nests decoded here (an
/// expectation's, a flow's master) carry none.
pub(crate) fn tuple(ctx: &'static str, family: Family, body: &[u8]) -> Result<Tuple, DecodeError> {
    let mut t = Tuple::default();
    tuple_into(ctx, family, body, &mut t)?;
    Ok(t)
}

/// [`tuple`] written into `t` in place, returning the nest's zone (`CTA_TUPLE_ZONE`). On the dump's hot path a
/// flow's tuples are decoded straight into the flow: building a 38-byte tuple from narrow
/// writes and then moving it (through `Decoded`, an `Option`, the flow) makes every move
/// wait on those writes (a store-forwarding stall per move), which cost more than the walk.
///
/// Inlined (with `ip` and `l4`) for the same reason, and because a flow has two tuples.
#[inline]
pub(crate) fn tuple_into(
    ctx: &'static str,
    family: Family,
    body: &[u8],
    t: &mut Tuple,
) -> Result<Option<u16>, DecodeError> {
    *t = Tuple {
        family,
        ..Tuple::default()
    };
    let mut zone = None;
    let mut have_ip = false;
    let mut have_proto = false;
    for a in Attrs::new(body, ctx) {
        let (kind, p) = a?;
        match kind {
            CTA_TUPLE_IP => {
                ip(family, p, t)?;
                have_ip = true;
            }
            CTA_TUPLE_PROTO => {
                l4(p, t)?;
                have_proto = true;
            }
            CTA_TUPLE_ZONE => zone = Some(be16(ctx, kind, p)?),
            _ => {}
        }
    }
    if !have_ip {
        return Err(malformed(ctx, CTA_TUPLE_IP, "missing"));
    }
    if !have_proto {
        return Err(malformed(ctx, CTA_TUPLE_PROTO, "missing"));
    }
    Ok(zone)
}

#[inline]
fn ip(family: Family, body: &[u8], t: &mut Tuple) -> Result<(), DecodeError> {
    match family {
        Family::Ipv4 => ip_n::<4>(CTA_IP_V4_SRC, CTA_IP_V4_DST, body, t),
        Family::Ipv6 => ip_n::<16>(CTA_IP_V6_SRC, CTA_IP_V6_DST, body, t),
    }
}

/// The addresses of one family: `N` bytes each, a constant so the copy is a plain move
/// rather than a `memcpy` call of a run-time length.
#[inline(always)]
fn ip_n<const N: usize>(
    src_attr: u16,
    dst_attr: u16,
    body: &[u8],
    t: &mut Tuple,
) -> Result<(), DecodeError> {
    const CTX: &str = "CTA_TUPLE_IP";
    let (mut src, mut dst) = (false, false);
    for a in Attrs::new(body, CTX) {
        let (kind, p) = a?;
        let slot = match kind {
            k if k == src_attr => {
                src = true;
                &mut t.src
            }
            k if k == dst_attr => {
                dst = true;
                &mut t.dst
            }
            CTA_IP_V4_SRC | CTA_IP_V4_DST | CTA_IP_V6_SRC | CTA_IP_V6_DST => {
                return Err(malformed(CTX, kind, "address family differs from nfgenmsg"))
            }
            _ => continue,
        };
        let a: &[u8; N] = p
            .try_into()
            .map_err(|_| malformed(CTX, kind, "address length"))?;
        // Built whole and stored at once (see `tuple_into` on narrow writes).
        let mut whole = [0u8; 16];
        whole[..N].copy_from_slice(a);
        *slot = whole;
    }
    if !(src && dst) {
        return Err(malformed(CTX, src_attr, "source or destination missing"));
    }
    Ok(())
}

#[inline]
fn l4(body: &[u8], t: &mut Tuple) -> Result<(), DecodeError> {
    const CTX: &str = "CTA_TUPLE_PROTO";
    let mut num = None;
    let (mut ty, mut code, mut id) = (0u8, 0u8, 0u16);
    for a in Attrs::new(body, CTX) {
        let (kind, p) = a?;
        match kind {
            CTA_PROTO_NUM => num = Some(u8_of(CTX, kind, p)?),
            // tcp, udp, udplite, sctp, dccp ports; gre keys travel in the same attributes
            // (nf_ct_port_tuple_to_nlattr, used by nf_conntrack_proto_gre.c).
            CTA_PROTO_SRC_PORT => t.sport = be16(CTX, kind, p)?,
            CTA_PROTO_DST_PORT => t.dport = be16(CTX, kind, p)?,
            CTA_PROTO_ICMP_ID | CTA_PROTO_ICMPV6_ID => id = be16(CTX, kind, p)?,
            CTA_PROTO_ICMP_TYPE | CTA_PROTO_ICMPV6_TYPE => ty = u8_of(CTX, kind, p)?,
            CTA_PROTO_ICMP_CODE | CTA_PROTO_ICMPV6_CODE => code = u8_of(CTX, kind, p)?,
            _ => {}
        }
    }
    let num = num.ok_or_else(|| malformed(CTX, CTA_PROTO_NUM, "missing"))?;
    t.proto = num;
    if proto::is_icmp(num) {
        t.sport = id;
        t.dport = (u16::from(ty) << 8) | u16::from(code);
    }
    Ok(())
}
