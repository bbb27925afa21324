//! Plain-text formatting of model records for the TUI: endpoints, tuples with wildcards,
//! NAT as `pre → post`, durations, byte counts, status letters.
//!
//! Pure functions over model types so every screen (and the tests) formats the same way,
//! and `fit`, the one way text is shortened to a width: addresses elide their middle,
//! numbers are never cut. It must not style (see `theme`) or decide layout (see `view`).

use std::net::IpAddr;
use std::time::Duration;

use crate::model::flow::status;
use crate::model::tuple::{addr, proto, Endpoint};
use crate::model::{Expectation, Flow, Tuple};

/// The arrow used between source and destination everywhere in the TUI.
pub const ARROW: &str = "→";

/// Protocol name as conntrack(8) prints it, or the number.
pub fn proto_name(p: u8) -> String {
    proto::name(p)
        .map(str::to_owned)
        .unwrap_or_else(|| p.to_string())
}

/// `src:sport → dst:dport`, or for ICMP `src → dst type/code id`.
pub fn conn(t: &Tuple) -> String {
    if t.is_icmp() {
        format!(
            "{} {ARROW} {} t{}/c{} id {}",
            t.src_ip(),
            t.dst_ip(),
            t.icmp_type(),
            t.icmp_code(),
            t.icmp_id()
        )
    } else {
        format!(
            "{} {ARROW} {}",
            Endpoint(t.src_ip(), t.sport),
            Endpoint(t.dst_ip(), t.dport)
        )
    }
}

/// A master connection in few characters: `src→dst:dport` (the source port is the
/// least telling part of a control connection).
pub fn conn_short(t: &Tuple) -> String {
    if t.is_icmp() {
        return conn(t);
    }
    let src = match t.src_ip() {
        IpAddr::V6(a) => format!("[{a}]"),
        a => a.to_string(),
    };
    format!("{src}{ARROW}{}", Endpoint(t.dst_ip(), t.dport))
}

/// NAT of a flow shown once, as `pre → post` for each rewritten endpoint, or `None` when
/// the reply tuple is the plain inverse of the original.
///
/// DNAT: the reply comes *from* the real destination, so `reply.src` differs from
/// `orig.dst`. SNAT: the reply goes *to* the translated source, so `reply.dst` differs
/// from `orig.src` (the kernel's `nf_nat_setup_info` rewrites exactly these).
pub fn nat(f: &Flow) -> Option<String> {
    if !f.is_nat() {
        return None;
    }
    let o = f.orig;
    let r = f.reply();
    let icmp = o.is_icmp();
    let ep = |ip: IpAddr, port: u16| {
        if icmp {
            ip.to_string()
        } else {
            Endpoint(ip, port).to_string()
        }
    };
    let mut parts = Vec::new();
    if r.src != o.dst || (!icmp && r.sport != o.dport) {
        parts.push(format!(
            "dst {} {ARROW} {}",
            ep(o.dst_ip(), o.dport),
            ep(r.src_ip(), r.sport)
        ));
    }
    if r.dst != o.src || (!icmp && r.dport != o.sport) {
        parts.push(format!(
            "src {} {ARROW} {}",
            ep(o.src_ip(), o.sport),
            ep(r.dst_ip(), r.dport)
        ));
    }
    if parts.is_empty() {
        // The reply differs only in a way neither rule covers (odd ICMP types): say so.
        parts.push(format!("reply {}", conn(&r)));
    }
    Some(parts.join(", "))
}

/// The original connection with NAT folded in, for layouts without the NAT column:
/// `src → dst ⇒ real-dst` (DNAT), `src ⇒ new-src → dst` (SNAT). Each rewritten endpoint is
/// shown once, as pre ⇒ post.
pub fn conn_nat(f: &Flow) -> String {
    let o = f.orig;
    if !f.is_nat() || o.is_icmp() {
        return conn(&o);
    }
    let r = f.reply();
    let src = Endpoint(o.src_ip(), o.sport).to_string();
    let dst = Endpoint(o.dst_ip(), o.dport).to_string();
    let snat = r.dst != o.src || r.dport != o.sport;
    let dnat = r.src != o.dst || r.sport != o.dport;
    let mut out = src;
    if snat {
        out.push_str(&format!(" ⇒ {}", Endpoint(r.dst_ip(), r.dport)));
    }
    out.push_str(&format!(" {ARROW} {dst}"));
    if dnat {
        out.push_str(&format!(" ⇒ {}", Endpoint(r.src_ip(), r.sport)));
    }
    out
}

