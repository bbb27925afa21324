//! The store's input vocabulary: what happened (`Event`) to which entry (`Record`).
//!
//! `decode` produces these from netlink bytes, recordings replay them, and the store, the
//! engine and every front end consume them. They live in the model, not in `decode`, so the
//! model never imports from the layer that feeds it. Plain data only.

use crate::model::{Expectation, Flow};

/// What a message says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// An entry reported by a dump (`NLM_F_MULTI` reply to a GET).
    Dump,
    /// `IPCTNL_MSG_CT_NEW` / `IPCTNL_MSG_EXP_NEW` with `NLM_F_CREATE` (a new entry).
    New,
    /// `IPCTNL_MSG_CT_NEW` without `NLM_F_CREATE` (state, timeout, mark, … changed).
    Update,
    /// `IPCTNL_MSG_CT_DELETE` / `IPCTNL_MSG_EXP_DELETE`.
    Destroy,
}

/// A conntrack or expectation entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A connection (`NFNL_SUBSYS_CTNETLINK`).
    Flow(Flow),
    /// An expectation (`NFNL_SUBSYS_CTNETLINK_EXP`).
    Expect(Expectation),
}
