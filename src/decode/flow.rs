//! The body of an `NFNL_SUBSYS_CTNETLINK` message (`enum ctattr_type`) → `model::Flow`.
//!
//! Mirrors what `ctnetlink_fill_info` (net/netfilter/nf_conntrack_netlink.c) emits. Rare
//! fields are gathered in a stack `Extra` and boxed only if one of them is present, so the
//! common flow costs no allocation at all. It must not touch sockets or the store.

use super::attr::{be16, be32, be64, malformed, string, u8_of, Attrs};
use super::tuple::{tuple, tuple_into};
use super::DecodeError;
use crate::abi::*;
use crate::model::flow::{Counter, Extra, ExtraSlot, Flow};
use crate::model::helper;
use crate::model::tuple::{Family, Tuple};

const CTX: &str = "ctnetlink";

/// Decode a flow's body into a new `Flow` (see `flow_into`).
pub(crate) fn flow(family: Family, body: &[u8]) -> Result<Flow, DecodeError> {
    let mut f = Flow::new(Default::default());
    flow_into(family, body, &mut f)?;
    Ok(f)
}

/// Decode a flow's body into `f`, a `Flow::new` the caller placed where the flow is to stay
/// (a dump's batch): the flow is built in place, never moved while its fields are being
/// written (see `tuple::tuple_into`).
#[inline]
pub(crate) fn flow_into(family: Family, body: &[u8], f: &mut Flow) -> Result<(), DecodeError> {
    let mut have_orig = false;
    let mut reply = None;
    let mut extra = Extra::default();
    // Whether `extra` got anything: cheaper than comparing its ~190 bytes with an empty one
    // for every flow, as most flows have nothing rare.
    let mut rare = false;
    for a in Attrs::new(body, CTX) {
        let (kind, p) = a?;
        match kind {
            CTA_TUPLE_ORIG => {
                let zone = tuple_into("CTA_TUPLE_ORIG", family, p, &mut f.orig)?;
                extra.zone_orig = zone;
                rare |= zone.is_some();
                have_orig = true;
            }
            CTA_TUPLE_REPLY => {
                let r = reply.get_or_insert_with(Tuple::default);
                let zone = tuple_into("CTA_TUPLE_REPLY", family, p, r)?;
                extra.zone_reply = zone;
                rare |= zone.is_some();
            }
            CTA_TUPLE_MASTER => {
                extra.master = Some(tuple("CTA_TUPLE_MASTER", family, p)?);
                rare = true;
            }
            CTA_STATUS => f.status = be32(CTX, kind, p)?,
            CTA_PROTOINFO => f.state = protoinfo(p)?,
            CTA_HELP => {
                for h in Attrs::new(p, "CTA_HELP") {
                    let (k, v) = h?;
                    if k == CTA_HELP_NAME {
                        f.helper = helper::intern(&string(v));
                    }
                }
            }
            CTA_TIMEOUT => f.timeout = be32(CTX, kind, p)?,
            CTA_MARK => f.mark = be32(CTX, kind, p)?,
            CTA_USE => f.use_count = be32(CTX, kind, p)?.min(u32::from(u16::MAX)) as u16,
            CTA_ID => f.id = be32(CTX, kind, p)?,
            CTA_ZONE => f.zone = be16(CTX, kind, p)?,
            CTA_COUNTERS_ORIG | CTA_COUNTERS_REPLY => {
                let c = counter(p)?;
                let slot = extra.counters.get_or_insert_with(Default::default);
                slot[usize::from(kind == CTA_COUNTERS_REPLY)] = c;
                rare = true;
            }
            CTA_TIMESTAMP => {
                extra.timestamp = Some(timestamp(p)?);
                rare = true;
            }
            CTA_LABELS => {
                extra.labels = labels(p)?;
                rare = true;
            }
            CTA_SECMARK => {
                extra.secmark = be32(CTX, kind, p)?;
                rare = true;
            }
            CTA_SECCTX => {
                rare = true;
                for s in Attrs::new(p, "CTA_SECCTX") {
                    let (k, v) = s?;
                    if k == CTA_SECCTX_NAME {
                        extra.secctx = Some(string(v).into());
                    }
                }
            }
            _ => {}
        }
    }
    if !have_orig {
        return Err(malformed(CTX, CTA_TUPLE_ORIG, "missing"));
    }
    // `rare` only says something was stored; a zero label set or secmark is still empty.
    if rare && !extra.is_empty() {
        f.extra = ExtraSlot::boxed(Box::new(extra));
    }
    if let Some(r) = reply {
        // Stores the reply only when it is not the plain inverse (NAT): keeps Flow compact.
        f.set_reply(r);
    }
    Ok(())
}

