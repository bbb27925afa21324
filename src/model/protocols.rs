//! IP protocol names as the system spells them: /etc/protocols, read once at runtime, or a
//! built-in table of the usual IANA names when that file is absent or unreadable.
//!
//! conntrack(8)'s `-p` accepts any name `getprotobyname(3)` knows (`igmp`, `ospf`, `esp`)
//! or a number, so ctscope's `-p` and `proto=` do too. This module only maps names to
//! numbers; the names conntrack(8) prints (`tcp`, …, `unknown`) are `tuple::proto`'s.

use std::collections::HashMap;
use std::sync::OnceLock;

/// Where the system keeps the protocol database (protocols(5)).
pub const PATH: &str = "/etc/protocols";

/// Used only when /etc/protocols cannot be read: the IANA keywords of netbase's file for
/// protocols a firewall meets (netbase's list is the reference; aliases are lowercase).
const BUILTIN: &[(&str, u8)] = &[
    ("ip", 0),
    ("hopopt", 0),
    ("icmp", 1),
    ("igmp", 2),
    ("ggp", 3),
    ("ipencap", 4),
    ("ip-encap", 4),
    ("st", 5),
    ("tcp", 6),
    ("egp", 8),
    ("igp", 9),
    ("pup", 12),
    ("udp", 17),
    ("hmp", 20),
    ("xns-idp", 22),
    ("rdp", 27),
    ("iso-tp4", 29),
    ("dccp", 33),
    ("xtp", 36),
    ("ddp", 37),
    ("idpr-cmtp", 38),
    ("ipv6", 41),
    ("ipv6-route", 43),
    ("ipv6-frag", 44),
    ("idrp", 45),
    ("rsvp", 46),
    ("gre", 47),
    ("esp", 50),
    ("ipv6-crypt", 50),
    ("ah", 51),
    ("ipv6-auth", 51),
    ("skip", 57),
    ("ipv6-icmp", 58),
    ("icmpv6", 58),
    ("ipv6-nonxt", 59),
    ("ipv6-opts", 60),
    ("rspf", 73),
    ("vmtp", 81),
    ("eigrp", 88),
    ("ospf", 89),
    ("ax.25", 93),
    ("ipip", 94),
    ("etherip", 97),
    ("encap", 98),
    ("pim", 103),
    ("ipcomp", 108),
    ("vrrp", 112),
    ("l2tp", 115),
    ("isis", 124),
    ("sctp", 132),
    ("fc", 133),
    ("mobility-header", 135),
    ("udplite", 136),
    ("mpls-in-ip", 137),
    ("manet", 138),
    ("hip", 139),
    ("shim6", 140),
    ("wesp", 141),
    ("rohc", 142),
    ("ethernet", 143),
];

/// A name → number table (names lowercase).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    by_name: HashMap<Box<str>, u8>,
}

impl Table {
    /// Parse protocols(5) text: `name number [aliases…] [# comment]`. Lines that do not fit
    /// (a number above 255, a missing number) are skipped, as getprotoent(3) skips them.
    /// The first line naming a name wins.
    pub fn parse(text: &str) -> Table {
        let mut by_name = HashMap::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let (Some(name), Some(num)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(num) = num.parse::<u8>() else { continue };
            for n in std::iter::once(name).chain(words) {
                by_name
                    .entry(n.to_ascii_lowercase().into_boxed_str())
                    .or_insert(num);
            }
        }
        Table { by_name }
    }

    /// The built-in fallback table.
    pub fn builtin() -> Table {
        Table {
            by_name: BUILTIN.iter().map(|(n, p)| ((*n).into(), *p)).collect(),
        }
    }

    /// The number of `name` (case-insensitive).
    pub fn number(&self, name: &str) -> Option<u8> {
        self.by_name
            .get(name.to_ascii_lowercase().as_str())
            .copied()
    }
}

/// The system's table: /etc/protocols when readable (and not empty), else the built-in one.
pub fn system() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        std::fs::read_to_string(PATH)
            .ok()
            .map(|t| Table::parse(&t))
            .filter(|t| !t.by_name.is_empty())
            .unwrap_or_else(Table::builtin)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_aliases_and_comments() {
        let t = Table::parse(
            "# comment\nigmp\t2\tIGMP\t\t# Internet Group Management\n\
             ospf 89 OSPFIGP\nbad x\nbig 300\nigmp 99\n",
        );
        assert_eq!(t.number("igmp"), Some(2));
        assert_eq!(t.number("IGMP"), Some(2));
        assert_eq!(t.number("ospfigp"), Some(89));
        assert_eq!(t.number("bad"), None);
        assert_eq!(t.number("big"), None);
        assert_eq!(t.number("comment"), None);
    }

    #[test]
    fn builtin_knows_what_a_firewall_meets() {
        let t = Table::builtin();
        for (n, p) in [
            ("igmp", 2),
            ("esp", 50),
            ("ah", 51),
            ("ospf", 89),
            ("vrrp", 112),
        ] {
            assert_eq!(t.number(n), Some(p), "{n}");
        }
    }
}
