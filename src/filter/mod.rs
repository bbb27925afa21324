//! The filter language: one small expression language for the TUI filter bar and for
//! `--filter` on headless commands, plus the compilation of conntrack(8)-style flags
//! (every selector in [`selectors::SELECTORS`]) into the same tree.
//!
//! It owns parsing, errors with spans, and evaluation of one flow or expectation. It must
//! not know about the store's linkage, the terminal or netlink.
//!
//! # Language
//!
//! ```text
//! expr    := or
//! or      := and (("or" | "||") and)*
//! and     := unary (("and" | "&&")? unary)*        juxtaposition is "and"
//! unary   := ("not" | "!") unary | "(" expr ")" | term
//! term    := FIELD OP VALUE | FIELD "in" VALUE | FLAG | WORD | "quoted text" | /regex/
//! OP      := "=" | "==" | "!=" | "<" | "<=" | ">" | ">="   (ordering on numeric fields)
//! ```
//!
//! | field | value | on a flow | on an expectation |
//! |---|---|---|---|
//! | `proto` | `tcp`, `udp`, `igmp`, any /etc/protocols name, or a number | original tuple | tuple |
//! | `family` | `ipv4`, `ipv6` | | |
//! | `sport`, `dport` | `21`, `1024-65535`, `0x15`; `<` `>` … | original tuple | tuple, unless wildcard |
//! | `port` | as above | any port, original or NATed reply | either port |
//! | `src`, `dst` | `10.0.0.1`, `10.0.0.0/8`, `fd00::/64` (`=` or `in`) | original tuple | tuple, unless wildcard |
//! | `host`, `addr` | as above | any address, original or NATed reply | either address |
//! | `helper` | a helper name (one never seen matches nothing) | | |
//! | `status` | `EXPECTED`, `ASSURED,SEEN_REPLY` (all), `UNREPLIED` (= no SEEN_REPLY) | | never |
//! | `state` | TCP/SCTP/DCCP state, `NEW`, `RELATED` (any of a list) | see below | never |
//! | `ctstate` | `NEW`, `ESTABLISHED`, `RELATED` (any of a list) | `Flow::ctstate` | never |
//! | `zone`, `id`, `timeout` | number, range or comparison (`timeout<30`: seconds left) | | |
//! | `zone_orig`, `zone_reply` | as `zone`; the per-direction zone (`CTA_TUPLE_ZONE`), 0 unset | | never |
//! | `mark` | `0x10`, `16`, `0x10/0xff` (value/mask) | | never |
//! | `label` | connlabel.conf names or bits 0-127, `blue,"red team"` (all) | | never |
//! | `class`, `flags` | number; `PERMANENT,INACTIVE,USERSPACE` (all) | never | |
//! | `reply_src`, `reply_dst` | as `src` | reply tuple | never |
//! | `reply_sport`, `reply_dport` | as `sport` | reply tuple | never |
//! | `snat`, `dnat`, `anynat` | bare, or `ADDR[:PORT]`, `[V6]:PORT` | conntrack's `-n -g -j` | never |
//! | `icmp_type`, `icmp_code`, `icmp_id` | number, range or comparison | icmp/icmpv6 only | never |
//! | `bytes`, `packets` | number with `K M G T` (1024s); `bytes>1M` | both directions, acct on | never |
//!
//! Flags: `related` (a RELATED flow), `expect` (any expectation), `flow` (any flow), `nat`.
//! `state=NEW`/`state=RELATED` mean the ctstate (no protocol has such a state), and
//! `state=ESTABLISHED` on a protocol without states (udp, icmp, gre) is the ctstate too.
//! Ports apply only to tcp, udp, udplite, sctp and dccp (not icmp ids nor gre keys).
//! Any other bare word, a "quoted text" or a `/regex/` (case-insensitive) searches the
//! entry's text as the front end shows it ([`TextSource`]): the dashboard's row text
//! ([`flow_text`], [`expect_text`]) by default, the printed line on the command line. That
//! text is only rendered when the expression has such a term, so other filters cost no
//! allocation per entry.

pub mod context;
mod eval;
mod lex;
mod parse;
pub mod required;
pub mod selectors;

use std::fmt;

pub use context::{Context, EventKind, NoContext, StoreContext, WithEvent};
pub use eval::{expect_text, flow_text, TextSource};
pub use required::{Required, TupleFacts};

use crate::model::{Expectation, Flow};
use eval::{Item, Node};
use lex::Op;

/// A filter expression that could not be compiled: `pos` and `len` are byte offsets into
/// the source (for `from_conntrack_flags`, into the flag's value), so the TUI can mark the
/// span and the CLI can draw a caret line with [`FilterError::render`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct FilterError {
    pub pos: usize,
    pub len: usize,
    pub message: String,
}

impl FilterError {
    pub fn new(pos: usize, len: usize, message: impl Into<String>) -> FilterError {
        FilterError {
            pos,
            len,
            message: message.into(),
        }
    }

