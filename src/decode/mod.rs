//! Decode: netlink bytes → compact model records. The only place that reads ctnetlink
//! attributes. It must not touch sockets (see `netlink`) or the store.
//!
//! netlink-packet-netfilter 0.4 types only tuples, status, protoinfo, timeout and mark and
//! has no expectation subsystem, and its owned message types cost ~2000 bytes per flow, so
//! we frame messages with netlink-packet-core's `NetlinkBuffer` and walk attributes with its
//! `NlasIterator` (`attr.rs`): borrowed slices, no allocation per attribute. The tests use
//! netlink-packet-netfilter as an independent oracle (tests/decode_fixtures.rs). Malformed
//! or truncated input is an `Err(DecodeError)`, never a panic.

use netlink_packet_core::NetlinkBuffer;

use crate::abi::*;
use crate::model::{Event, Family, Flow, Record};

mod attr;
mod expect;
mod flow;
pub mod stats;
mod tuple;

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
    let (m, used) = frame(buf)?;
    let m = match m {
        Framed::Flow {
            event,
            family,
            body,
        } => Message::Record {
            event,
            record: Record::Flow(flow::flow(family, body)?),
        },
        Framed::Expect {
            event,
            family,
            body,
        } => Message::Record {
            event,
            record: Record::Expect(expect::expectation(family, body)?),
        },
        Framed::Done(m) => m,
    };
    Ok((m, used))
}

/// Whether [`message_into`] (the load's path: flows appended to a batch) says exactly what
/// [`message`] says about every message of `buf`, errors included; the first difference
/// otherwise. The fuzz targets and the decode tests run it on every input they make.
pub fn agree(buf: &[u8]) -> Result<(), String> {
    let mut rest = buf;
    let mut batch = Vec::new();
    while !rest.is_empty() {
        let before = batch.len();
        let used = match (message(rest), message_into(rest, &mut batch)) {
            (Err(a), Err(b)) if a == b && batch.len() == before => return Ok(()),
            (
                Ok((
                    Message::Record {
                        event,
                        record: Record::Flow(f),
                    },
                    u1,
                )),
                Ok((None, u2)),
            ) if u1 == u2 && batch.last().is_some_and(|(e, g)| *e == event && *g == f) => u1,
            (Ok((m, u1)), Ok((Some(n), u2))) if (&m, u1) == (&n, u2) && batch.len() == before => u1,
            (a, b) => return Err(format!("the decoders disagree: {a:?} vs {b:?}")),
        };
        rest = &rest[used.min(rest.len())..];
    }
    Ok(())
}

/// [`message`] for a caller that stores many flows at once (`engine::load`): a flow is
/// appended to `flows` with its event, and `None` returned; anything else is returned as
/// `message` would return it.
///
/// Why: a `Message` is as large as its largest record (an expectation, ~220 bytes), and
/// each of the moves between the decoder, a batch and the store then costs a `memcpy`
/// call; a dump's million flows go straight from the decoder into the batch, at 80 bytes.
pub fn message_into(
    buf: &[u8],
    flows: &mut Vec<(Event, Flow)>,
) -> Result<(Option<Message>, usize), DecodeError> {
    let (m, used) = frame(buf)?;
    let m = match m {
        Framed::Flow {
            event,
            family,
            body,
        } => {
            // Decoded where it stays until the store takes it (see `flow::flow_into`).
            flows.push((event, Flow::new(Default::default())));
            let decoded = match flows.last_mut() {
                Some((_, f)) => flow::flow_into(family, body, f),
                None => Ok(()),
            };
            if let Err(e) = decoded {
                flows.pop();
                return Err(e);
            }
            None
        }
        Framed::Expect {
            event,
            family,
            body,
        } => Some(Message::Record {
            event,
            record: Record::Expect(expect::expectation(family, body)?),
        }),
        Framed::Done(m) => Some(m),
    };
    Ok((m, used))
}

/// A framed message: a ctnetlink record still to decode, or a message already whole.
enum Framed<'a> {
    Flow {
        event: Event,
        family: Family,
        body: &'a [u8],
    },
    Expect {
        event: Event,
        family: Family,
        body: &'a [u8],
    },
    Done(Message),
}

