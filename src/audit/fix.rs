//! Fixes in the firewall's own language. ctscope's fix vocabulary (`risk::finding`, the
//! helper table's `restrict` column) is written as iptables commands, as the netfilter
//! authors wrote their advice; an admin whose firewall is nftables, or who is looking at an
//! IPv6 chain, must get a command that works there: `ip6tables`, or an `nft` rule in their
//! own table and base chain, and in the chain the traffic actually takes (INPUT for this
//! host, FORWARD for a router).
//!
//! `Dialect` says where a fix goes; `command` parses one iptables command into a small
//! structure and renders it; `localize` rewrites every backticked iptables command of a
//! fix text. Pure text in, text out: no system access, no judging. A command this module
//! cannot translate is left as it was rather than guessed.

use std::collections::BTreeMap;

/// The firewall language fixes are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Iptables,
    Nft,
}

/// Where a fix goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialect {
    pub lang: Lang,
    /// IPv6 traffic: `ip6tables`, `ip6 daddr`, `ipv6-icmp`.
    pub v6: bool,
    /// nft: hook (`input`, `forward`, `prerouting`, …) → (family, table, chain) of the
    /// admin's base chain on that hook, so a rule lands where their traffic is filtered.
    pub nft_chains: BTreeMap<String, (String, String, String)>,
    /// The filter chain the traffic takes (`INPUT` or `FORWARD`), when known: a fix aimed
    /// at INPUT or FORWARD is moved there.
    pub chain: Option<String>,
}

impl Dialect {
    pub fn iptables(v6: bool) -> Dialect {
        Dialect {
            lang: Lang::Iptables,
            v6,
            nft_chains: BTreeMap::new(),
            chain: None,
        }
    }

    /// The same dialect for another family and chain.
    pub fn with(&self, v6: bool, chain: Option<&str>) -> Dialect {
        Dialect {
            v6,
            chain: chain.map(str::to_string).or_else(|| self.chain.clone()),
            ..self.clone()
        }
    }

    fn ipt(&self) -> &'static str {
        if self.v6 {
            "ip6tables"
        } else {
            "iptables"
        }
    }

    fn ipfam(&self) -> &'static str {
        if self.v6 {
            "ip6"
        } else {
            "ip"
        }
    }
}

/// Rewrite every backticked `iptables …` / `ip6tables …` command in `text` for `d`;
/// everything else is kept.
pub fn localize(text: &str, d: &Dialect) -> String {
    let mut out = String::with_capacity(text.len() + 32);
    let mut parts = text.split('`');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    for (i, part) in parts.enumerate() {
        out.push('`');
        // Odd segments (1st, 3rd, … after a backtick) are inside backticks.
        if i % 2 == 0 {
            out.push_str(&command(part, d).unwrap_or_else(|| part.to_string()));
        } else {
            out.push_str(part);
        }
    }
    out
}

/// One iptables command in `d`'s language; `None` when `cmd` is not an iptables command
/// or uses something this translator does not know.
pub fn command(cmd: &str, d: &Dialect) -> Option<String> {
    let r = Ipt::parse(cmd)?;
    match d.lang {
        Lang::Iptables => Some(r.iptables(d)),
        Lang::Nft => r.nft(d),
    }
}

/// A parsed iptables command: `[ip6]iptables [-t T] -A|-I CHAIN MATCHES -j TARGET [OPTS]`.
#[derive(Debug)]
struct Ipt<'a> {
    table: &'a str,
    insert: bool,
    chain: &'a str,
    matches: Vec<&'a str>,
    target: &'a str,
    target_opts: Vec<&'a str>,
}

