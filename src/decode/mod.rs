//! Decode: netlink bytes → compact model records. The only place that reads ctnetlink
//! attributes. It must not touch sockets (see `netlink`) or the store.
//!
//! netlink-packet-netfilter 0.4 types only tuples, status, protoinfo, timeout and mark and
//! has no expectation subsystem, and its owned message types cost ~2000 bytes per flow, so
//! we walk attributes ourselves with netlink-packet-core's `NlaBuffer`/`NlasIterator`:
//! borrowed slices, no allocation per attribute. Malformed or truncated input is an
//! `Err(DecodeError)`, never a panic.

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

/// A decoded conntrack or expectation entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Flow(Flow),
    Expect(Expectation),
}

/// One decoded netlink message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Record {
        event: Event,
        record: Record,
    },
    /// `NLMSG_DONE`: the end of a dump.
    Done,
    /// `NLMSG_ERROR`: `errno` 0 is an ACK.
    Error {
        errno: i32,
    },
    /// Anything else (other subsystems, `NLMSG_NOOP`, …), kept so callers can count it.
    Other {
        nl_type: u16,
    },
}

/// Why a message could not be decoded. Carries enough to tell the user where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated netlink message: need {need} bytes, have {have}")]
    Truncated { need: usize, have: usize },
    #[error("malformed attribute {attr} in {context}: {reason}")]
    Attribute {
        context: &'static str,
        attr: u16,
        reason: &'static str,
    },
    #[error("unknown address family {0}")]
    Family(u8),
    #[error("{0}")]
    Other(&'static str),
}

/// Decode the first netlink message in `buf`, returning it and the number of bytes it
/// occupies (aligned), so a caller can walk a receive buffer holding many messages.
pub fn message(buf: &[u8]) -> Result<(Message, usize), DecodeError> {
    let _ = buf;
    todo!("decode helper implements this")
}

/// Iterate over every message in one receive buffer. Stops after the first error
/// (the rest of the buffer cannot be framed reliably).
pub fn messages(buf: &[u8]) -> impl Iterator<Item = Result<Message, DecodeError>> + '_ {
    let mut rest = buf;
    let mut failed = false;
    std::iter::from_fn(move || {
        if rest.is_empty() || failed {
            return None;
        }
        match message(rest) {
            Ok((m, used)) => {
                rest = &rest[used.min(rest.len())..];
                Some(Ok(m))
            }
            Err(e) => {
                failed = true;
                Some(Err(e))
            }
        }
    })
}
