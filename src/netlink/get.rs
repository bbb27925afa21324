//! Get one flow: `conntrack -G` by its identity (original tuple and zones). The engine uses it to re-check
//! a flow whose timeout has passed: with `net.netfilter.nf_conntrack_events=2` flows that
//! existed before we subscribed emit no events, so only asking tells whether they are gone.
//! Raw bytes out; no decoding here.

use super::request::{family_of, Request};
use super::Conn;
use crate::abi::*;
use crate::error::{Error, Result};
use crate::model::store::FlowKey;

impl Conn {
    /// `conntrack -G`: the flow's current message goes to `sink` and the call returns
    /// `Ok(true)`; `Ok(false)` when the kernel no longer has it (ENOENT).
    pub fn get_flow(&mut self, key: &FlowKey, sink: &mut dyn FnMut(&[u8])) -> Result<bool> {
        let mut req = Request::new(
            NFNL_SUBSYS_CTNETLINK,
            IPCTNL_MSG_CT_GET,
            0,
            family_of(&key.orig),
        );
        // As for delete: the per-direction zone travels inside the original tuple.
        req.put_tuple_zoned(CTA_TUPLE_ORIG, &key.orig, key.zone_orig);
        if key.zone != 0 {
            req.put_be16(CTA_ZONE, key.zone);
        }
        let mut found = false;
        match self.transact("get flow", req, true, &mut |m| {
            found = true;
            sink(m)
        }) {
            Ok(_) => Ok(found),
            Err(Error::Netlink { errno, .. }) if errno == libc::ENOENT => Ok(false),
            Err(e) => Err(e),
        }
    }
}
