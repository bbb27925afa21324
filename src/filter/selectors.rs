//! The one table of conntrack(8)'s selection flags: each flag as conntrack spells it, the
//! filter-language field it compiles to, and its help line. The command line
//! (`cli::selectors`), `--help`, the README's flag table (`markdown_table`, checked by a
//! test) and [`super::from_conntrack_flags`] all read it, so a flag and its filter term
//! cannot drift apart. It owns names and words only; values are parsed by `parse::term`.

/// Which entries a selector can apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    /// Flows and expectations.
    Both,
    /// Flows only (an expectation has no such field: it never matches).
    Flows,
    /// Expectations only.
    Expects,
}

/// One conntrack(8) flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selector {
    /// The long flag without `--`, as conntrack(8) spells it.
    pub long: &'static str,
    /// The short flag, when conntrack(8) has one.
    pub short: Option<char>,
    /// Other long spellings accepted (conntrack's aliases and ctscope's older names).
    pub aliases: &'static [&'static str],
    /// The filter-language field (`field=VALUE`), or for a switch the bare word.
    pub field: &'static str,
    /// The value's name in `--help`; empty for a switch.
    pub value: &'static str,
    /// The value may be left out (`-n` alone: any source NAT).
    pub optional: bool,
    /// Repeating the flag adds values (all required), as conntrack's `-l`.
    pub repeat: bool,
    pub applies: Applies,
    /// One line for `--help` and the README.
    pub help: &'static str,
}

const fn sel(
    long: &'static str,
    short: Option<char>,
    aliases: &'static [&'static str],
    field: &'static str,
    value: &'static str,
    applies: Applies,
    help: &'static str,
) -> Selector {
    Selector {
        long,
        short,
        aliases,
        field,
        value,
        optional: false,
        repeat: false,
        applies,
        help,
    }
}

const fn optional(s: Selector) -> Selector {
    Selector {
        optional: true,
        ..s
    }
}

const fn repeat(s: Selector) -> Selector {
    Selector { repeat: true, ..s }
}

use Applies::{Both, Expects, Flows};

/// Every selector, in conntrack(8)'s order.
pub const SELECTORS: &[Selector] = &[
    sel(
        "family",
        Some('f'),
        &[],
        "family",
        "ipv4|ipv6",
        Both,
        "address family (default: both)",
    ),
    sel(
        "proto",
        Some('p'),
        &[],
        "proto",
        "PROTO",
        Both,
        "layer 4 protocol: a name from /etc/protocols or a number",
    ),
    sel(
        "orig-src",
        Some('s'),
        &["src"],
        "src",
        "ADDR[/LEN]",
        Both,
        "original source address or prefix",
    ),
    sel(
        "orig-dst",
        Some('d'),
        &["dst"],
        "dst",
        "ADDR[/LEN]",
        Both,
        "original destination address or prefix",
    ),
    sel(
        "reply-src",
        Some('r'),
        &[],
        "reply_src",
        "ADDR[/LEN]",
        Flows,
        "reply source address or prefix",
    ),
    sel(
        "reply-dst",
        Some('q'),
        &[],
        "reply_dst",
        "ADDR[/LEN]",
        Flows,
        "reply destination address or prefix",
    ),
    sel(
        "orig-port-src",
        None,
        &["sport"],
        "sport",
        "PORT",
        Both,
        "original source port (tcp, udp, udplite, sctp, dccp)",
    ),
    sel(
        "orig-port-dst",
        None,
        &["dport"],
        "dport",
        "PORT",
        Both,
        "original destination port",
    ),
    sel(
        "reply-port-src",
        None,
        &[],
        "reply_sport",
        "PORT",
        Flows,
        "reply source port",
    ),
    sel(
        "reply-port-dst",
        None,
        &[],
        "reply_dport",
        "PORT",
        Flows,
        "reply destination port",
    ),
    optional(sel(
        "src-nat",
        Some('n'),
        &[],
        "snat",
        "ADDR[:PORT]",
        Flows,
        "source-NATed flows, optionally to this address and port",
    )),
    optional(sel(
        "dst-nat",
        Some('g'),
        &[],
        "dnat",
        "ADDR[:PORT]",
        Flows,
        "destination-NATed flows, optionally to this address and port",
    )),
    optional(sel(
        "any-nat",
        Some('j'),
        &[],
        "anynat",
        "ADDR[:PORT]",
        Flows,
        "source- or destination-NATed flows, optionally to this address and port",
    )),
    sel(
        "state",
        None,
        &[],
        "state",
        "STATE,…",
        Flows,
        "protocol state (any of them): ESTABLISHED, TIME_WAIT, …",
    ),
    sel(
        "status",
        Some('u'),
        &[],
        "status",
        "STATUS,…",
        Flows,
        "status bits, all required: ASSURED, SEEN_REPLY, UNREPLIED, …",
    ),
    sel(
        "mark",
        Some('m'),
        &[],
        "mark",
        "MARK[/MASK]",
        Flows,
        "mark, decimal or 0x hex, with an optional mask",
    ),
    sel(
        "secmark",
        Some('c'),
        &[],
        "secmark",
        "SECMARK",
        Flows,
        "security mark (CTA_SECMARK; 0 where the kernel reports none)",
    ),
    repeat(sel(
        "label",
        Some('l'),
        &[],
        "label",
        "LABEL,…",
        Flows,
        "labels, all required: connlabel.conf names or bit numbers",
    )),
    sel(
        "zone",
        Some('w'),
        &[],
        "zone",
        "ZONE",
        Both,
        "conntrack zone (CTA_ZONE)",
    ),
    sel(
        "orig-zone",
        None,
        &[],
        "zone_orig",
        "ZONE",
        Flows,
        "zone of the original direction (CTA_TUPLE_ZONE)",
    ),
    sel(
        "reply-zone",
        None,
        &[],
        "zone_reply",
        "ZONE",
        Flows,
        "zone of the reply direction",
    ),
    sel(
        "icmp-type",
        None,
        &[],
        "icmp_type",
        "TYPE",
        Flows,
        "icmp/icmpv6 type",
    ),
    sel(
        "icmp-code",
        None,
        &[],
        "icmp_code",
        "CODE",
        Flows,
        "icmp/icmpv6 code",
    ),
    sel(
        "icmp-id",
        None,
        &[],
        "icmp_id",
        "ID",
        Flows,
        "icmp/icmpv6 echo id",
    ),
    sel(
        "tuple-src",
        None,
        &[],
        "src",
        "ADDR",
        Expects,
        "expectation: expected source address",
    ),
    sel(
        "tuple-dst",
        None,
        &[],
        "dst",
        "ADDR",
        Expects,
        "expectation: expected destination address",
    ),
    sel(
        "helper",
        None,
        &[],
        "helper",
        "NAME",
        Both,
        "ctscope: entries of this helper (ftp, sip, …)",
    ),
    sel(
        "related",
        None,
        &[],
        "related",
        "",
        Flows,
        "ctscope: RELATED flows only",
    ),
];

