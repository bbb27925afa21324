//! Decode: netlink bytes → compact model records. The only place that reads ctnetlink
//! attributes. It must not touch sockets (see `netlink`) or the store.
//!
//! netlink-packet-netfilter 0.4 types only tuples, status, protoinfo, timeout and mark and
//! has no expectation subsystem, and its owned message types cost ~2000 bytes per flow, so
//! we walk attributes ourselves with netlink-packet-core's `NlaBuffer`/`NlasIterator`:
//! borrowed slices, no allocation per attribute. Malformed or truncated input is an
//! `Err(DecodeError)`, never a panic.

use crate::model::{Expectation, Family, Flow};
use crate::netlink::consts::*;

mod attr;
mod expect;
mod flow;
mod tuple;

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
    /// `NLMSG_ERROR`: `errno` 0 is an ACK; otherwise the positive errno (`ENOENT`, `EPERM`, …),
    /// i.e. the kernel's negative `nlmsgerr.error` negated.
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
    let hdr = buf.get(..NLMSG_HDRLEN).ok_or(DecodeError::Truncated {
        need: NLMSG_HDRLEN,
        have: buf.len(),
    })?;
    let word = |i: usize| u32::from_ne_bytes([hdr[i], hdr[i + 1], hdr[i + 2], hdr[i + 3]]);
    let len = word(0) as usize;
    let nl_type = u16::from_ne_bytes([hdr[4], hdr[5]]);
    let flags = u16::from_ne_bytes([hdr[6], hdr[7]]);
    if len < NLMSG_HDRLEN {
        return Err(DecodeError::Other(
            "nlmsg_len shorter than the netlink header",
        ));
    }
    let msg = buf.get(..len).ok_or(DecodeError::Truncated {
        need: len,
        have: buf.len(),
    })?;
    let used = attr::align4(len).min(buf.len());
    let payload = &msg[NLMSG_HDRLEN..];
    let m = match nl_type {
        NLMSG_DONE => Message::Done,
        NLMSG_ERROR => {
            // struct nlmsgerr: int error, then the offending request's header.
            let e = payload.get(..4).ok_or(DecodeError::Truncated {
                need: NLMSG_HDRLEN + 4,
                have: len,
            })?;
            let error = i32::from_ne_bytes([e[0], e[1], e[2], e[3]]);
            Message::Error {
                errno: error.checked_neg().unwrap_or(i32::MAX),
            }
        }
        t if t < 0x10 => Message::Other { nl_type },
        t => {
            let subsys = (t >> 8) as u8;
            let msg_type = (t & 0xff) as u8;
            let is_ct = subsys == NFNL_SUBSYS_CTNETLINK;
            let is_exp = subsys == NFNL_SUBSYS_CTNETLINK_EXP;
            // Both subsystems number NEW 0 and DELETE 2 (IPCTNL_MSG_CT_* / IPCTNL_MSG_EXP_*).
            let known = msg_type == IPCTNL_MSG_CT_NEW || msg_type == IPCTNL_MSG_CT_DELETE;
            if !(is_ct || is_exp) || !known {
                return Ok((Message::Other { nl_type }, used));
            }
            let nfgen = payload.get(..NFGENMSG_LEN).ok_or(DecodeError::Truncated {
                need: NLMSG_HDRLEN + NFGENMSG_LEN,
                have: len,
            })?;
            let family = Family::from_af(nfgen[0]).ok_or(DecodeError::Family(nfgen[0]))?;
            let body = &payload[NFGENMSG_LEN..];
            let event = event_of(msg_type, flags);
            let record = if is_ct {
                Record::Flow(flow::flow(family, body)?)
            } else {
                Record::Expect(expect::expectation(family, body)?)
            };
            Message::Record { event, record }
        }
    };
    Ok((m, used))
}

/// The event kind of a ctnetlink/ctnetlink_exp NEW or DELETE message.
///
/// `ctnetlink_conntrack_event` sends NEW with `NLM_F_CREATE|NLM_F_EXCL` for a new entry and
/// without them for an update; a dump (`ctnetlink_fill_info` with a portid) sets
/// `NLM_F_MULTI`. DELETE is only ever an event.
fn event_of(msg_type: u8, flags: u16) -> Event {
    if msg_type == IPCTNL_MSG_CT_DELETE {
        Event::Destroy
    } else if flags & NLM_F_MULTI != 0 {
        Event::Dump
    } else if flags & NLM_F_CREATE != 0 {
        Event::New
    } else {
        Event::Update
    }
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