/// `CTA_PROTOINFO` → the TCP/SCTP/DCCP state number (`NO_STATE` if none is present).
#[inline]
fn protoinfo(body: &[u8]) -> Result<u8, DecodeError> {
    let mut state = crate::model::flow::NO_STATE;
    for a in Attrs::new(body, "CTA_PROTOINFO") {
        let (kind, p) = a?;
        let (ctx, want) = match kind {
            CTA_PROTOINFO_TCP => ("CTA_PROTOINFO_TCP", CTA_PROTOINFO_TCP_STATE),
            CTA_PROTOINFO_SCTP => ("CTA_PROTOINFO_SCTP", CTA_PROTOINFO_SCTP_STATE),
            CTA_PROTOINFO_DCCP => ("CTA_PROTOINFO_DCCP", CTA_PROTOINFO_DCCP_STATE),
            _ => continue,
        };
        for s in Attrs::new(p, ctx) {
            let (k, v) = s?;
            if k == want {
                state = u8_of(ctx, k, v)?;
            }
        }
    }
    Ok(state)
}

/// `CTA_COUNTERS_*`: the kernel sends 64-bit values; old kernels sent the 32-bit forms.
fn counter(body: &[u8]) -> Result<Counter, DecodeError> {
    const C: &str = "CTA_COUNTERS";
    let mut c = Counter::default();
    for a in Attrs::new(body, C) {
        let (kind, p) = a?;
        match kind {
            CTA_COUNTERS_PACKETS => c.packets = be64(C, kind, p)?,
            CTA_COUNTERS_BYTES => c.bytes = be64(C, kind, p)?,
            CTA_COUNTERS32_PACKETS => c.packets = u64::from(be32(C, kind, p)?),
            CTA_COUNTERS32_BYTES => c.bytes = u64::from(be32(C, kind, p)?),
            _ => {}
        }
    }
    Ok(c)
}

fn timestamp(body: &[u8]) -> Result<(u64, u64), DecodeError> {
    const C: &str = "CTA_TIMESTAMP";
    let (mut start, mut stop) = (0, 0);
    for a in Attrs::new(body, C) {
        let (kind, p) = a?;
        match kind {
            CTA_TIMESTAMP_START => start = be64(C, kind, p)?,
            CTA_TIMESTAMP_STOP => stop = be64(C, kind, p)?,
            _ => {}
        }
    }
    Ok((start, stop))
}

/// `CTA_LABELS`: the kernel copies its `unsigned long bits[]` (host order,
/// `ctnetlink_dump_labels`), at most 128 bits. Bit n of the result is label n.
fn labels(p: &[u8]) -> Result<u128, DecodeError> {
    if p.len() > 16 || !p.len().is_multiple_of(4) {
        return Err(malformed(
            CTX,
            CTA_LABELS,
            "length is not 4..=16 in steps of 4",
        ));
    }
    let mut out = 0u128;
    for (i, w) in p.chunks_exact(4).enumerate() {
        // libnetfilter_conntrack reads 32-bit host-order words; on the 64-bit hosts we run
        // on, word i of a little-endian long array is bits 32i..32i+31.
        let w = u32::from_ne_bytes([w[0], w[1], w[2], w[3]]);
        out |= u128::from(w) << (32 * i);
    }
    Ok(out)
}
