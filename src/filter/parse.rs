//! Parser: tokens → expression tree, and the typed compilation of each `field op value`
//! term (shared with the conntrack-flags builder so both accept exactly the same values).
//! Owns every syntax and value error, each with the byte span it is about.

use std::net::IpAddr;

use regex::RegexBuilder;

use super::eval::{Cidr, Cmp, IcmpField, NatSel, Node, Side, Term};
use super::lex::{tokens, Kind, Op, Token};
use super::FilterError;
use crate::model::expect;
use crate::model::flow::{status, DCCP_STATES, SCTP_STATES, TCP_STATES};
use crate::model::tuple::{octets, proto, Family};

/// Fields a `field op value` term can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Proto,
    Family,
    Sport,
    Dport,
    Port,
    Src,
    Dst,
    Host,
    Helper,
    Status,
    State,
    CtState,
    Zone,
    ZoneOrig,
    ZoneReply,
    Mark,
    Label,
    Timeout,
    Id,
    Class,
    Flags,
    ReplySrc,
    ReplyDst,
    ReplySport,
    ReplyDport,
    SNat,
    DNat,
    AnyNat,
    IcmpType,
    IcmpCode,
    IcmpId,
    Bytes,
    Packets,
    Secmark,
    Age,
    Stale,
    Event,
}

/// Field names as typed (case-insensitive), including aliases.
pub const FIELDS: &[(&str, Field)] = &[
    ("proto", Field::Proto),
    ("protocol", Field::Proto),
    ("family", Field::Family),
    ("sport", Field::Sport),
    ("dport", Field::Dport),
    ("port", Field::Port),
    ("src", Field::Src),
    ("dst", Field::Dst),
    ("host", Field::Host),
    ("addr", Field::Host),
    ("helper", Field::Helper),
    ("status", Field::Status),
    ("state", Field::State),
    ("ctstate", Field::CtState),
    ("zone", Field::Zone),
    ("zone_orig", Field::ZoneOrig),
    ("zone-orig", Field::ZoneOrig),
    ("zone_reply", Field::ZoneReply),
    ("zone-reply", Field::ZoneReply),
    ("mark", Field::Mark),
    ("label", Field::Label),
    ("labels", Field::Label),
    ("timeout", Field::Timeout),
    ("id", Field::Id),
    ("class", Field::Class),
    ("flags", Field::Flags),
    ("reply_src", Field::ReplySrc),
    ("rsrc", Field::ReplySrc),
    ("reply_dst", Field::ReplyDst),
    ("rdst", Field::ReplyDst),
    ("reply_sport", Field::ReplySport),
    ("reply_dport", Field::ReplyDport),
    ("snat", Field::SNat),
    ("dnat", Field::DNat),
    ("anynat", Field::AnyNat),
    ("any_nat", Field::AnyNat),
    ("icmp_type", Field::IcmpType),
    ("icmp_code", Field::IcmpCode),
    ("icmp_id", Field::IcmpId),
    ("bytes", Field::Bytes),
    ("packets", Field::Packets),
    ("secmark", Field::Secmark),
    ("age", Field::Age),
    ("stale", Field::Stale),
    ("event", Field::Event),
];

/// Bare words that are tests rather than text.
const FLAGS: &[(&str, Term)] = &[
    ("related", Term::Related),
    ("expect", Term::Expect),
    ("flow", Term::Flow),
    ("nat", Term::Nat),
    ("stale", Term::Stale(u8::MAX)),
    ("snat", Term::NatTo(NAT_ANY_SRC)),
    ("dnat", Term::NatTo(NAT_ANY_DST)),
    ("anynat", Term::NatTo(NAT_ANY)),
];

const NAT_ANY_SRC: NatSel = NatSel {
    snat: true,
    dnat: false,
    addr: None,
    port: None,
};
const NAT_ANY_DST: NatSel = NatSel {
    snat: false,
    dnat: true,
    addr: None,
    port: None,
};
const NAT_ANY: NatSel = NatSel {
    snat: true,
    dnat: true,
    addr: None,
    port: None,
};

