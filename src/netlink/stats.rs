//! Read the kernel's counters: `conntrack -S` (`IPCTNL_MSG_CT_GET_STATS_CPU`, a dump with
//! one message per CPU), `conntrack -S expect` (`IPCTNL_MSG_EXP_GET_STATS_CPU`) and the
//! global entry count with `nf_conntrack_max` (`IPCTNL_MSG_CT_GET_STATS`, what
//! `conntrack -C` asks first). Raw messages out; `decode::stats` reads them.

use super::request::Request;
use super::{Conn, Table};
use crate::abi::*;
use crate::error::Result;

impl Conn {
    /// `conntrack -S` (flows) or `conntrack -S expect`: one raw message per CPU to `sink`.
    pub fn stats_cpu(&mut self, table: Table, sink: &mut dyn FnMut(&[u8])) -> Result<()> {
        let (msg, op) = match table {
            Table::Flows => (IPCTNL_MSG_CT_GET_STATS_CPU, "stats"),
            Table::Expects => (IPCTNL_MSG_EXP_GET_STATS_CPU, "expectation stats"),
        };
        let req = Request::new(table.subsys(), msg, NLM_F_DUMP, libc::AF_UNSPEC as u8);
        self.transact(op, req, false, sink).map(|_| ())
    }

    /// `conntrack -C`: the one message holding the entry count and `nf_conntrack_max`.
    /// `Ok(None)` if the kernel answered with a bare ACK.
    pub fn stats_global(&mut self) -> Result<Option<Vec<u8>>> {
        let req = Request::new(
            NFNL_SUBSYS_CTNETLINK,
            IPCTNL_MSG_CT_GET_STATS,
            0,
            libc::AF_UNSPEC as u8,
        );
        let mut reply = None;
        self.transact("count", req, true, &mut |m| reply = Some(m.to_vec()))?;
        Ok(reply)
    }
}