/// Address under a mask: the address, `any` when fully masked out, or `addr/len` for a
/// prefix mask (the kernel allows any mask; a non-prefix one is shown as `addr&mask`).
fn masked_addr(t: &Tuple, bytes: &[u8; 16], mask: &[u8; 16]) -> String {
    let width = match t.family {
        crate::model::Family::Ipv4 => 4,
        crate::model::Family::Ipv6 => 16,
    };
    let m = &mask[..width];
    if m.iter().all(|b| *b == 0) {
        return "any".into();
    }
    let ip = addr(t.family, bytes);
    if m.iter().all(|b| *b == 0xff) {
        return ip.to_string();
    }
    let ones: u32 = m.iter().map(|b| b.count_ones()).sum();
    let leading = m
        .iter()
        .try_fold(0u32, |acc, b| {
            if *b == 0xff {
                Ok(acc + 8)
            } else {
                Err(acc + b.leading_ones())
            }
        })
        .unwrap_or_else(|n| n);
    if ones == leading {
        format!("{ip}/{ones}")
    } else {
        format!("{ip}&{}", addr(t.family, mask))
    }
}

/// The expected tuple with masked fields as wildcards, e.g. `10.0.0.2:any → 10.0.0.1:3306`.
pub fn expect_tuple(e: &Expectation) -> String {
    let t = &e.tuple;
    let src = masked_addr(t, &t.src, &e.mask.src);
    let dst = masked_addr(t, &t.dst, &e.mask.dst);
    let port = |v: u16, m: u16| -> String {
        match m {
            0 => "any".into(),
            0xffff => v.to_string(),
            m => format!("{v}/{m:#06x}"),
        }
    };
    let bracket = |a: String| {
        if t.family == crate::model::Family::Ipv6 && a != "any" {
            format!("[{a}]")
        } else {
            a
        }
    };
    if t.is_icmp() {
        format!("{src} {ARROW} {dst}")
    } else {
        format!(
            "{}:{} {ARROW} {}:{}",
            bracket(src),
            port(t.sport, e.mask.sport),
            bracket(dst),
            port(t.dport, e.mask.dport)
        )
    }
}

/// humantime-style duration, e.g. `4m 59s`.
pub fn dur(secs: u32) -> String {
    humantime::format_duration(Duration::from_secs(u64::from(secs))).to_string()
}

/// The two most significant units of `dur`, for narrow columns (`4days 23h`, `4m 59s`).
pub fn dur_short(secs: u32) -> String {
    let full = dur(secs);
    let mut parts = full.split(' ');
    match (parts.next(), parts.next()) {
        (Some(a), Some(b)) => format!("{a} {b}"),
        _ => full,
    }
}

/// A relative time in the past, e.g. `3s ago`.
pub fn ago(secs: u32) -> String {
    if secs == 0 {
        "now".into()
    } else {
        format!("{} ago", dur(secs))
    }
}

/// Compact byte count with a binary suffix (`512`, `4.6K`, `12.0M`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["", "K", "M", "G", "T", "P"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        n.to_string()
    } else {
        format!("{v:.1}{}", UNITS[i])
    }
}