pub fn field(name: &str) -> Option<Field> {
    FIELDS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, f)| *f)
}

fn field_names() -> String {
    let mut v: Vec<&str> = FIELDS.iter().map(|(n, _)| *n).collect();
    v.dedup();
    v.join(", ")
}

/// Parse a whole expression. Blank input is `Node::All`.
pub fn parse(src: &str) -> Result<Node, FilterError> {
    let toks = tokens(src)?;
    if toks.is_empty() {
        return Ok(Node::All);
    }
    let mut p = Parser {
        toks,
        at: 0,
        end: src.len(),
        depth: 0,
    };
    let node = p.or()?;
    if let Some(t) = p.peek() {
        return Err(FilterError::new(
            t.pos,
            t.len,
            match t.kind {
                Kind::RParen => "unexpected ')' without a matching '('".to_owned(),
                _ => "unexpected token; combine terms with 'and' or 'or'".to_owned(),
            },
        ));
    }
    Ok(node)
}

struct Parser {
    toks: Vec<Token>,
    at: usize,
    end: usize,
    /// Current nesting of `(`, `not` and `!`: bounded so a pasted or hostile expression
    /// cannot overflow the stack in the parser or in evaluation.
    depth: usize,
}

/// Deepest nesting accepted; far beyond anything typed by hand.
const MAX_DEPTH: usize = 64;