impl<'a> Ipt<'a> {
    fn parse(cmd: &'a str) -> Option<Ipt<'a>> {
        let mut w = cmd.split_whitespace();
        if !matches!(w.next()?, "iptables" | "ip6tables") {
            return None;
        }
        let mut r = Ipt {
            table: "filter",
            insert: false,
            chain: "",
            matches: Vec::new(),
            target: "",
            target_opts: Vec::new(),
        };
        let words: Vec<&str> = w.collect();
        let mut i = 0;
        while i < words.len() {
            match words[i] {
                "-t" => {
                    r.table = words.get(i + 1)?;
                    i += 2;
                }
                "-A" | "-I" => {
                    r.insert = words[i] == "-I";
                    r.chain = words.get(i + 1)?;
                    i += 2;
                }
                "-j" => {
                    r.target = words.get(i + 1)?;
                    r.target_opts = words.get(i + 2..).unwrap_or_default().to_vec();
                    break;
                }
                x => {
                    r.matches.push(x);
                    i += 1;
                }
            }
        }
        (!r.chain.is_empty() && !r.target.is_empty()).then_some(r)
    }

    /// The chain after moving INPUT/FORWARD fixes to the chain the traffic takes.
    fn chain(&self, d: &Dialect) -> String {
        match (&d.chain, self.table, self.chain) {
            (Some(c), "filter", "INPUT" | "FORWARD") => c.clone(),
            _ => self.chain.to_string(),
        }
    }

    fn iptables(&self, d: &Dialect) -> String {
        let mut s = d.ipt().to_string();
        if self.table != "filter" {
            s.push_str(" -t ");
            s.push_str(self.table);
        }
        s.push_str(if self.insert { " -I " } else { " -A " });
        s.push_str(&self.chain(d));
        for m in &self.matches {
            s.push(' ');
            // ICMP's name differs by family; addresses are the admin's placeholders.
            s.push_str(match *m {
                "icmp" if d.v6 => "ipv6-icmp",
                "ipv6-icmp" if !d.v6 => "icmp",
                m => m,
            });
        }
        s.push_str(" -j ");
        s.push_str(self.target);
        for o in &self.target_opts {
            s.push(' ');
            s.push_str(o);
        }
        s
    }

    fn nft(&self, d: &Dialect) -> Option<String> {
        let chain = self.chain(d);
        let hook = chain.to_ascii_lowercase();
        let (family, table, nchain) = d.nft_chains.get(&hook).cloned().unwrap_or_else(|| {
            let t = if self.table == "raw" { "raw" } else { "filter" };
            ("inet".into(), t.into(), hook.clone())
        });
        let ipfam = match family.as_str() {
            "ip" | "ip6" => family.clone(),
            _ => d.ipfam().to_string(),
        };
        let mut expr: Vec<String> = Vec::new();
        let mut proto: Option<String> = None;
        let mut proto_used = false;
        let m = &self.matches;
        let mut i = 0;
        let arg = |i: usize| m.get(i + 1).copied();
        while i < m.len() {
            match m[i] {
                "-m" => {
                    match arg(i)? {
                        "conntrack" | "state" | "tcp" | "udp" | "helper" | "comment"
                        | "rpfilter" => {}
                        _ => return None,
                    }
                    i += 2;
                }
                "--ctstate" | "--state" => {
                    expr.push(format!("ct state {}", arg(i)?.to_ascii_lowercase()));
                    i += 2;
                }
                "--helper" => {
                    expr.push(format!("ct helper \"{}\"", arg(i)?));
                    i += 2;
                }
                "-d" | "-s" => {
                    let dir = if m[i] == "-d" { "daddr" } else { "saddr" };
                    expr.push(format!("{ipfam} {dir} {}", arg(i)?));
                    i += 2;
                }
                "-p" => {
                    let p = match arg(i)? {
                        "icmp" | "ipv6-icmp" if d.v6 => "ipv6-icmp",
                        "icmp" | "ipv6-icmp" => "icmp",
                        p => p,
                    };
                    proto = Some(p.to_string());
                    i += 2;
                }
                "--dport" | "--sport" => {
                    let p = proto.clone()?;
                    let dir = if m[i] == "--dport" { "dport" } else { "sport" };
                    expr.push(format!("{p} {dir} {}", port_range(arg(i)?)));
                    proto_used = true;
                    i += 2;
                }
                "-i" | "-o" => {
                    let k = if m[i] == "-i" { "iifname" } else { "oifname" };
                    expr.push(format!("{k} {}", quoted(arg(i)?)));
                    i += 2;
                }
                "--invert" => {
                    expr.push("fib saddr . iif oif missing".into());
                    i += 1;
                }
                "--comment" => {
                    expr.push(format!("comment {}", quoted(arg(i)?)));
                    i += 2;
                }
                _ => return None,
            }
        }
        if let (Some(p), false) = (&proto, proto_used) {
            expr.insert(0, format!("meta l4proto {p}"));
        }
        // `comment` must come last in nft.
        expr.sort_by_key(|e| e.starts_with("comment "));
        let verdict = match (self.target, self.target_opts.as_slice()) {
            ("ACCEPT", []) => "accept".to_string(),
            ("DROP", []) => "drop".to_string(),
            ("REJECT", []) => "reject".to_string(),
            ("CT", ["--helper", h]) => {
                // nft assigns helpers through a named ct helper object.
                let p = proto.clone().unwrap_or_else(|| "tcp".into());
                let obj = format!("{h}-{p}");
                let pre = format!(
                    "nft add ct helper {family} {table} {obj} '{{ type \"{h}\" protocol {p}; }}'; "
                );
                let mut s = pre;
                s.push_str(&rule(self.insert, &family, &table, &nchain, &expr));
                s.push_str(&format!(" ct helper set \"{obj}\""));
                return Some(s);
            }
            _ => return None,
        };
        let mut s = rule(self.insert, &family, &table, &nchain, &expr);
        let comment = expr.last().filter(|e| e.starts_with("comment "));
        match comment {
            Some(c) => {
                let at = s.len() - c.len();
                s.insert_str(at, &format!("{verdict} "));
            }
            None => {
                s.push(' ');
                s.push_str(&verdict);
            }
        }
        Some(s)
    }
}

fn rule(insert: bool, family: &str, table: &str, chain: &str, expr: &[String]) -> String {
    let mut s = format!(
        "nft {} rule {family} {table} {chain}",
        if insert { "insert" } else { "add" }
    );
    for e in expr {
        s.push(' ');
        s.push_str(e);
    }
    s
}

/// iptables `1024:`, `:1023`, `20:21`, `21` → nft `1024-65535`, `0-1023`, `20-21`, `21`.
fn port_range(p: &str) -> String {
    match p.split_once(':') {
        Some((a, b)) => format!(
            "{}-{}",
            if a.is_empty() { "0" } else { a },
            if b.is_empty() { "65535" } else { b }
        ),
        None => p.to_string(),
    }
}

/// An interface name or comment for nft: quoted, unless it is an nft `$variable`.
fn quoted(s: &str) -> String {
    if s.starts_with('$') {
        s.to_string()
    } else {
        format!("\"{}\"", s.trim_matches('"'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nft(v6: bool) -> Dialect {
        let mut d = Dialect::iptables(v6);
        d.lang = Lang::Nft;
        d.nft_chains.insert(
            "input".into(),
            ("inet".into(), "fw".into(), "in_chain".into()),
        );
        d
    }

    #[test]
    fn iptables_follows_family_and_chain() {
        let c = "iptables -A FORWARD -m conntrack --ctstate RELATED -m helper --helper ftp -d $FTP_SERVER -p tcp --dport 1024: -j ACCEPT";
        assert_eq!(command(c, &Dialect::iptables(false)).unwrap(), c);
        let d = Dialect::iptables(true).with(true, Some("INPUT"));
        assert_eq!(
            command(c, &d).unwrap(),
            "ip6tables -A INPUT -m conntrack --ctstate RELATED -m helper --helper ftp -d $FTP_SERVER -p tcp --dport 1024: -j ACCEPT"
        );
        // raw PREROUTING stays where it is; ICMP is renamed for IPv6.
        assert_eq!(
            command(
                "iptables -t raw -A PREROUTING -m rpfilter --invert -j DROP",
                &d
            )
            .unwrap(),
            "ip6tables -t raw -A PREROUTING -m rpfilter --invert -j DROP"
        );
        assert_eq!(
            command(
                "iptables -A INPUT -p icmp -m conntrack --ctstate RELATED -j ACCEPT",
                &d
            )
            .unwrap(),
            "ip6tables -A INPUT -p ipv6-icmp -m conntrack --ctstate RELATED -j ACCEPT"
        );
    }

    #[test]
    fn nft_rules_land_in_the_admins_chain() {
        let c = "iptables -A INPUT -m conntrack --ctstate RELATED -m helper --helper ftp -d $FTP_SERVER -p tcp --dport 1024: -j ACCEPT";
        assert_eq!(
            command(c, &nft(false)).unwrap(),
            "nft add rule inet fw in_chain ct state related ct helper \"ftp\" ip daddr $FTP_SERVER tcp dport 1024-65535 accept"
        );
        assert_eq!(
            command(c, &nft(true)).unwrap(),
            "nft add rule inet fw in_chain ct state related ct helper \"ftp\" ip6 daddr $FTP_SERVER tcp dport 1024-65535 accept"
        );
        assert_eq!(
            command(
                "iptables -I INPUT -p tcp --dport 3306 -m conntrack --ctstate RELATED -j DROP",
                &nft(false)
            )
            .unwrap(),
            "nft insert rule inet fw in_chain tcp dport 3306 ct state related drop"
        );
        assert_eq!(
            command("iptables -A FORWARD -m conntrack --ctstate RELATED -m helper --helper pptp -d $PPTP_SERVER -p gre -j ACCEPT", &nft(false)).unwrap(),
            "nft add rule inet filter forward meta l4proto gre ct state related ct helper \"pptp\" ip daddr $PPTP_SERVER accept"
        );
        assert_eq!(
            command(
                "iptables -t raw -A PREROUTING -m rpfilter --invert -j DROP",
                &nft(false)
            )
            .unwrap(),
            "nft add rule inet raw prerouting fib saddr . iif oif missing drop"
        );
        assert_eq!(
            command("iptables -t raw -A PREROUTING -p tcp --dport 2121 -d $SERVER -j CT --helper ftp", &nft(false)).unwrap(),
            "nft add ct helper inet raw ftp-tcp '{ type \"ftp\" protocol tcp; }'; nft add rule inet raw prerouting tcp dport 2121 ip daddr $SERVER ct helper set \"ftp-tcp\""
        );
        // What cannot be translated is left alone, never guessed.
        assert_eq!(
            command("iptables -A INPUT -m recent --set -j ACCEPT", &nft(false)),
            None
        );
        assert_eq!(command("nft list ruleset", &nft(false)), None);
    }

    #[test]
    fn localize_rewrites_only_backticked_commands() {
        let t = "narrow: `iptables -A INPUT -p udp -j ACCEPT`; keep `-m conntrack --ctstate ESTABLISHED` as is";
        assert_eq!(
            localize(t, &Dialect::iptables(true)),
            "narrow: `ip6tables -A INPUT -p udp -j ACCEPT`; keep `-m conntrack --ctstate ESTABLISHED` as is"
        );
        assert_eq!(localize("no commands", &nft(false)), "no commands");
        assert_eq!(localize("odd `iptables", &nft(false)), "odd `iptables");
    }
}
