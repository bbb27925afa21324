//! Flush: `conntrack -F` (every flow), `conntrack -F expect` (every expectation), and the
//! flush of one helper's expectations that conntrack(8) does not expose: an
//! `IPCTNL_MSG_EXP_DELETE` carrying only `CTA_EXPECT_HELP_NAME` makes
//! `ctnetlink_del_expect` (net/netfilter/nf_conntrack_netlink.c) remove every expectation
//! whose master's helper has that name. All families (`AF_UNSPEC`). Requests ask for an
//! ACK so a refusal (EPERM, …) is reported, never silent.

use super::request::Request;
use super::Conn;
use crate::abi::*;
use crate::error::Result;

const AF_UNSPEC: u8 = libc::AF_UNSPEC as u8;

impl Conn {
    /// `conntrack -F`: delete every flow of both families in this namespace.
    pub fn flush_flows(&mut self) -> Result<()> {
        let req = Request::new(
            NFNL_SUBSYS_CTNETLINK,
            IPCTNL_MSG_CT_DELETE,
            NLM_F_ACK,
            AF_UNSPEC,
        );
        self.ack("flush flows", req)
    }

    /// `conntrack -F expect`: delete every expectation.
    pub fn flush_expects(&mut self) -> Result<()> {
        let req = Request::new(
            NFNL_SUBSYS_CTNETLINK_EXP,
            IPCTNL_MSG_EXP_DELETE,
            NLM_F_ACK,
            AF_UNSPEC,
        );
        self.ack("flush expectations", req)
    }

    /// No conntrack(8) equivalent: delete the expectations created by helper `name`
    /// (e.g. `ftp`), leaving other helpers' expectations in place.
    pub fn flush_helper_expects(&mut self, name: &str) -> Result<()> {
        let mut req = Request::new(
            NFNL_SUBSYS_CTNETLINK_EXP,
            IPCTNL_MSG_EXP_DELETE,
            NLM_F_ACK,
            AF_UNSPEC,
        );
        req.put_cstr(CTA_EXPECT_HELP_NAME, name);
        self.ack("flush helper expectations", req)
    }
}
