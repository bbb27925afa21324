//! The body of an `NFNL_SUBSYS_CTNETLINK_EXP` message (`enum ctattr_expect`) →
//! `model::Expectation`, mirroring `ctnetlink_exp_dump_expect`
//! (net/netfilter/nf_conntrack_netlink.c). It must not touch sockets or the store.

use super::attr::{be16, be32, malformed, string, Attrs};
use super::tuple::tuple;
use super::DecodeError;
use crate::abi::*;
use crate::model::expect::{ExpectNat, Expectation};
use crate::model::helper;
use crate::model::tuple::Family;

const CTX: &str = "ctnetlink_exp";

pub(crate) fn expectation(family: Family, body: &[u8]) -> Result<Expectation, DecodeError> {
    let (mut t, mut mask, mut master) = (None, None, None);
    let mut e = Expectation::new(Default::default(), Default::default(), Default::default());
    for a in Attrs::new(body, CTX) {
        let (kind, p) = a?;
        match kind {
            CTA_EXPECT_MASTER => master = Some(tuple("CTA_EXPECT_MASTER", family, p)?),
            CTA_EXPECT_TUPLE => t = Some(tuple("CTA_EXPECT_TUPLE", family, p)?),
            CTA_EXPECT_MASK => mask = Some(tuple("CTA_EXPECT_MASK", family, p)?),
            CTA_EXPECT_TIMEOUT => e.timeout = be32(CTX, kind, p)?,
            CTA_EXPECT_ID => e.id = be32(CTX, kind, p)?,
            CTA_EXPECT_HELP_NAME => e.helper = helper::intern(&string(p)),
            CTA_EXPECT_ZONE => e.zone = be16(CTX, kind, p)?,
            CTA_EXPECT_FLAGS => e.flags = be32(CTX, kind, p)?,
            CTA_EXPECT_CLASS => e.class = be32(CTX, kind, p)?,
            CTA_EXPECT_NAT => e.nat = Some(nat(family, p)?),
            CTA_EXPECT_FN => e.func = Some(string(p).into()),
            _ => {}
        }
    }
    e.tuple = t.ok_or_else(|| malformed(CTX, CTA_EXPECT_TUPLE, "missing"))?;
    e.master = master.ok_or_else(|| malformed(CTX, CTA_EXPECT_MASTER, "missing"))?;
    let mut m = mask.ok_or_else(|| malformed(CTX, CTA_EXPECT_MASK, "missing"))?;
    // ctnetlink_exp_dump_mask emits the real l3/l4 numbers, not masks, in the mask tuple;
    // take them from the expectation tuple so the two always agree.
    m.family = e.tuple.family;
    m.proto = e.tuple.proto;
    e.mask = m;
    Ok(e)
}

fn nat(family: Family, body: &[u8]) -> Result<ExpectNat, DecodeError> {
    const C: &str = "CTA_EXPECT_NAT";
    let mut dir = 0;
    let mut t = None;
    for a in Attrs::new(body, C) {
        let (kind, p) = a?;
        match kind {
            CTA_EXPECT_NAT_DIR => dir = be32(C, kind, p)?,
            CTA_EXPECT_NAT_TUPLE => t = Some(tuple("CTA_EXPECT_NAT_TUPLE", family, p)?),
            _ => {}
        }
    }
    let tuple = t.ok_or_else(|| malformed(C, CTA_EXPECT_NAT_TUPLE, "missing"))?;
    Ok(ExpectNat { dir, tuple })
}