fn is_word(t: &Token, w: &str) -> bool {
    matches!(&t.kind, Kind::Word(s) if s.eq_ignore_ascii_case(w))
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn is_or(t: &Token) -> bool {
        t.kind == Kind::OrOr || is_word(t, "or")
    }

    fn is_and(t: &Token) -> bool {
        t.kind == Kind::AndAnd || is_word(t, "and")
    }

    fn or(&mut self) -> Result<Node, FilterError> {
        let mut v = vec![self.and()?];
        while let Some(t) = self.peek().filter(|t| Self::is_or(t)).cloned() {
            self.at += 1;
            v.push(self.unary_after(&t)?);
            // `a or b and c`: `and` binds tighter.
            let last = v.pop().unwrap_or(Node::All);
            v.push(self.and_rest(last)?);
        }
        Ok(if v.len() == 1 {
            v.pop().unwrap_or(Node::All)
        } else {
            Node::Or(v)
        })
    }

    fn and(&mut self) -> Result<Node, FilterError> {
        let first = self.unary()?;
        self.and_rest(first)
    }

    /// Continue an `and` chain: explicit `and`/`&&`, or juxtaposition (`ftp dport=21`).
    fn and_rest(&mut self, first: Node) -> Result<Node, FilterError> {
        let mut v = vec![first];
        while let Some(t) = self.peek().cloned() {
            if Self::is_and(&t) {
                self.at += 1;
                v.push(self.unary_after(&t)?);
            } else if Self::is_or(&t) || t.kind == Kind::RParen {
                break;
            } else {
                v.push(self.unary()?);
            }
        }
        Ok(if v.len() == 1 {
            v.pop().unwrap_or(Node::All)
        } else {
            Node::And(v)
        })
    }

    /// A term that must follow the operator token `op`; a missing one is reported there.
    fn unary_after(&mut self, op: &Token) -> Result<Node, FilterError> {
        let name = match &op.kind {
            Kind::Word(w) => w.clone(),
            Kind::AndAnd => "&&".into(),
            Kind::OrOr => "||".into(),
            Kind::Bang => "!".into(),
            _ => "operator".into(),
        };
        match self.peek() {
            None => Err(FilterError::new(
                self.end,
                0,
                format!("expected a term after '{name}'"),
            )),
            Some(t) if t.kind == Kind::RParen || Self::is_and(t) || Self::is_or(t) => Err(
                FilterError::new(t.pos, t.len, format!("expected a term after '{name}'")),
            ),
            Some(_) => self.unary(),
        }
    }

    fn unary(&mut self) -> Result<Node, FilterError> {
        self.depth += 1;
        let r = self.unary_inner();
        self.depth -= 1;
        r
    }

    fn unary_inner(&mut self) -> Result<Node, FilterError> {
        let Some(t) = self.next() else {
            return Err(FilterError::new(self.end, 0, "expected a term"));
        };
        if self.depth > MAX_DEPTH {
            return Err(FilterError::new(
                t.pos,
                t.len,
                format!("expression nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        match &t.kind {
            Kind::Bang => Ok(Node::Not(Box::new(self.unary_after(&t)?))),
            Kind::Word(w) if w.eq_ignore_ascii_case("not") => {
                Ok(Node::Not(Box::new(self.unary_after(&t)?)))
            }
            Kind::LParen => {
                if self.peek().is_some_and(|n| n.kind == Kind::RParen) {
                    let n = self.next().map_or(t.pos, |n| n.pos);
                    return Err(FilterError::new(t.pos, n + 1 - t.pos, "empty parentheses"));
                }
                let inner = self.or()?;
                match self.next() {
                    Some(c) if c.kind == Kind::RParen => Ok(inner),
                    _ => Err(FilterError::new(t.pos, 1, "unclosed '('")),
                }
            }
            Kind::RParen => Err(FilterError::new(t.pos, 1, "unexpected ')'")),
            Kind::Regex(re) => text_regex(re, t.pos, t.len),
            Kind::Quoted(s) => text_regex(&regex::escape(s), t.pos, t.len),
            Kind::Op(op) => Err(FilterError::new(
                t.pos,
                t.len,
                format!(
                    "'{}' needs a field before it, e.g. 'dport{}21'",
                    op.text(),
                    op.text()
                ),
            )),
            Kind::AndAnd | Kind::OrOr => Err(FilterError::new(
                t.pos,
                t.len,
                "expected a term before this operator",
            )),
            Kind::Word(w) => {
                if Self::is_and(&t) || Self::is_or(&t) {
                    return Err(FilterError::new(
                        t.pos,
                        t.len,
                        format!("expected a term before '{w}'"),
                    ));
                }
                let op = match self.peek() {
                    Some(Token {
                        kind: Kind::Op(op), ..
                    }) => Some(*op),
                    Some(n) if is_word(n, "in") => Some(Op::Eq),
                    _ => None,
                };
                let Some(op) = op else {
                    if let Some((_, term)) = FLAGS.iter().find(|(n, _)| n.eq_ignore_ascii_case(w)) {
                        return Ok(Node::Term(term.clone()));
                    }
                    return text_regex(&regex::escape(w), t.pos, t.len);
                };
                let op_tok = self.next().unwrap_or_else(|| t.clone());
                let Some(f) = field(w) else {
                    return Err(FilterError::new(
                        t.pos,
                        t.len,
                        format!("unknown field '{w}' (fields: {})", field_names()),
                    ));
                };
                let (value, vpos) = match self.next() {
                    Some(Token {
                        kind: Kind::Quoted(v),
                        pos,
                        ..
                    }) => (v, pos),
                    Some(Token {
                        kind: Kind::Word(v),
                        pos,
                        ..
                    }) if !["and", "or", "not"]
                        .iter()
                        .any(|k| v.eq_ignore_ascii_case(k)) =>
                    {
                        (v, pos)
                    }
                    other => {
                        let shown = if is_word(&op_tok, "in") {
                            "in"
                        } else {
                            op.text()
                        };
                        let (pos, len) = match other {
                            Some(o) => (o.pos, o.len),
                            None => (op_tok.pos + op_tok.len, 0),
                        };
                        return Err(FilterError::new(
                            pos,
                            len,
                            format!("missing value after '{w} {shown}'"),
                        ));
                    }
                };
                term(f, op, &value, vpos, (op_tok.pos, op_tok.len))
            }
        }
    }
}

/// A text term: case-insensitive regex over the entry's text rendering.
fn text_regex(pattern: &str, pos: usize, len: usize) -> Result<Node, FilterError> {
    RegexBuilder::new(pattern)
        .case_insensitive(true)
        .size_limit(1 << 20)
        .build()
        .map(|re| Node::Term(Term::Text(re)))
        .map_err(|e| FilterError::new(pos, len, format!("invalid regex: {}", regex_reason(&e))))
}

/// The one-line reason out of regex's multi-line, caret-drawing message.
fn regex_reason(e: &regex::Error) -> String {
    let s = e.to_string();
    s.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or_else(|| s.lines().last().unwrap_or("bad pattern"))
        .to_owned()
}

/// Compile one `field op value` term. `vpos` is the value's byte offset in the source;
/// `op_span` the operator's, for operator errors. `field != value` is "the field applies
/// and is not value" (see `Node::Ne`); `not field = value` is the plain negation.
pub fn term(
    f: Field,
    op: Op,
    value: &str,
    vpos: usize,
    op_span: (usize, usize),
) -> Result<Node, FilterError> {
    let verr = |msg: String| FilterError::new(vpos, value.len(), msg);
    let numeric = matches!(
        f,
        Field::Sport
            | Field::Dport
            | Field::Port
            | Field::Zone
            | Field::ZoneOrig
            | Field::ZoneReply
            | Field::Mark
            | Field::Timeout
            | Field::Id
            | Field::Class
            | Field::ReplySport
            | Field::ReplyDport
            | Field::IcmpType
            | Field::IcmpCode
            | Field::IcmpId
            | Field::Bytes
            | Field::Packets
            | Field::Secmark
            | Field::Age
    );
    if !numeric && !matches!(op, Op::Eq | Op::Ne) {
        return Err(FilterError::new(
            op_span.0,
            op_span.1,
            format!(
                "'{}' does not apply to this field; use '=' or '!='",
                op.text()
            ),
        ));
    }
    let cmp = |max: u64, what: &str| -> Result<Cmp, FilterError> {
        number_cmp(op, value, vpos, max, what)
    };
    let t = match f {
        Field::Proto => Term::Proto(
            proto::parse(value).ok_or_else(|| verr(format!("unknown protocol '{value}'")))?,
        ),
        Field::Family => Term::Family(match value.to_ascii_lowercase().as_str() {
            "ipv4" | "inet" | "4" => Family::Ipv4,
            "ipv6" | "inet6" | "6" => Family::Ipv6,
            _ => return Err(verr(format!("unknown family '{value}' (ipv4 or ipv6)"))),
        }),
        Field::Sport => Term::Port(Side::Src, cmp(65535, "port")?),
        Field::Dport => Term::Port(Side::Dst, cmp(65535, "port")?),
        Field::Port => Term::Port(Side::Any, cmp(65535, "port")?),
        Field::Src => Term::Addr(Side::Src, cidr(value, vpos)?),
        Field::Dst => Term::Addr(Side::Dst, cidr(value, vpos)?),
        Field::Host => Term::Addr(Side::Any, cidr(value, vpos)?),
        Field::Helper => {
            let ok = !value.is_empty()
                && value.len() <= 16
                && value.bytes().all(|b| b.is_ascii_graphic());
            if !ok {
                return Err(verr(format!("invalid helper name '{value}'")));
            }
            Term::Helper(value.to_ascii_lowercase().into())
        }
        Field::Status => return status_list(op, value, vpos),
        Field::State => return state_list(op, value, vpos),
        Field::CtState => {
            let mut bits = 0u8;
            for (name, at) in list(value, vpos) {
                bits |= match name.to_ascii_uppercase().as_str() {
                    "NEW" => 1,
                    "ESTABLISHED" => 2,
                    "RELATED" => 4,
                    _ => {
                        return Err(FilterError::new(
                            at,
                            name.len(),
                            format!("unknown ctstate '{name}' (NEW, ESTABLISHED or RELATED)"),
                        ))
                    }
                };
            }
            Term::CtState(bits)
        }
        Field::Zone => Term::Zone(cmp(65535, "zone")?),
        Field::ZoneOrig => Term::ZoneOrig(cmp(65535, "zone_orig")?),
        Field::ZoneReply => Term::ZoneReply(cmp(65535, "zone_reply")?),
        Field::Mark => {
            let (v, mask) = match value.split_once('/') {
                Some((v, m)) => {
                    let mpos = vpos + v.len() + 1;
                    let mask = parse_num(m)
                        .filter(|n| *n <= u64::from(u32::MAX))
                        .ok_or_else(|| {
                            FilterError::new(mpos, m.len(), format!("invalid mark mask '{m}'"))
                        })?;
                    (v, mask as u32)
                }
                None => (value, u32::MAX),
            };
            Term::Mark(mask, number_cmp(op, v, vpos, u64::from(u32::MAX), "mark")?)
        }
        Field::Label => Term::Labels(label_list(value, vpos)?),
        Field::Timeout => Term::Timeout(cmp(u64::from(u32::MAX), "timeout")?),
        Field::Id => Term::Id(cmp(u64::from(u32::MAX), "id")?),
        Field::Class => Term::Class(cmp(u64::from(u32::MAX), "class")?),
        Field::Flags => {
            let mut bits = 0;
            for (name, at) in list(value, vpos) {
                let i = expect::flags::NAMES
                    .iter()
                    .position(|n| n.eq_ignore_ascii_case(name))
                    .ok_or_else(|| {
                        FilterError::new(
                            at,
                            name.len(),
                            format!("unknown expectation flag '{name}' (PERMANENT, INACTIVE, USERSPACE)"),
                        )
                    })?;
                bits |= 1 << i;
            }
            Term::ExpectFlags(bits)
        }
        Field::ReplySrc => Term::Addr(Side::ReplySrc, cidr(value, vpos)?),
        Field::ReplyDst => Term::Addr(Side::ReplyDst, cidr(value, vpos)?),
        Field::ReplySport => Term::Port(Side::ReplySrc, cmp(65535, "port")?),
        Field::ReplyDport => Term::Port(Side::ReplyDst, cmp(65535, "port")?),
        Field::SNat => Term::NatTo(nat_target(NAT_ANY_SRC, value, vpos)?),
        Field::DNat => Term::NatTo(nat_target(NAT_ANY_DST, value, vpos)?),
        Field::AnyNat => Term::NatTo(nat_target(NAT_ANY, value, vpos)?),
        Field::IcmpType => Term::Icmp(IcmpField::Type, cmp(255, "icmp type")?),
        Field::IcmpCode => Term::Icmp(IcmpField::Code, cmp(255, "icmp code")?),
        Field::IcmpId => Term::Icmp(IcmpField::Id, cmp(65535, "icmp id")?),
        Field::Bytes => Term::Bytes(scaled_cmp(op, value, vpos, "bytes")?),
        Field::Packets => Term::Packets(scaled_cmp(op, value, vpos, "packets")?),
        Field::Secmark => Term::Secmark(cmp(u64::from(u32::MAX), "secmark")?),
        Field::Age => Term::Age(age_cmp(op, value, vpos)?),
        Field::Stale => {
            let mut bits = 0u8;
            for (name, at) in list(value, vpos) {
                let r = crate::model::stale::Reason::parse(name).ok_or_else(|| {
                    let names: Vec<_> = crate::model::stale::Reason::ALL
                        .iter()
                        .map(|r| r.name())
                        .collect();
                    FilterError::new(
                        at,
                        name.len(),
                        format!("unknown stale reason '{name}' ({})", names.join(", ")),
                    )
                })?;
                bits |= r.bit();
            }
            Term::Stale(bits)
        }
        Field::Event => {
            let mut bits = 0u8;
            for (name, at) in list(value, vpos) {
                bits |= match name.to_ascii_lowercase().as_str() {
                    "new" => 1,
                    "update" | "updates" => 2,
                    "destroy" => 4,
                    _ => {
                        return Err(FilterError::new(
                            at,
                            name.len(),
                            format!("unknown event '{name}' (new, update or destroy)"),
                        ))
                    }
                };
            }
            Term::Event(bits)
        }
    };
    Ok(negate_if(op, Node::Term(t)))
}

fn negate_if(op: Op, n: Node) -> Node {
    if op == Op::Ne {
        Node::Ne(Box::new(n))
    } else {
        n
    }
}

/// Comma-separated items with their byte offsets; empty items are kept so they error.
fn list(value: &str, vpos: usize) -> impl Iterator<Item = (&str, usize)> {
    let mut at = vpos;
    value.split(',').map(move |s| {
        let here = at;
        at += s.len() + 1;
        (s, here)
    })
}

/// `label=A,B`: the label bits named (every one must be set, as conntrack's `-l`). A name
/// is looked up in the active connlabel.conf map (`model::labels`) first, so a label named
/// `3` is that label; otherwise a bit number 0-127 is accepted.
fn label_list(value: &str, vpos: usize) -> Result<u128, FilterError> {
    let map = crate::model::labels::active();
    let mut mask = 0u128;
    for (name, at) in list(value, vpos) {
        let bit = map
            .bit(name)
            .or_else(|| name.parse::<u8>().ok().filter(|b| usize::from(*b) < 128))
            .ok_or_else(|| {
                let why = match map.path() {
                    Some(p) if map.is_empty() => format!("'{}' names no label", p.display()),
                    Some(p) => format!("not named in '{}'", p.display()),
                    None => format!(
                        "no label map: none of {} exists",
                        crate::model::labels::PATHS.join(", ")
                    ),
                };
                FilterError::new(
                    at,
                    name.len(),
                    format!("unknown label '{name}' ({why}; or give a bit number 0-127)"),
                )
            })?;
        mask |= 1u128 << bit;
    }
    Ok(mask)
}

/// `status=A,B`: every named bit set; `UNREPLIED` means no `SEEN_REPLY`.
fn status_list(op: Op, value: &str, vpos: usize) -> Result<Node, FilterError> {
    let mut mask = 0;
    let mut unreplied = false;
    for (name, at) in list(value, vpos) {
        if name.eq_ignore_ascii_case("UNREPLIED") {
            unreplied = true;
        } else {
            mask |= status::parse(name).ok_or_else(|| {
                FilterError::new(
                    at,
                    name.len(),
                    format!(
                        "unknown status '{name}' (e.g. EXPECTED, SEEN_REPLY, ASSURED, UNREPLIED)"
                    ),
                )
            })?;
        }
    }
    let mut parts = Vec::new();
    if mask != 0 {
        parts.push(Node::Term(Term::Status(mask)));
    }
    if unreplied {
        parts.push(Node::Term(Term::Unreplied));
    }
    let n = if parts.len() == 1 {
        parts.pop().unwrap_or(Node::All)
    } else {
        Node::And(parts)
    };
    Ok(negate_if(op, n))
}

/// `state=A,B`: any of the named states.
fn state_list(op: Op, value: &str, vpos: usize) -> Result<Node, FilterError> {
    let mut any = Vec::new();
    for (name, at) in list(value, vpos) {
        let up = name.to_ascii_uppercase();
        let known = TCP_STATES
            .iter()
            .chain(SCTP_STATES.iter())
            .chain(DCCP_STATES.iter())
            .chain(["NEW", "RELATED"].iter())
            .find(|s| **s == up)
            .copied()
            .ok_or_else(|| {
                FilterError::new(
                    at,
                    name.len(),
                    format!("unknown state '{name}' (a TCP, SCTP or DCCP state, NEW or RELATED)"),
                )
            })?;
        any.push(Node::Term(Term::State(known)));
    }
    let n = if any.len() == 1 {
        any.pop().unwrap_or(Node::All)
    } else {
        Node::Or(any)
    };
    Ok(negate_if(op, n))
}

/// Decimal, or hexadecimal with `0x`.
fn parse_num(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None if s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
        None => None,
    }
}

/// A number or, with `=`/`!=`, a range `lo-hi` (also `lo:hi`, as iptables writes it).
/// `age>5m`: a duration in seconds (`300`) or with units (`5m`, `1h30m`), compared in
/// whole seconds; a range is `age=1m-1h`.
/// `value` (at `vpos`) against `op`: a `lo-hi` range (split into `range`, only with `=` or
/// `!=`) or one value, each parsed by `one` (given its text and position).
fn compare(
    op: Op,
    value: &str,
    vpos: usize,
    range: Option<(&str, &str)>,
    one: &dyn Fn(&str, usize) -> Result<u64, FilterError>,
) -> Result<Cmp, FilterError> {
    match (op, range) {
        (Op::Eq | Op::Ne, Some((lo, hi))) => {
            let a = one(lo, vpos)?;
            let b = one(hi, vpos + lo.len() + 1)?;
            if a > b {
                return Err(FilterError::new(
                    vpos,
                    value.len(),
                    format!("range start {a} is above its end {b}"),
                ));
            }
            Ok(Cmp::Range(a, b))
        }
        (_, Some(_)) => Err(FilterError::new(
            vpos,
            value.len(),
            format!("a range needs '=' or '!=', not '{}'", op.text()),
        )),
        (op, None) => {
            let n = one(value, vpos)?;
            Ok(match op {
                Op::Eq | Op::Ne => Cmp::Range(n, n),
                Op::Lt => Cmp::Lt(n),
                Op::Le => Cmp::Le(n),
                Op::Gt => Cmp::Gt(n),
                Op::Ge => Cmp::Ge(n),
            })
        }
    }
}

fn age_cmp(op: Op, value: &str, vpos: usize) -> Result<Cmp, FilterError> {
    let secs = |s: &str, at: usize| -> Result<u64, FilterError> {
        s.parse::<u64>()
            .ok()
            .or_else(|| humantime::parse_duration(s).ok().map(|d| d.as_secs()))
            .ok_or_else(|| {
                FilterError::new(at, s.len(), format!("invalid age '{s}' (e.g. 300, 5m, 1h)"))
            })
    };
    compare(op, value, vpos, value.split_once('-'), &secs)
}

fn number_cmp(op: Op, value: &str, vpos: usize, max: u64, what: &str) -> Result<Cmp, FilterError> {
    let one = |s: &str, at: usize| -> Result<u64, FilterError> {
        let n = parse_num(s)
            .ok_or_else(|| FilterError::new(at, s.len(), format!("invalid {what} '{s}'")))?;
        if n > max {
            return Err(FilterError::new(
                at,
                s.len(),
                format!("{what} {n} is out of range (0-{max})"),
            ));
        }
        Ok(n)
    };
    let range = value.split_once('-').or_else(|| value.split_once(':'));
    compare(op, value, vpos, range, &one)
}

/// An address or prefix, IPv4 or IPv6 (brackets allowed around IPv6).
fn cidr(value: &str, vpos: usize) -> Result<Cidr, FilterError> {
    let (a, p) = match value.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (value, None),
    };
    let ip: IpAddr = a
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| FilterError::new(vpos, a.len(), format!("invalid address '{a}'")))?;
    let (family, bits) = match ip {
        IpAddr::V4(_) => (Family::Ipv4, 32),
        IpAddr::V6(_) => (Family::Ipv6, 128),
    };
    let prefix = match p {
        None => bits,
        Some(p) => {
            let at = vpos + a.len() + 1;
            let n: u8 = p.parse().ok().filter(|n| *n <= bits).ok_or_else(|| {
                FilterError::new(
                    at,
                    p.len(),
                    format!(
                        "invalid prefix length '{p}' for {} (0-{bits})",
                        family.name()
                    ),
                )
            })?;
            n
        }
    };
    Ok(Cidr {
        family,
        addr: octets(ip),
        prefix,
    })
}