/// The selector named by a long flag or alias (without `--`).
pub fn by_long(name: &str) -> Option<&'static Selector> {
    SELECTORS
        .iter()
        .find(|s| s.long == name || s.aliases.contains(&name))
}

/// The README's table of flags, generated from [`SELECTORS`].
pub fn markdown_table() -> String {
    let mut out = String::from("| flag | filter term | selects |\n|---|---|---|\n");
    for s in SELECTORS {
        let mut flags = Vec::new();
        if let Some(c) = s.short {
            flags.push(format!("`-{c}`"));
        }
        flags.push(format!("`--{}`", s.long));
        flags.extend(s.aliases.iter().map(|a| format!("`--{a}`")));
        let term = if s.value.is_empty() {
            format!("`{}`", s.field)
        } else if s.optional {
            format!("`{0}` or `{0}={1}`", s.field, s.value)
        } else {
            format!("`{}={}`", s.field, s.value)
        };
        let only = match s.applies {
            Both => "",
            Flows => " (flows)",
            Expects => " (expectations)",
        };
        out.push_str(&format!(
            "| {} | {} | {}{only} |\n",
            flags.join(", "),
            term.replace('|', "\\|"),
            s.help.replace('|', "\\|")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's flag table is this table: edit `SELECTORS`, then paste
    /// `markdown_table()` between the README's markers.
    #[test]
    fn readme_table_is_generated_from_the_selectors() {
        let readme = include_str!("../../README.md");
        let begin = "<!-- selectors:begin -->\n";
        let start = readme.find(begin).expect("README marker") + begin.len();
        let end = readme
            .find("<!-- selectors:end -->")
            .expect("README end marker");
        assert_eq!(
            &readme[start..end],
            markdown_table(),
            "README flag table is stale; paste markdown_table()"
        );
    }

    #[test]
    fn every_selector_names_a_filter_field_or_word() {
        for s in SELECTORS {
            let src = if s.value.is_empty() || s.optional {
                s.field.to_owned()
            } else {
                format!("{}=1", s.field)
            };
            // A field with a bad value is a value error, never "unknown field".
            if let Err(e) = crate::filter::Filter::parse(&src) {
                assert!(
                    !e.message.contains("unknown field"),
                    "{}: {}",
                    s.long,
                    e.message
                );
            }
        }
    }
}
