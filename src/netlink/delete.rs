//! Delete one entry: `conntrack -D` (a flow by its identity: original tuple and zones) and
//! `conntrack -D expect` (an expectation by zone + tuple). The kernel's id is passed too
//! (`CTA_ID` / `CTA_EXPECT_ID`): `ctnetlink_del_conntrack` then answers ENOENT when the
//! tuple now belongs to a different, recycled entry, so we never delete what the user did
//! not see. A request always carries a tuple: a delete without one is a flush.

use super::request::{family_of, Request};
use super::Conn;
use crate::abi::*;
use crate::error::Result;
use crate::model::store::FlowKey;
use crate::model::Tuple;

impl Conn {
    /// `conntrack -D`: delete the flow `key`, only if its id is still `id` (`None` skips
    /// the check). ENOENT (no entry with that identity, or a recycled one) is
    /// `Error::Netlink { op: "delete flow", errno: ENOENT }`.
    ///
    /// The kernel's lookup (`ctnetlink_del_conntrack` → `nf_conntrack_find_get`) takes one
    /// tuple and one zone: `CTA_ZONE` for a zone of both directions, `CTA_TUPLE_ZONE`
    /// inside the original tuple for zone-orig. A zone-reply entry is found by its
    /// original tuple in the default zone, which is its zone in that direction.
    pub fn delete_flow(&mut self, key: &FlowKey, id: Option<u32>) -> Result<()> {
        let mut req = Request::new(
            NFNL_SUBSYS_CTNETLINK,
            IPCTNL_MSG_CT_DELETE,
            NLM_F_ACK,
            family_of(&key.orig),
        );
        req.put_tuple_zoned(CTA_TUPLE_ORIG, &key.orig, key.zone_orig);
        if key.zone != 0 {
            req.put_be16(CTA_ZONE, key.zone);
        }
        if let Some(id) = id {
            req.put_be32(CTA_ID, id);
        }
        self.ack("delete flow", req)
    }

    /// `conntrack -D expect`: delete the expectation for `tuple` in `zone`, only if its id
    /// is still `id` (`None` skips the check).
    pub fn delete_expect(&mut self, zone: u16, tuple: &Tuple, id: Option<u32>) -> Result<()> {
        let mut req = Request::new(
            NFNL_SUBSYS_CTNETLINK_EXP,
            IPCTNL_MSG_EXP_DELETE,
            NLM_F_ACK,
            family_of(tuple),
        );
        req.put_tuple(CTA_EXPECT_TUPLE, tuple);
        if zone != 0 {
            req.put_be16(CTA_EXPECT_ZONE, zone);
        }
        if let Some(id) = id {
            req.put_be32(CTA_EXPECT_ID, id);
        }
        self.ack("delete expectation", req)
    }
}