/// `ADDR`, `ADDR:PORT`, `[V6ADDR]:PORT`, `:PORT` or empty (any NAT of that kind): the
/// target of conntrack's `-n`/`-g`/`-j`. An address may be a prefix (`10.0.0.0/8`).
fn nat_target(mut sel: NatSel, value: &str, vpos: usize) -> Result<NatSel, FilterError> {
    let (addr, port, port_at) = if let Some(rest) = value.strip_prefix('[') {
        let Some((a, p)) = rest.split_once(']') else {
            return Err(FilterError::new(
                vpos,
                value.len(),
                "missing ']' after the address",
            ));
        };
        let port = match p.strip_prefix(':') {
            Some(port) => Some(port),
            None if p.is_empty() => None,
            None => {
                return Err(FilterError::new(
                    vpos + a.len() + 2,
                    p.len(),
                    "expected ':PORT' after ']'",
                ))
            }
        };
        (a, port, vpos + a.len() + 3)
    } else if value.matches(':').count() == 1 {
        let (a, p) = value.split_once(':').unwrap_or((value, ""));
        (a, Some(p), vpos + a.len() + 1)
    } else {
        (value, None, 0)
    };
    if !addr.is_empty() && !addr.eq_ignore_ascii_case("any") {
        let at = if value.starts_with('[') {
            vpos + 1
        } else {
            vpos
        };
        sel.addr = Some(cidr(addr, at)?);
    }
    if let Some(p) = port {
        let n = parse_num(p)
            .filter(|n| *n <= 65535)
            .ok_or_else(|| FilterError::new(port_at, p.len(), format!("invalid port '{p}'")))?;
        sel.port = Some(n as u16);
    }
    Ok(sel)
}

