//! What every decoder target does with what decodes: render it the ways ctscope does
//! (conntrack-style text, JSON views, the escaped terminal form), and run filters on it,
//! so hostile values reach the output code too. Shared by the targets with `#[path]`.
#![allow(dead_code)]

use ctscope::decode::{self, Message};
use ctscope::model::Record;
use ctscope::output::{text, ExpectView, FlowView};

/// Decode every message of `buf`, rendering each record.
pub fn exercise(buf: &[u8]) {
    agree(buf);
    for m in decode::messages(buf) {
        if let Ok(Message::Record { record, .. }) = m {
            render(&record);
        }
    }
    // The request path reads errors from raw replies with `error_code`.
    for m in ctscope::netlink::split(buf).flatten() {
        let _ = ctscope::netlink::error_code(m.1);
    }
}

/// `decode::message_into` says what `decode::message` says about every message.
pub fn agree(buf: &[u8]) {
    if let Err(e) = decode::agree(buf) {
        panic!("{e}");
    }
}

pub fn render(record: &Record) {
    match record {
        Record::Flow(f) => {
            let v = FlowView::of(f, 7);
            let line = text::flow(&v);
            assert!(
                !line.chars().any(ctscope::escape::is_unsafe),
                "a terminal line carries a control character: {line:?}"
            );
            serde_json::to_vec(&v).expect("a view always serialises");
            ctscope::filter::flow_text(f, &mut String::new());
        }
        Record::Expect(e) => {
            let v = ExpectView::of(e, 7);
            let line = text::expectation(&v);
            assert!(
                !line.chars().any(ctscope::escape::is_unsafe),
                "a terminal line carries a control character: {line:?}"
            );
            serde_json::to_vec(&v).expect("a view always serialises");
            ctscope::filter::expect_text(e, &mut String::new());
        }
    }
}

/// One ctnetlink message around `body`: nlmsghdr + nfgenmsg, `family` from the first
/// input byte (AF_INET or AF_INET6; anything else tests the family check).
pub fn wrap(subsys: u8, msg: u8, flags: u16, data: &[u8]) -> Vec<u8> {
    let (family, body) = match data.split_first() {
        Some((f, b)) => (
            match f % 3 {
                0 => 2,  // AF_INET
                1 => 10, // AF_INET6
                _ => *f,
            },
            b,
        ),
        None => (2, &[][..]),
    };
    let len = 16 + 4 + body.len();
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&(len as u32).to_ne_bytes());
    v.extend_from_slice(&((u16::from(subsys) << 8) | u16::from(msg)).to_ne_bytes());
    v.extend_from_slice(&flags.to_ne_bytes());
    v.extend_from_slice(&1u32.to_ne_bytes());
    v.extend_from_slice(&0u32.to_ne_bytes());
    v.extend_from_slice(&[family, 0, 0, 0]);
    v.extend_from_slice(body);
    v
}