    /// The source with a caret line under the bad span and the message, e.g.
    ///
    /// ```text
    /// dprt=21
    /// ^^^^ unknown field 'dprt' (…)
    /// ```
    pub fn render(&self, source: &str) -> String {
        let pos = self.pos.min(source.len());
        let end = (self.pos + self.len).min(source.len()).max(pos);
        let col = source.get(..pos).map_or(pos, |s| s.chars().count());
        let width = source.get(pos..end).map_or(1, |s| s.chars().count()).max(1);
        format!(
            "{source}\n{}{} {}",
            " ".repeat(col),
            "^".repeat(width),
            self.message
        )
    }
}

/// `message (at column N)`: columns count from 1, in characters.
impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at column {})", self.message, self.pos + 1)
    }
}

/// A compiled filter. Cheap to clone; evaluation never allocates unless the expression has
/// a text or regex term.
#[derive(Debug, Clone)]
pub struct Filter {
    source: String,
    root: Node,
    has_text: bool,
    texts: TextSource,
}

impl Default for Filter {
    fn default() -> Filter {
        Filter::all()
    }
}

impl Filter {
    /// The empty filter: matches everything.
    pub fn all() -> Filter {
        Filter {
            source: String::new(),
            root: Node::All,
            has_text: false,
            texts: TextSource::DASHBOARD,
        }
    }

    /// Compile an expression (see the module docs). Blank input is the empty filter.
    pub fn parse(source: &str) -> Result<Filter, FilterError> {
        let root = parse::parse(source)?;
        Ok(Filter {
            source: source.to_owned(),
            has_text: root.has_text(),
            root,
            texts: TextSource::DASHBOARD,
        })
    }

    /// The same filter with text terms searching what `texts` renders (the compiled tree
    /// is kept: nothing is parsed again).
    pub fn with_text(self, texts: TextSource) -> Filter {
        Filter { texts, ..self }
    }

    /// Whether `flow` matches at store time `now` (used by `timeout`), with no context:
    /// `stale` and `event` terms match nothing (see [`Filter::needs_context`]).
    pub fn match_flow(&self, flow: &Flow, now: u32) -> bool {
        self.match_flow_in(flow, now, &NoContext)
    }

    /// Whether expectation `exp` matches at store time `now`, with no context.
    pub fn match_expect(&self, exp: &Expectation, now: u32) -> bool {
        self.match_expect_in(exp, now, &NoContext)
    }

    /// Whether `flow` matches at store time `now`, asking `ctx` for what the entry
    /// cannot say (staleness, the wall clock, the event shown).
    pub fn match_flow_in(&self, flow: &Flow, now: u32, ctx: &dyn Context) -> bool {
        eval::eval(
            &self.root,
            Item::Flow(flow),
            now,
            self.has_text,
            &self.texts,
            ctx,
        )
    }

    /// Whether expectation `exp` matches at store time `now`, with `ctx`.
    pub fn match_expect_in(&self, exp: &Expectation, now: u32, ctx: &dyn Context) -> bool {
        eval::eval(
            &self.root,
            Item::Expect(exp),
            now,
            self.has_text,
            &self.texts,
            ctx,
        )
    }

    /// Whether the expression has a `stale` term (needs the store: a [`StoreContext`])
    /// and whether it has an `event` term (needs the event shown: `watch` only).
    pub fn needs_context(&self) -> (bool, bool) {
        (self.root.has_stale(), self.root.has_event())
    }

    /// Whether this filter matches everything (nothing was typed).
    pub fn is_empty(&self) -> bool {
        matches!(self.root, Node::All)
    }

    /// The expression as typed (for flags, an equivalent expression).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether evaluation renders entry text (a bare word, quoted text or regex).
    pub fn has_text(&self) -> bool {
        self.has_text
    }

    /// Both filters must match (e.g. conntrack-style flags and `--filter` together). Text
    /// terms search `self`'s text source.
    pub fn and(self, other: Filter) -> Filter {
        match (self.is_empty(), other.is_empty()) {
            (true, _) => other,
            (_, true) => self,
            _ => Filter {
                source: format!("({}) and ({})", self.source, other.source),
                has_text: self.has_text || other.has_text,
                root: Node::And(vec![self.root, other.root]),
                texts: self.texts,
            },
        }
    }
}

/// conntrack(8)-style selection flags as given on a headless command line: which
/// [`selectors::Selector`] was given and its value (`None` for a switch, or an optional
/// value left out). Each value is parsed exactly as the same field in the expression
/// language.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConntrackFlags {
    pub given: Vec<(&'static selectors::Selector, Option<String>)>,
}

impl ConntrackFlags {
    /// Add `--long VALUE` (`long` as conntrack spells it, or an alias). Panics on a name
    /// that is not in [`selectors::SELECTORS`]: callers pass names from that table.
    pub fn with(mut self, long: &str, value: impl Into<String>) -> ConntrackFlags {
        self.given.push((lookup(long), Some(value.into())));
        self
    }

