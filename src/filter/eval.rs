//! The compiled filter (an expression tree of typed terms) and its evaluation against one
//! flow or expectation. Evaluation allocates nothing unless a text or regex term is
//! reached; the text it then searches is rendered once per entry into a reused buffer.
//! It must not parse (see `parse`) nor know about the store's linkage.

use std::cell::RefCell;
use std::fmt::Write;

use regex::Regex;

use super::context::Context;
use crate::model::flow::status;
use crate::model::tuple::{proto, Family, Tuple};
use crate::model::{expect, Expectation, Flow};

/// A numeric comparison: `lo..=hi` for `=` (a single value has `lo == hi`), else `op lo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Range(u64, u64),
    Lt(u64),
    Le(u64),
    Gt(u64),
    Ge(u64),
}

impl Cmp {
    pub fn test(self, v: u64) -> bool {
        match self {
            Cmp::Range(lo, hi) => lo <= v && v <= hi,
            Cmp::Lt(x) => v < x,
            Cmp::Le(x) => v <= x,
            Cmp::Gt(x) => v > x,
            Cmp::Ge(x) => v >= x,
        }
    }
}

/// Which endpoint(s) of a tuple a port or address term looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The original source (`src`, `sport`), as conntrack's `-s`/`--sport`.
    Src,
    /// The original destination (`dst`, `dport`).
    Dst,
    /// Either endpoint, of the original and of a NATed reply tuple (`host`, `addr`, `port`).
    Any,
    /// The reply tuple's source (`reply_src`, `reply_sport`), as conntrack's `-r` and
    /// `--reply-port-src`; flows only.
    ReplySrc,
    /// The reply tuple's destination (`reply_dst`, `reply_dport`), conntrack's `-q`.
    ReplyDst,
}

/// Which ICMP field an `icmp_*` term reads (`--icmp-type`, `--icmp-code`, `--icmp-id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpField {
    Type,
    Code,
    Id,
}

/// A NAT selector as conntrack(8) applies it (`filter_nat` in conntrack.c): a flow is
/// source-NATed when it has `SRC_NAT` and its reply destination address (or port) differs
/// from its original source; the optional address and port must then equal the reply
/// destination (the address the source was translated to). Destination NAT mirrors it on
/// the reply source. `-j` (any) is either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatSel {
    pub snat: bool,
    pub dnat: bool,
    pub addr: Option<Cidr>,
    pub port: Option<u16>,
}

/// An address prefix; a plain address is a full-length prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub family: Family,
    pub addr: [u8; 16],
    pub prefix: u8,
}

impl Cidr {
    pub fn contains(&self, family: Family, a: &[u8; 16]) -> bool {
        if family != self.family {
            return false;
        }
        let full = usize::from(self.prefix / 8);
        if a[..full] != self.addr[..full] {
            return false;
        }
        let rest = self.prefix % 8;
        rest == 0 || {
            let m = 0xffu8 << (8 - rest);
            a[full] & m == self.addr[full] & m
        }
    }
}