/// One-letter status codes, in bit order, for the narrow flags column; the help overlay
/// prints the legend and the detail pane the full names.
pub const STATUS_LETTERS: [(u32, char, &str); 10] = [
    (status::EXPECTED, 'E', "EXPECTED (RELATED)"),
    (status::SEEN_REPLY, 'R', "SEEN_REPLY"),
    (status::ASSURED, 'A', "ASSURED"),
    (status::CONFIRMED, 'C', "CONFIRMED"),
    (status::SRC_NAT, 'S', "SRC_NAT"),
    (status::DST_NAT, 'D', "DST_NAT"),
    (status::DYING, 'X', "DYING"),
    (status::FIXED_TIMEOUT, 'F', "FIXED_TIMEOUT"),
    (status::HELPER, 'H', "HELPER"),
    (status::OFFLOAD, 'O', "OFFLOAD"),
];

/// The status bits as letters, `-` for each unset one, so columns line up.
pub fn status_letters(bits: u32) -> String {
    STATUS_LETTERS
        .iter()
        .map(|(b, c, _)| if bits & b != 0 { *c } else { '-' })
        .collect()
}

/// Total packets and bytes of both directions, when accounting is on.
pub fn counters(f: &Flow) -> Option<String> {
    let c = f.extra.as_ref()?.counters?;
    Some(format!(
        "{}p {}B",
        c[0].packets + c[1].packets,
        bytes(c[0].bytes + c[1].bytes)
    ))
}

/// Display width of `s` in cells (the TUI's text is single-width: ASCII, arrows, `…`).
pub fn width(s: &str) -> usize {
    s.chars().count()
}

/// The shortest an address becomes when elided: its first and last character around `…`.
const ADDR_MIN: usize = 3;

/// One token of a cell, by how it may shrink. Numbers are never cut: a cut port reads as
/// another valid port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    /// Spaces and arrows between words: kept as they are.
    Gap(&'a str),
    /// A word (a number, a name, a state): whole or absent.
    Word(&'a str),
    /// A word holding an address, `pre` + `addr` + `post` (`[`, `fd00::1`, `]:3306`): the
    /// address may elide its middle (`fd00:…:1`), `pre` and `post` (the `:port`) stay.
    Addr {
        pre: &'a str,
        addr: &'a str,
        post: &'a str,
    },
}

impl Token<'_> {
    fn natural(&self) -> usize {
        match self {
            Token::Gap(s) | Token::Word(s) => width(s),
            Token::Addr { pre, addr, post } => width(pre) + addr.len() + width(post),
        }
    }
}

/// Whether `c` separates words: white space and the TUI's arrows.
fn is_gap(c: char) -> bool {
    c.is_whitespace() || matches!(c, '→' | '⇒')
}

/// The address inside a word, if it holds one: `[v6]…`, or a leading v4/v6 address
/// (`10.0.0.1:80`, `fd00::1`). Anything that does not parse as an address is a plain word.
fn addr_token(w: &str) -> Option<Token<'_>> {
    if let Some(inner) = w.strip_prefix('[') {
        let end = inner.find(']')?;
        // A masked address keeps its `/len` with the port.
        let a = inner[..end].split(['/', '&']).next()?;
        a.parse::<std::net::Ipv6Addr>().ok()?;
        return Some(Token::Addr {
            pre: &w[..1],
            addr: a,
            post: &inner[a.len()..],
        });
    }
    let run = w
        .find(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':'))
        .unwrap_or(w.len());
    let cand = &w[..run];
    // IPv4 carries its port after a colon; a bare IPv6 address carries none.
    let a = if cand.contains('.') {
        cand.split(':').next()?
    } else {
        cand
    };
    a.parse::<IpAddr>().ok()?;
    if a.len() <= ADDR_MIN {
        return None;
    }
    Some(Token::Addr {
        pre: "",
        addr: a,
        post: &w[a.len()..],
    })
}

fn tokens(s: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let gap = rest.find(|c: char| !is_gap(c)).unwrap_or(rest.len());
        if gap > 0 {
            out.push(Token::Gap(&rest[..gap]));
            rest = &rest[gap..];
            continue;
        }
        let end = rest.find(is_gap).unwrap_or(rest.len());
        let w = &rest[..end];
        out.push(addr_token(w).unwrap_or(Token::Word(w)));
        rest = &rest[end..];
    }
    out
}