/// Frame the first message in `buf` and read its headers (`nlmsghdr`, `nfgenmsg`).
#[inline]
fn frame(buf: &[u8]) -> Result<(Framed<'_>, usize), DecodeError> {
    // netlink-packet-core frames the message (nlmsg_len within the buffer and at least a
    // header); the header fields are read through its `NetlinkBuffer`, which borrows.
    let nl = NetlinkBuffer::new_checked(buf).map_err(|_| framing_error(buf))?;
    let len = nl.length() as usize;
    let nl_type = nl.message_type();
    let flags = nl.flags();
    let payload = nl.payload();
    let used = attr::align4(len).min(buf.len());
    let m = match nl_type {
        NLMSG_DONE => Framed::Done(Message::Done),
        NLMSG_ERROR => {
            // struct nlmsgerr: int error, then the offending request's header.
            let e = payload.get(..4).ok_or(DecodeError::Truncated {
                need: NLMSG_HDRLEN + 4,
                have: len,
            })?;
            let error = i32::from_ne_bytes([e[0], e[1], e[2], e[3]]);
            Framed::Done(Message::Error {
                errno: error.checked_neg().unwrap_or(i32::MAX),
            })
        }
        t if t < 0x10 => Framed::Done(Message::Other { nl_type }),
        t => {
            let subsys = (t >> 8) as u8;
            let msg_type = (t & 0xff) as u8;
            let is_ct = subsys == NFNL_SUBSYS_CTNETLINK;
            let is_exp = subsys == NFNL_SUBSYS_CTNETLINK_EXP;
            // Both subsystems number NEW 0 and DELETE 2 (IPCTNL_MSG_CT_* / IPCTNL_MSG_EXP_*).
            let known = msg_type == IPCTNL_MSG_CT_NEW || msg_type == IPCTNL_MSG_CT_DELETE;
            if !(is_ct || is_exp) || !known {
                return Ok((Framed::Done(Message::Other { nl_type }), used));
            }
            let nfgen = payload.get(..NFGENMSG_LEN).ok_or(DecodeError::Truncated {
                need: NLMSG_HDRLEN + NFGENMSG_LEN,
                have: len,
            })?;
            let family = Family::from_af(nfgen[0]).ok_or(DecodeError::Family(nfgen[0]))?;
            let body = &payload[NFGENMSG_LEN..];
            let event = event_of(msg_type, flags);
            if is_ct {
                Framed::Flow {
                    event,
                    family,
                    body,
                }
            } else {
                Framed::Expect {
                    event,
                    family,
                    body,
                }
            }
        }
    };
    Ok((m, used))
}

