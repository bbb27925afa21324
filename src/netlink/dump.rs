//! Dump a whole table: `conntrack -L` (flows) and `conntrack -L expect` (expectations),
//! IPv4 and IPv6 together. `nfgen_family = AF_UNSPEC` makes the kernel skip its family
//! filter (`ctnetlink_dump_table`, `ctnetlink_exp_dump_table`), so one request returns
//! both families — conntrack(8) asks for AF_INET unless told `-f ipv6`.
//! This file only frames the request and streams raw messages to a sink.

use super::request::Request;
use super::{Conn, Table};
use crate::abi::*;
use crate::error::Result;

/// How a dump went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DumpOutcome {
    /// Data messages delivered to the sink.
    pub messages: usize,
    /// Some reply carried `NLM_F_DUMP_INTR`: the table changed under the dump in a way
    /// the kernel could not follow; the caller should dump again.
    pub interrupted: bool,
}

impl Conn {
    /// `conntrack -L` / `conntrack -L expect` for both families. Each entry's raw netlink
    /// message (header included) goes to `sink`, in kernel order, until `NLMSG_DONE`.
    /// A kernel refusal is `Error::Netlink { op: "dump", errno }`.
    pub fn dump(&mut self, table: Table, sink: &mut dyn FnMut(&[u8])) -> Result<DumpOutcome> {
        let msg = match table {
            Table::Flows => IPCTNL_MSG_CT_GET,
            Table::Expects => IPCTNL_MSG_EXP_GET,
        };
        let req = Request::new(table.subsys(), msg, NLM_F_DUMP, libc::AF_UNSPEC as u8);
        let mut messages = 0;
        let op = match table {
            Table::Flows => "dump flows",
            Table::Expects => "dump expectations",
        };
        let interrupted = self.transact(op, req, false, &mut |m| {
            messages += 1;
            sink(m)
        })?;
        Ok(DumpOutcome {
            messages,
            interrupted,
        })
    }
}