/// One typed test. Each says in its doc what it does on an expectation.
#[derive(Debug, Clone)]
pub enum Term {
    /// Protocol number (expectation: its tuple's).
    Proto(u8),
    Family(Family),
    /// Ports of tcp, udp, udplite, sctp and dccp only (icmp ids and gre keys are not ports).
    /// On an expectation a wildcard (masked) port matches no port term.
    Port(Side, Cmp),
    /// On an expectation a wildcard (masked) address matches no address term.
    Addr(Side, Cidr),
    /// Helper name, lowercase. A name never seen simply matches nothing.
    Helper(Box<str>),
    /// Every bit of the mask set (flows only).
    Status(u32),
    /// `UNREPLIED`: no `SEEN_REPLY` (flows only).
    Unreplied,
    /// Protocol state by name, with the ctstate fallback described in the language docs
    /// (flows only).
    State(&'static str),
    /// `--ctstate` names as a bit set: 1 NEW, 2 ESTABLISHED, 4 RELATED (flows only).
    CtState(u8),
    Zone(Cmp),
    /// `CTA_TUPLE_ZONE` of the original / reply tuple, 0 when unset (flows only): with
    /// `zone` (`CTA_ZONE`) the kernel's identity of an entry.
    ZoneOrig(Cmp),
    ZoneReply(Cmp),
    /// `(mark & mask)` compared (flows only).
    Mark(u32, Cmp),
    /// Every label bit of the mask set (flows only).
    Labels(u128),
    /// Seconds left at evaluation time.
    Timeout(Cmp),
    Id(Cmp),
    /// Expectation class (expectations only).
    Class(Cmp),
    /// `NF_CT_EXPECT_*` bits all set (expectations only).
    ExpectFlags(u32),
    /// `related`: a RELATED (EXPECTED) flow.
    Related,
    /// `expect`: any expectation.
    Expect,
    /// `flow`: any flow.
    Flow,
    /// `nat`: a NATed flow, or an expectation with a NAT part.
    Nat,
    /// conntrack's `-n`, `-g`, `-j` (flows only): see [`NatSel`].
    NatTo(NatSel),
    /// An ICMP/ICMPv6 field of the original tuple (flows of those protocols only).
    Icmp(IcmpField, Cmp),
    /// Bytes or packets, both directions summed (flows with accounting only;
    /// `nf_conntrack_acct=1`).
    Bytes(Cmp),
    Packets(Cmp),
    /// Any of these `model::stale::Reasons` bits (asks the context; none: no match).
    Stale(u8),
    /// Seconds since `CTA_TIMESTAMP_START` (flows with `nf_conntrack_timestamp=1` only).
    Age(Cmp),
    /// `CTA_SECMARK`, 0 when not reported (flows only), as conntrack's `-c`.
    Secmark(Cmp),
    /// The event shown, a bit set (1 new, 2 update, 4 destroy); asks the context.
    Event(u8),
    /// A bare word or `/regex/` searched in the entry's text rendering.
    Text(Regex),
}

/// The expression tree.
#[derive(Debug, Clone)]
pub enum Node {
    /// The empty filter: everything matches.
    All,
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    /// `field != value`: the field applies to the entry and the inner test fails, so
    /// `mark!=0` matches no expectation (they have no mark) while `not mark=0` does.
    Ne(Box<Node>),
    Term(Term),
}

impl Node {
    pub fn has_text(&self) -> bool {
        match self {
            Node::All => false,
            Node::And(v) | Node::Or(v) => v.iter().any(Node::has_text),
            Node::Not(n) | Node::Ne(n) => n.has_text(),
            Node::Term(t) => matches!(t, Term::Text(_)),
        }
    }

    fn any_term(&self, pred: &dyn Fn(&Term) -> bool) -> bool {
        match self {
            Node::All => false,
            Node::And(v) | Node::Or(v) => v.iter().any(|n| n.any_term(pred)),
            Node::Not(n) | Node::Ne(n) => n.any_term(pred),
            Node::Term(t) => pred(t),
        }
    }

    pub fn has_stale(&self) -> bool {
        self.any_term(&|t| matches!(t, Term::Stale(_)))
    }