/// Why `NetlinkBuffer::new_checked` refused `buf`, as a `DecodeError` that says how many
/// bytes were needed (its own error is a formatted string meant for logs).
fn framing_error(buf: &[u8]) -> DecodeError {
    let Some(hdr) = buf.get(..NLMSG_HDRLEN) else {
        return DecodeError::Truncated {
            need: NLMSG_HDRLEN,
            have: buf.len(),
        };
    };
    let len = u32::from_ne_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
    if len < NLMSG_HDRLEN {
        DecodeError::Other("nlmsg_len shorter than the netlink header")
    } else {
        DecodeError::Truncated {
            need: len,
            have: buf.len(),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::attr::nla;

    fn msg(nl_type: u16, flags: u16, family: u8, body: &[u8]) -> Vec<u8> {
        let len = NLMSG_HDRLEN + NFGENMSG_LEN + body.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&nl_type.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(&[family, 0, 0, 0]);
        m.extend_from_slice(body);
        m
    }

    /// A minimal CTA_TUPLE_ORIG for 10.0.0.1:1 -> 10.0.0.2:2/udp.
    fn orig() -> Vec<u8> {
        let ip = [
            nla(CTA_IP_V4_SRC, &[10, 0, 0, 1]),
            nla(CTA_IP_V4_DST, &[10, 0, 0, 2]),
        ]
        .concat();
        let l4 = [
            nla(CTA_PROTO_NUM, &[17]),
            nla(CTA_PROTO_SRC_PORT, &1u16.to_be_bytes()),
            nla(CTA_PROTO_DST_PORT, &2u16.to_be_bytes()),
        ]
        .concat();
        nla(
            CTA_TUPLE_ORIG | NLA_F_NESTED,
            &[
                nla(CTA_TUPLE_IP | NLA_F_NESTED, &ip),
                nla(CTA_TUPLE_PROTO | NLA_F_NESTED, &l4),
            ]
            .concat(),
        )
    }

    const CT_NEW: u16 = (NFNL_SUBSYS_CTNETLINK as u16) << 8 | IPCTNL_MSG_CT_NEW as u16;
    const CT_DELETE: u16 = (NFNL_SUBSYS_CTNETLINK as u16) << 8 | IPCTNL_MSG_CT_DELETE as u16;

    fn event(nl_type: u16, flags: u16) -> Event {
        match message(&msg(nl_type, flags, 2, &orig())).unwrap().0 {
            Message::Record { event, .. } => event,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn event_kind_from_type_and_flags() {
        assert_eq!(event(CT_NEW, NLM_F_MULTI), Event::Dump);
        assert_eq!(event(CT_NEW, NLM_F_CREATE | NLM_F_EXCL), Event::New);
        assert_eq!(event(CT_NEW, 0), Event::Update);
        assert_eq!(event(CT_DELETE, 0), Event::Destroy);
    }

    #[test]
    fn refusals_are_values() {
        // Unknown family.
        assert_eq!(
            message(&msg(CT_NEW, 0, 7, &orig())).unwrap_err(),
            DecodeError::Family(7)
        );
        // No original tuple.
        assert!(matches!(
            message(&msg(CT_NEW, 0, 2, &nla(CTA_MARK, &[0, 0, 0, 1]))),
            Err(DecodeError::Attribute { .. })
        ));
        // An IPv6 address in an IPv4 message.
        let bad = nla(
            CTA_TUPLE_ORIG | NLA_F_NESTED,
            &nla(CTA_TUPLE_IP | NLA_F_NESTED, &nla(CTA_IP_V6_SRC, &[0; 16])),
        );
        assert!(message(&msg(CT_NEW, 0, 2, &bad)).is_err());
        // A wrong-sized u32.
        let body = [orig(), nla(CTA_MARK, &[1, 2])].concat();
        assert!(message(&msg(CT_NEW, 0, 2, &body)).is_err());
        // nlmsg_len below the header size.
        let mut m = msg(CT_NEW, 0, 2, &orig());
        m[..4].copy_from_slice(&8u32.to_ne_bytes());
        assert!(message(&m).is_err());
    }

    #[test]
    fn control_and_foreign_messages() {
        let mut ack = vec![0u8; 36];
        ack[..4].copy_from_slice(&36u32.to_ne_bytes());
        ack[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        assert_eq!(message(&ack).unwrap(), (Message::Error { errno: 0 }, 36));
        ack[16..20].copy_from_slice(&(-libc::EPERM).to_ne_bytes());
        assert_eq!(
            message(&ack).unwrap().0,
            Message::Error { errno: libc::EPERM }
        );
        // Another nfnetlink subsystem (queue = 3) and a ctnetlink GET are not records.
        let q = msg(3 << 8, 0, 2, &[]);
        assert_eq!(message(&q).unwrap().0, Message::Other { nl_type: 3 << 8 });
        let get = msg(CT_NEW + 1, 0, 2, &orig());
        assert!(matches!(message(&get).unwrap().0, Message::Other { .. }));
    }

    #[test]
    fn unknown_attributes_are_skipped() {
        let body = [
            nla(200, &[1, 2, 3]),
            orig(),
            nla(CTA_SYNPROXY | NLA_F_NESTED, &[]),
        ]
        .concat();
        let (m, used) = message(&msg(CT_NEW, NLM_F_MULTI, 2, &body)).unwrap();
        assert_eq!(used, NLMSG_HDRLEN + NFGENMSG_LEN + body.len());
        let Message::Record {
            record: Record::Flow(f),
            ..
        } = m
        else {
            panic!()
        };
        assert_eq!((f.orig.sport, f.orig.dport, f.orig.proto), (1, 2, 17));
    }

    /// Attributes this kernel cannot produce here (no SELinux, no DCCP tracker, old 32-bit
    /// counters), built by hand from enum ctattr_* so their decoding is still pinned down.
    #[test]
    fn synthetic_rare_attributes() {
        let n = |k: u16, b: &[u8]| nla(k | NLA_F_NESTED, b);
        let body = [
            orig(),
            n(
                CTA_SECCTX,
                &nla(CTA_SECCTX_NAME, b"system_u:object_r:ssh_t:s0\0"),
            ),
            n(
                CTA_COUNTERS_ORIG,
                &[
                    nla(CTA_COUNTERS32_PACKETS, &5u32.to_be_bytes()),
                    nla(CTA_COUNTERS32_BYTES, &500u32.to_be_bytes()),
                ]
                .concat(),
            ),
            n(
                CTA_PROTOINFO,
                &n(CTA_PROTOINFO_DCCP, &nla(CTA_PROTOINFO_DCCP_STATE, &[4])),
            ),
            nla(CTA_LABELS, &[0x01, 0, 0, 0, 0, 0, 0, 0x80]),
        ]
        .concat();
        let Message::Record {
            record: Record::Flow(f),
            ..
        } = message(&msg(CT_NEW, 0, 2, &body)).unwrap().0
        else {
            panic!()
        };
        let e = f.extra.as_deref().unwrap();
        assert_eq!(e.secctx.as_deref(), Some("system_u:object_r:ssh_t:s0"));
        let [o, r] = e.counters.unwrap();
        assert_eq!((o.packets, o.bytes, r.packets), (5, 500, 0));
        assert_eq!(f.state, 4);
        assert_eq!(e.labels, 1 | (1u128 << 63));
        // Labels longer than 128 bits, or not whole 32-bit words, are refused.
        let long = [orig(), nla(CTA_LABELS, &[0; 20])].concat();
        assert!(message(&msg(CT_NEW, 0, 2, &long)).is_err());
        let odd = [orig(), nla(CTA_LABELS, &[0; 3])].concat();
        assert!(message(&msg(CT_NEW, 0, 2, &odd)).is_err());
    }

    /// A userspace cthelper may name itself with any bytes: a name that is not UTF-8 keeps
    /// the flow (it used to drop it), with the bad bytes spelled `\xNN`.
    #[test]
    fn non_utf8_helper_name_keeps_the_flow() {
        let n = |k: u16, b: &[u8]| nla(k | NLA_F_NESTED, b);
        let body = [
            orig(),
            n(CTA_HELP, &nla(CTA_HELP_NAME, b"ev\xffl\x1b[2J\0")),
        ]
        .concat();
        let Message::Record {
            record: Record::Flow(f),
            ..
        } = message(&msg(CT_NEW, 0, 2, &body)).unwrap().0
        else {
            panic!()
        };
        // Stored exactly (control bytes are escaped at the terminal, not here).
        assert_eq!(f.helper.name(), Some("ev\\xffl\x1b[2J"));
        assert_eq!(
            crate::escape::escape(f.helper.name().unwrap()),
            "ev\\xffl\\x1b[2J"
        );
    }

    #[test]
    fn synthetic_expectation_flags_class_zone() {
        let t = |k: u16| {
            let mut o = orig();
            o[2..4].copy_from_slice(&(k | NLA_F_NESTED).to_ne_bytes());
            o
        };
        let body = [
            t(CTA_EXPECT_MASTER),
            t(CTA_EXPECT_TUPLE),
            t(CTA_EXPECT_MASK),
            nla(CTA_EXPECT_FLAGS, &5u32.to_be_bytes()),
            nla(CTA_EXPECT_CLASS, &2u32.to_be_bytes()),
            nla(CTA_EXPECT_ZONE, &9u16.to_be_bytes()),
            nla(CTA_EXPECT_HELP_NAME, b"sip\0"),
        ]
        .concat();
        let exp_new = (NFNL_SUBSYS_CTNETLINK_EXP as u16) << 8 | IPCTNL_MSG_EXP_NEW as u16;
        let Message::Record {
            event,
            record: Record::Expect(e),
        } = message(&msg(exp_new, NLM_F_CREATE, 2, &body)).unwrap().0
        else {
            panic!()
        };
        assert_eq!(event, Event::New);
        assert_eq!((e.flags, e.class, e.zone), (5, 2, 9));
        assert_eq!(e.helper.name(), Some("sip"));
        // Without a mask the expectation is refused, not guessed.
        let no_mask = [t(CTA_EXPECT_MASTER), t(CTA_EXPECT_TUPLE)].concat();
        assert!(message(&msg(exp_new, 0, 2, &no_mask)).is_err());
    }
}