/// `addr` in `k` characters: head and tail around `…`.
fn elide(addr: &str, k: usize) -> String {
    if k >= addr.len() {
        return addr.to_owned();
    }
    let keep = k.saturating_sub(1);
    let head = keep.div_ceil(2);
    let tail = keep - head;
    format!("{}…{}", &addr[..head], &addr[addr.len() - tail..])
}

/// The narrowest `s` can be drawn without losing a word: every address elided to its
/// shortest, every number and name whole. A column narrower than this drops words.
pub fn min_width(s: &str) -> usize {
    tokens(s)
        .iter()
        .map(|t| match t {
            Token::Addr { pre, addr, post } => width(pre) + addr.len().min(ADDR_MIN) + width(post),
            t => t.natural(),
        })
        .sum()
}

/// `s` in at most `width` cells, never cutting a number or a name: first the longest
/// addresses elide their middle (`fd00:…:1`, keeping `:port`), down to `ADDR_MIN`; if that
/// is not enough, whole words are dropped from the end and `…` marks the loss.
///
/// This is the one place the TUI shortens text, so every screen keeps the rule that a
/// `s` broken into lines of at most `cells` cells at spaces, words kept whole (a word
/// wider than `cells` stands alone on its line), so a caller knows the height it needs.
pub fn wrap(s: &str, cells: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut cur = String::new();
    for word in s.split(' ') {
        if !cur.is_empty() && width(&cur) + 1 + width(word) > cells.max(1) {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    lines.push(cur);
    lines
}

/// port, id, count or duration is printed whole or not at all.
pub fn fit(s: &str, width: usize) -> String {
    let natural = self::width(s);
    if natural <= width {
        return s.to_owned();
    }
    if min_width(s) > width {
        // Even every address elided is too wide: keep the longest run of whole tokens
        // from the start that fits with ` …` (the space keeps the mark off the last
        // number, which would read as cut), eliding only as much as that run needs.
        let toks = tokens(s);
        let mut end = s.len();
        for t in toks.iter().rev() {
            let len = match t {
                Token::Gap(x) | Token::Word(x) => x.len(),
                Token::Addr { pre, addr, post } => pre.len() + addr.len() + post.len(),
            };
            end -= len;
            let kept = s[..end].trim_end();
            if kept.is_empty() {
                break;
            }
            let cand = format!("{kept} …");
            if min_width(&cand) <= width {
                return fit(&cand, width);
            }
        }
        return if width == 0 {
            String::new()
        } else {
            "…".into()
        };
    }
    let toks = tokens(s);
    // Shrink the longest address by one, again and again (water-filling), so the
    // addresses of a row keep similar lengths.
    let mut lens: Vec<usize> = toks
        .iter()
        .map(|t| match t {
            Token::Addr { addr, .. } => addr.len(),
            _ => 0,
        })
        .collect();
    let mut excess = natural - width;
    while excess > 0 {
        let Some((i, _)) = lens
            .iter()
            .enumerate()
            .filter(|(_, l)| **l > ADDR_MIN)
            .max_by_key(|(i, l)| (**l, std::cmp::Reverse(*i)))
        else {
            break;
        };
        lens[i] -= 1;
        excess -= 1;
    }
    toks.iter()
        .zip(&lens)
        .map(|(t, k)| match t {
            Token::Gap(s) | Token::Word(s) => (*s).to_owned(),
            Token::Addr { pre, addr, post } => format!("{pre}{}{post}", elide(addr, *k)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_keeps_words_whole() {
        assert_eq!(wrap("a bb ccc", 4), vec!["a bb", "ccc"]);
        assert_eq!(wrap("toolongword x", 4), vec!["toolongword", "x"]);
        assert_eq!(wrap("", 4), vec![""]);
    }
    use crate::model::Family;

    fn v4(a: [u8; 4]) -> [u8; 16] {
        let mut o = [0; 16];
        o[..4].copy_from_slice(&a);
        o
    }

    #[test]
    fn durations_read_like_humantime() {
        assert_eq!(dur(299), "4m 59s");
        assert_eq!(dur(0), "0s");
        assert_eq!(ago(3), "3s ago");
        assert_eq!(dur_short(431_999), "4days 23h");
        assert_eq!(dur_short(299), "4m 59s");
    }

    #[test]
    fn masked_fields_are_wildcards() {
        let t = Tuple {
            family: Family::Ipv4,
            proto: proto::TCP,
            src: v4([10, 0, 0, 2]),
            dst: v4([10, 0, 0, 1]),
            sport: 0,
            dport: 3306,
        };
        let mut m = t;
        m.src = v4([255; 4]);
        m.dst = v4([255; 4]);
        m.sport = 0;
        m.dport = 0xffff;
        let mut e = Expectation::new(t, m, Tuple::default());
        assert_eq!(expect_tuple(&e), "10.0.0.2:any → 10.0.0.1:3306");
        e.mask.src = v4([0; 4]);
        assert_eq!(expect_tuple(&e), "any:any → 10.0.0.1:3306");
        e.mask.src = v4([255, 255, 255, 0]);
        assert_eq!(expect_tuple(&e), "10.0.0.2/24:any → 10.0.0.1:3306");
    }

    #[test]
    fn dnat_shows_pre_and_post_once() {
        let o = Tuple {
            family: Family::Ipv4,
            proto: proto::TCP,
            src: v4([192, 0, 2, 9]),
            dst: v4([203, 0, 113, 1]),
            sport: 40000,
            dport: 80,
        };
        let mut f = Flow::new(o);
        assert_eq!(nat(&f), None);
        let mut r = o.inverted();
        r.src = v4([10, 0, 0, 5]);
        r.sport = 8080;
        f.set_reply(r);
        assert_eq!(
            nat(&f).as_deref(),
            Some("dst 203.0.113.1:80 → 10.0.0.5:8080")
        );
        assert_eq!(
            conn_nat(&f),
            "192.0.2.9:40000 → 203.0.113.1:80 ⇒ 10.0.0.5:8080"
        );
    }

    #[test]
    fn letters_and_bytes() {
        assert_eq!(
            status_letters(status::SEEN_REPLY | status::ASSURED),
            "-RA-------"
        );
        assert_eq!(bytes(512), "512");
        assert_eq!(bytes(4710), "4.6K");
        assert_eq!(fit("abcdef", 4), "…");
        assert_eq!(fit("a bb", 3), "a …");
    }

    #[test]
    fn fitting_elides_addresses_and_keeps_numbers_whole() {
        let s = "10.213.6.2:36252 → 10.213.6.1:50040";
        assert_eq!(fit(s, 80), s);
        assert_eq!(fit(s, 31), "10.2…6.2:36252 → 10.2…6.1:50040");
        assert_eq!(fit(s, 23), "10…2:36252 → 10…1:50040");
        assert_eq!(fit(s, 21), "1…2:36252 → 1…1:50040");
        assert_eq!(min_width(s), 21);
        // Narrower than every address elided: whole words are dropped, never digits.
        assert_eq!(fit(s, 12), "10…2:36252 …");
        assert_eq!(fit(s, 11), "1…2:36252 …");
        assert_eq!(fit(s, 10), "…");
        let tree = "└─ RELATED tcp 10.213.4.2:40002 → 10.213.4.1:50000 ESTABLISHED";
        assert_eq!(fit(tree, 40), "└─ RELATED tcp 10…2:40002 → 10…1:50000 …");
        let v6 = "[fd00:213:6::1]:33090 → [fd00:213:6::2]:3306";
        assert_eq!(fit(v6, 36), "[fd00…6::1]:33090 → [fd00…6::2]:3306");
        assert_eq!(fit("t8/c0 id 4242", 10), "t8/c0 id …");
        assert_eq!(fit("netbios-ns", 6), "…");
        assert_eq!(fit("4days 23h", 8), "4days …");
        // Times are not addresses; bare IPv6 (ICMP) is.
        assert_eq!(
            fit("fd00:213:6::1 → fd00:213:6::2 t128/c0 id 7", 30),
            "fd0…::1 → fd0…::2 t128/c0 id 7"
        );
    }
}