    /// Add a switch (`--related`) or a flag whose value is optional given bare (`-n`).
    pub fn switch(mut self, long: &str) -> ConntrackFlags {
        self.given.push((lookup(long), None));
        self
    }

    /// The value given for the selector named `long`, if any.
    pub fn value(&self, long: &str) -> Option<&str> {
        self.given
            .iter()
            .find(|(s, _)| s.long == long)
            .and_then(|(_, v)| v.as_deref())
    }
}

fn lookup(long: &str) -> &'static selectors::Selector {
    selectors::by_long(long).unwrap_or_else(|| panic!("'--{long}' is not a conntrack selector"))
}

/// Compile conntrack-style flags into a filter (all given flags must match). An error's
/// `pos`/`len` are offsets into that flag's value and its message starts with the flag,
/// e.g. `--dport: invalid port 'x'`. The filter's `source()` is the equivalent expression.
///
/// As in conntrack(8), `-f`, `-s` and `-d` must agree on the family: `-s ::1 -d 2.2.2.2`
/// or `-f ipv6 -s 10.0.0.1` is an error ("mismatched address family"), not a filter that
/// quietly matches nothing.
pub fn from_conntrack_flags(flags: &ConntrackFlags) -> Result<Filter, FilterError> {
    check_families(flags)?;
    let mut nodes = Vec::new();
    let mut source = Vec::new();
    for (sel, value) in &flags.given {
        let flag = match sel.short {
            Some(c) => format!("-{c}"),
            None => format!("--{}", sel.long),
        };
        let (node, text) = match value {
            None => {
                let node = parse::parse(sel.field).map_err(|e| FilterError {
                    message: format!("{flag}: {}", e.message),
                    ..e
                })?;
                (node, sel.field.to_owned())
            }
            Some(v) => {
                let field = parse::field(sel.field)
                    .ok_or_else(|| FilterError::new(0, 0, format!("{flag}: takes no value")))?;
                let node = parse::term(field, Op::Eq, v, 0, (0, 0)).map_err(|e| FilterError {
                    message: format!("{flag}: {}", e.message),
                    ..e
                })?;
                let text = if v.contains([' ', '"']) || v.is_empty() {
                    format!(
                        "{}=\"{}\"",
                        sel.field,
                        v.replace('\\', "\\\\").replace('"', "\\\"")
                    )
                } else {
                    format!("{}={v}", sel.field)
                };
                (node, text)
            }
        };
        if sel.applies == selectors::Applies::Expects {
            nodes.push(Node::Term(eval::Term::Expect));
            source.push("expect".to_owned());
        }
        nodes.push(node);
        source.push(text);
    }
    let root = match nodes.len() {
        0 => Node::All,
        1 => nodes.pop().unwrap_or(Node::All),
        _ => Node::And(nodes),
    };
    Ok(Filter {
        source: source.join(" and "),
        has_text: false,
        root,
        texts: TextSource::DASHBOARD,
    })
}

/// The family each of `-f`, `-s`, `-d` implies must be one family. Values that do not
/// parse are left to their own, more precise, error.
fn check_families(flags: &ConntrackFlags) -> Result<(), FilterError> {
    let family = |v: &str| -> Option<&'static str> {
        match v.to_ascii_lowercase().as_str() {
            "ipv4" | "inet" | "4" => Some("IPv4"),
            "ipv6" | "inet6" | "6" => Some("IPv6"),
            _ => None,
        }
    };
    let addr = |v: &str| -> Option<&'static str> {
        let a = v.split('/').next().unwrap_or(v);
        match a.trim_start_matches('[').trim_end_matches(']').parse() {
            Ok(std::net::IpAddr::V4(_)) => Some("IPv4"),
            Ok(std::net::IpAddr::V6(_)) => Some("IPv6"),
            Err(_) => None,
        }
    };
    let said: Vec<(&str, &str, &'static str)> = [
        (
            "-f",
            flags
                .value("family")
                .and_then(|v| family(v).map(|f| (v, f))),
        ),
        (
            "-s",
            flags
                .value("orig-src")
                .and_then(|v| addr(v).map(|f| (v, f))),
        ),
        (
            "-d",
            flags
                .value("orig-dst")
                .and_then(|v| addr(v).map(|f| (v, f))),
        ),
        (
            "-r",
            flags
                .value("reply-src")
                .and_then(|v| addr(v).map(|f| (v, f))),
        ),
        (
            "-q",
            flags
                .value("reply-dst")
                .and_then(|v| addr(v).map(|f| (v, f))),
        ),
    ]
    .into_iter()
    .filter_map(|(flag, x)| x.map(|(v, f)| (flag, v, f)))
    .collect();
    if let Some((a, b)) = said
        .first()
        .and_then(|a| said.iter().find(|b| b.2 != a.2).map(|b| (a, b)))
    {
        return Err(FilterError::new(
            0,
            b.1.len(),
            format!(
                "mismatched address family: '{} {}' is {} but '{} {}' is {}",
                a.0, a.1, a.2, b.0, b.1, b.2
            ),
        ));
    }
    Ok(())
}