    pub fn has_event(&self) -> bool {
        self.any_term(&|t| matches!(t, Term::Event(_)))
    }
}

/// Where a text term (bare word, "quoted text", `/regex/`) gets an entry's text: each front
/// end searches what it shows. The dashboard searches its row text ([`TextSource::DASHBOARD`]);
/// the headless commands set the line they print (`Filter::with_text`). Functions of the
/// entry and the store time, rendering into a reused buffer.
#[derive(Debug, Clone, Copy)]
pub struct TextSource {
    pub flow: fn(&Flow, u32, &mut String),
    pub expect: fn(&Expectation, u32, &mut String),
}

impl TextSource {
    /// The dashboard's text: [`flow_text`] and [`expect_text`].
    pub const DASHBOARD: TextSource = TextSource {
        flow: |f, _, out| flow_text(f, out),
        expect: |e, _, out| expect_text(e, out),
    };
}

/// What is being tested.
#[derive(Clone, Copy)]
pub enum Item<'a> {
    Flow(&'a Flow),
    Expect(&'a Expectation),
}

thread_local! {
    /// Reused text buffer: rendering for text terms costs no allocation once warm.
    static TEXT: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Evaluate `node` on `item` at store time `now`; text terms search what `texts` renders.
pub fn eval(
    node: &Node,
    item: Item<'_>,
    now: u32,
    has_text: bool,
    texts: &TextSource,
    ctx: &dyn Context,
) -> bool {
    if !has_text {
        return eval_in(node, item, now, &mut None, ctx);
    }
    TEXT.with(|buf| match buf.try_borrow_mut() {
        Ok(mut b) => {
            b.clear();
            let mut text = Some(Text {
                buf: &mut b,
                done: false,
                texts,
            });
            eval_in(node, item, now, &mut text, ctx)
        }
        // Only reachable through re-entrancy, which eval never does; stay correct anyway.
        Err(_) => {
            let mut own = String::new();
            let mut text = Some(Text {
                buf: &mut own,
                done: false,
                texts,
            });
            eval_in(node, item, now, &mut text, ctx)
        }
    })
}

struct Text<'b> {
    buf: &'b mut String,
    done: bool,
    texts: &'b TextSource,
}

fn eval_in(
    node: &Node,
    item: Item<'_>,
    now: u32,
    text: &mut Option<Text<'_>>,
    ctx: &dyn Context,
) -> bool {
    match node {
        Node::All => true,
        Node::And(v) => v.iter().all(|n| eval_in(n, item, now, text, ctx)),
        Node::Or(v) => v.iter().any(|n| eval_in(n, item, now, text, ctx)),
        Node::Not(n) => !eval_in(n, item, now, text, ctx),
        Node::Ne(n) => applies(n, item) && !eval_in(n, item, now, text, ctx),
        Node::Term(Term::Stale(mask)) => {
            let bits = match item {
                Item::Flow(f) => ctx.flow_stale(f, now),
                Item::Expect(e) => ctx.expect_stale(e, now),
            };
            bits.is_some_and(|b| b & mask != 0)
        }
        Node::Term(Term::Event(mask)) => ctx.event().is_some_and(|e| e.bit() & mask != 0),
        Node::Term(Term::Age(c)) => match item {
            Item::Flow(f) => {
                let start = f.extra.as_ref().and_then(|e| e.timestamp).map(|t| t.0);
                match (start, ctx.wall_ns()) {
                    (Some(s), Some(w)) if s > 0 => c.test(w.saturating_sub(s) / 1_000_000_000),
                    _ => false,
                }
            }
            Item::Expect(_) => false,
        },
        Node::Term(Term::Text(re)) => match text {
            Some(t) => {
                if !t.done {
                    match item {
                        Item::Flow(f) => (t.texts.flow)(f, now, t.buf),
                        Item::Expect(e) => (t.texts.expect)(e, now, t.buf),
                    }
                    t.done = true;
                }
                re.is_match(t.buf)
            }
            None => false,
        },
        Node::Term(t) => match item {
            Item::Flow(f) => flow_term(t, f, now),
            Item::Expect(e) => expect_term(t, e, now),
        },
    }
}

/// Whether every term under `node` names something `item` has: flows have no class or
/// expectation flags; expectations have no status, state or mark; only tcp, udp, udplite,
/// sctp and dccp have ports (an expectation's wildcard port is not a port either).
fn applies(node: &Node, item: Item<'_>) -> bool {
    match node {
        Node::All => true,
        Node::And(v) | Node::Or(v) => v.iter().all(|n| applies(n, item)),
        Node::Not(n) | Node::Ne(n) => applies(n, item),
        Node::Term(t) => match (t, item) {
            (Term::Class(_) | Term::ExpectFlags(_), Item::Flow(_)) => false,
            (Term::Icmp(..), Item::Flow(f)) => f.orig.is_icmp(),
            (Term::Age(_), Item::Flow(f)) => f
                .extra
                .as_ref()
                .and_then(|e| e.timestamp)
                .is_some_and(|t| t.0 > 0),
            (Term::Age(_) | Term::Secmark(_), Item::Expect(_)) => false,
            (Term::Bytes(_) | Term::Packets(_), Item::Flow(f)) => {
                f.extra.as_ref().is_some_and(|e| e.counters.is_some())
            }
            (
                Term::Port(Side::ReplySrc | Side::ReplyDst, _)
                | Term::Addr(Side::ReplySrc | Side::ReplyDst, _),
                Item::Expect(_),
            ) => false,
            (
                Term::NatTo(_)
                | Term::Icmp(..)
                | Term::Bytes(_)
                | Term::Packets(_)
                | Term::Status(_)
                | Term::Unreplied
                | Term::State(_)
                | Term::CtState(_)
                | Term::ZoneOrig(_)
                | Term::ZoneReply(_)
                | Term::Mark(..)
                | Term::Labels(_),
                Item::Expect(_),
            ) => false,
            (Term::Port(..), Item::Flow(f)) => has_ports(f.orig.proto),
            (Term::Port(side, _), Item::Expect(e)) => {
                has_ports(e.tuple.proto)
                    && match side {
                        Side::Src => !e.sport_is_any(),
                        Side::Dst => !e.dport_is_any(),
                        _ => true,
                    }
            }
            (Term::Addr(side, _), Item::Expect(e)) => match side {
                Side::Src => !e.src_is_any(),
                Side::Dst => !e.dst_is_any(),
                _ => true,
            },
            _ => true,
        },
    }
}

fn has_ports(p: u8) -> bool {
    proto::has_ports(p)
}

fn helper_is(h: crate::model::HelperId, want: &str) -> bool {
    !h.is_none() && h.name().is_some_and(|n| n.eq_ignore_ascii_case(want))
}

fn flow_term(t: &Term, f: &Flow, now: u32) -> bool {
    let o = &f.orig;
    match t {
        Term::Proto(p) => o.proto == *p,
        Term::Family(fam) => o.family == *fam,
        Term::Port(side, cmp) => {
            if !has_ports(o.proto) {
                return false;
            }
            let hit = |t: &Tuple| cmp.test(t.sport.into()) || cmp.test(t.dport.into());
            match side {
                Side::Src => cmp.test(o.sport.into()),
                Side::Dst => cmp.test(o.dport.into()),
                Side::Any => hit(o) || (f.is_nat() && hit(&f.reply())),
                Side::ReplySrc => cmp.test(f.reply().sport.into()),
                Side::ReplyDst => cmp.test(f.reply().dport.into()),
            }
        }
        Term::Addr(side, net) => {
            let hit = |t: &Tuple| net.contains(t.family, &t.src) || net.contains(t.family, &t.dst);
            match side {
                Side::Src => net.contains(o.family, &o.src),
                Side::Dst => net.contains(o.family, &o.dst),
                Side::Any => hit(o) || (f.is_nat() && hit(&f.reply())),
                Side::ReplySrc => {
                    let r = f.reply();
                    net.contains(r.family, &r.src)
                }
                Side::ReplyDst => {
                    let r = f.reply();
                    net.contains(r.family, &r.dst)
                }
            }
        }
        Term::Helper(name) => helper_is(f.helper, name),
        Term::Status(mask) => f.status & mask == *mask,
        Term::Unreplied => !f.has(status::SEEN_REPLY),
        Term::State(name) => state_is(f, name),
        Term::CtState(bits) => {
            let bit = match f.ctstate() {
                "NEW" => 1,
                "ESTABLISHED" => 2,
                _ => 4,
            };
            bits & bit != 0
        }
        Term::Zone(c) => c.test(f.zone.into()),
        Term::ZoneOrig(c) => c.test(f.dir_zones().0.into()),
        Term::ZoneReply(c) => c.test(f.dir_zones().1.into()),
        Term::Mark(mask, c) => c.test((f.mark & mask).into()),
        Term::Labels(mask) => f.extra.as_ref().map_or(0, |e| e.labels) & mask == *mask,
        Term::Timeout(c) => c.test(f.remaining(now).into()),
        Term::Id(c) => c.test(f.id.into()),
        Term::Class(_) | Term::ExpectFlags(_) | Term::Expect => false,
        Term::Related => f.is_related(),
        Term::Flow => true,
        Term::Nat => f.is_nat(),
        Term::NatTo(sel) => nat_matches(f, sel),
        Term::Icmp(which, c) => {
            o.is_icmp()
                && c.test(match which {
                    IcmpField::Type => o.icmp_type().into(),
                    IcmpField::Code => o.icmp_code().into(),
                    IcmpField::Id => o.icmp_id().into(),
                })
        }
        Term::Bytes(c) => counters(f).is_some_and(|[a, b]| c.test(a.bytes.saturating_add(b.bytes))),
        Term::Packets(c) => {
            counters(f).is_some_and(|[a, b]| c.test(a.packets.saturating_add(b.packets)))
        }
        Term::Secmark(c) => c.test(f.extra.as_ref().map_or(0, |e| e.secmark).into()),
        // Asked of the context in `eval_in`.
        Term::Stale(_) | Term::Age(_) | Term::Event(_) => false,
        Term::Text(_) => false,
    }
}

fn counters(f: &Flow) -> Option<[crate::model::Counter; 2]> {
    f.extra.as_ref().and_then(|e| e.counters)
}

/// conntrack(8)'s `filter_nat`: see [`NatSel`]. With an address and a port both must hold.
fn nat_matches(f: &Flow, sel: &NatSel) -> bool {
    let (o, r) = (&f.orig, f.reply());
    let ports = has_ports(o.proto);
    let side =
        |bit: u32, nat_addr: &[u8; 16], nat_port: u16, was_addr: &[u8; 16], was_port: u16| {
            if f.status & bit == 0 {
                return false;
            }
            let addr_moved = nat_addr != was_addr;
            let port_moved = ports && nat_port != was_port;
            match (sel.addr, sel.port) {
                (None, None) => addr_moved || port_moved,
                (Some(a), None) => addr_moved && a.contains(r.family, nat_addr),
                (None, Some(p)) => port_moved && nat_port == p,
                (Some(a), Some(p)) => {
                    addr_moved && a.contains(r.family, nat_addr) && port_moved && nat_port == p
                }
            }
        };
    (sel.snat && side(status::SRC_NAT, &r.dst, r.dport, &o.src, o.sport))
        || (sel.dnat && side(status::DST_NAT, &r.src, r.sport, &o.dst, o.dport))
}

/// `state=NAME`: the protocol state by name; `NEW` and `RELATED` (no protocol has them)
/// are the ctstate; `ESTABLISHED` on a protocol without states (udp, icmp, gre) is the
/// ctstate too, so `state=ESTABLISHED` means what an admin expects across protocols.
fn state_is(f: &Flow, name: &str) -> bool {
    match f.state_name() {
        Some(s) if s == name => true,
        _ => match name {
            "NEW" | "RELATED" => f.ctstate() == name,
            "ESTABLISHED" => f.state_name().is_none() && f.ctstate() == name,
            _ => false,
        },
    }
}

fn expect_term(t: &Term, e: &Expectation, now: u32) -> bool {
    let x = &e.tuple;
    match t {
        Term::Proto(p) => x.proto == *p,
        Term::Family(fam) => x.family == *fam,
        Term::Port(side, cmp) => {
            if !has_ports(x.proto) {
                return false;
            }
            let s = !e.sport_is_any() && cmp.test(x.sport.into());
            let d = !e.dport_is_any() && cmp.test(x.dport.into());
            match side {
                Side::Src => s,
                Side::Dst => d,
                Side::Any => s || d,
                Side::ReplySrc | Side::ReplyDst => false,
            }
        }
        Term::Addr(side, net) => {
            let s = !e.src_is_any() && net.contains(x.family, &x.src);
            let d = !e.dst_is_any() && net.contains(x.family, &x.dst);
            match side {
                Side::Src => s,
                Side::Dst => d,
                Side::Any => s || d,
                Side::ReplySrc | Side::ReplyDst => false,
            }
        }
        Term::Helper(name) => helper_is(e.helper, name),
        Term::Zone(c) => c.test(e.zone.into()),
        Term::Timeout(c) => c.test(e.remaining(now).into()),
        Term::Id(c) => c.test(e.id.into()),
        Term::Class(c) => c.test(e.class.into()),
        Term::ExpectFlags(mask) => e.flags & mask == *mask,
        Term::Expect => true,
        Term::Nat => e.nat.is_some(),
        Term::Status(_)
        | Term::Unreplied
        | Term::State(_)
        | Term::CtState(_)
        | Term::ZoneOrig(_)
        | Term::ZoneReply(_)
        | Term::Mark(..)
        | Term::Labels(_)
        | Term::Related
        | Term::Flow
        | Term::NatTo(_)
        | Term::Icmp(..)
        | Term::Bytes(_)
        | Term::Packets(_)
        | Term::Secmark(_)
        | Term::Stale(_)
        | Term::Age(_)
        | Term::Event(_)
        | Term::Text(_) => false,
    }
}

/// The text a bare word or `/regex/` searches in a flow: the original tuple, the reply
/// tuple when NATed, the protocol state, the ctstate, the status names and the helper,
/// e.g. `tcp 10.0.0.1:40000 -> 10.0.0.2:21 ESTABLISHED ESTABLISHED SEEN_REPLY ASSURED ftp`.
pub fn flow_text(f: &Flow, out: &mut String) {
    let _ = write!(out, "{}", f.orig);
    if f.is_nat() {
        let _ = write!(out, " reply {}", f.reply());
    }
    if let Some(s) = f.state_name() {
        out.push(' ');
        out.push_str(s);
    }
    out.push(' ');
    out.push_str(f.ctstate());
    for n in status::names(f.status) {
        out.push(' ');
        out.push_str(n);
    }
    if let Some(h) = f.helper.name() {
        out.push(' ');
        out.push_str(h);
    }
}

/// The text searched in an expectation: its tuple, master tuple, helper and flags,
/// e.g. `expect tcp 10.0.0.1:0 -> 10.0.0.2:50000 master tcp … ftp PERMANENT`.
pub fn expect_text(e: &Expectation, out: &mut String) {
    let _ = write!(out, "expect {} master {}", e.tuple, e.master);
    if let Some(h) = e.helper.name() {
        out.push(' ');
        out.push_str(h);
    }
    for n in expect::flags::names(e.flags) {
        out.push(' ');
        out.push_str(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_prefixes_inside_a_byte() {
        let mut addr = [0u8; 16];
        addr[..4].copy_from_slice(&[10, 0, 16, 0]);
        let net = Cidr {
            family: Family::Ipv4,
            addr,
            prefix: 20,
        };
        let mut a = addr;
        a[2] = 31;
        assert!(net.contains(Family::Ipv4, &a));
        a[2] = 32;
        assert!(!net.contains(Family::Ipv4, &a));
        assert!(!net.contains(Family::Ipv6, &addr));
    }
}
