//! Dump the kernel's special connection lists: `conntrack -L dying`
//! (`IPCTNL_MSG_CT_GET_DYING`) and `conntrack -L unconfirmed`
//! (`IPCTNL_MSG_CT_GET_UNCONFIRMED`). Entries come back as ordinary flow messages.
//!
//! What a kernel answers here changed over time (Linux 5.19 removed the per-CPU dying and
//! unconfirmed lists); `cli` reports what this kernel said rather than assuming, and this
//! file only frames the request and streams raw messages to a sink.

use super::request::Request;
use super::Conn;
use crate::abi::*;
use crate::error::Result;

/// Which special list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    /// Entries being destroyed (`conntrack -L dying`).
    Dying,
    /// Entries not yet confirmed, i.e. still attached to their first packet
    /// (`conntrack -L unconfirmed`).
    Unconfirmed,
}

impl List {
    /// The name conntrack(8) uses.
    pub fn name(self) -> &'static str {
        match self {
            List::Dying => "dying",
            List::Unconfirmed => "unconfirmed",
        }
    }
}

impl Conn {
    /// `conntrack -L dying` / `-L unconfirmed`: each entry's raw message goes to `sink`;
    /// returns how many there were. A refusal (e.g. `EOPNOTSUPP`) is `Error::Netlink`.
    pub fn dump_list(&mut self, list: List, sink: &mut dyn FnMut(&[u8])) -> Result<usize> {
        let (msg, op) = match list {
            List::Dying => (IPCTNL_MSG_CT_GET_DYING, "dump dying"),
            List::Unconfirmed => (IPCTNL_MSG_CT_GET_UNCONFIRMED, "dump unconfirmed"),
        };
        let req = Request::new(
            NFNL_SUBSYS_CTNETLINK,
            msg,
            NLM_F_DUMP,
            libc::AF_UNSPEC as u8,
        );
        let mut n = 0;
        self.transact(op, req, false, &mut |m| {
            n += 1;
            sink(m)
        })?;
        Ok(n)
    }
}