/// A count with an optional binary suffix (`K`, `M`, `G`, `T`: powers of 1024), e.g.
/// `bytes>1M`; ranges as for other numbers.
fn scaled_cmp(op: Op, value: &str, vpos: usize, what: &str) -> Result<Cmp, FilterError> {
    let scale = |s: &str| -> Option<String> {
        let (digits, mul) = match s.chars().last().map(|c| c.to_ascii_uppercase()) {
            Some('K') => (&s[..s.len() - 1], 1u64 << 10),
            Some('M') => (&s[..s.len() - 1], 1 << 20),
            Some('G') => (&s[..s.len() - 1], 1 << 30),
            Some('T') => (&s[..s.len() - 1], 1 << 40),
            _ => (s, 1),
        };
        parse_num(digits)
            .and_then(|n| n.checked_mul(mul))
            .map(|n| n.to_string())
    };
    // Scale each end first, then compare as plain numbers (spans stay on the whole value).
    let plain: Option<String> = match value.split_once('-') {
        Some((lo, hi)) => scale(lo).zip(scale(hi)).map(|(a, b)| format!("{a}-{b}")),
        None => scale(value),
    };
    match plain {
        Some(p) => number_cmp(op, &p, vpos, u64::MAX, what)
            .map_err(|e| FilterError::new(vpos, value.len(), e.message)),
        None => Err(FilterError::new(
            vpos,
            value.len(),
            format!("invalid {what} '{value}' (a number, optionally with K, M, G or T)"),
        )),
    }
}
