//! Text lines akin to conntrack(8): `conntrack -L` for flows, `conntrack -L expect` for
//! expectations, `conntrack -E` for events, so an admin's eyes and grep habits carry over.
//! Rendered from the same views as JSON. It must not decide what is listed.
//!
//! Layout follows libnetfilter_conntrack's `__snprintf_conntrack_default`: protocol name
//! padded to 8 and number, timeout, state, original tuple, `[UNREPLIED]`, reply tuple,
//! `[ASSURED]`, mark, secctx, zone, helper, use, id, labels. Counters follow each tuple when
//! present. A protocol without ports (igmp, esp, 40, …) prints only addresses.

//!
//! Strings from outside (helper names, security contexts, expectation functions) go through
//! `escape::Escaped`: this is a terminal, and they are data (JSON keeps them exact).

use super::view::{EntryView, ExpectView, FlowView, ResyncLine, TupleView, WatchLine};
use crate::escape::Escaped;
use std::fmt::Write;

fn tuple(out: &mut String, t: &TupleView, prefix: &str) {
    let _ = write!(out, "{prefix}src={} {prefix}dst={} ", t.src, t.dst);
    if let (Some(ty), Some(code), Some(id)) = (t.icmp_type, t.code, t.icmp_id) {
        let _ = write!(out, "type={ty} code={code} id={id} ");
    } else if let (Some(s), Some(d)) = (t.srckey, t.dstkey) {
        let _ = write!(out, "srckey={s:#x} dstkey={d:#x} ");
    } else if let (Some(s), Some(d)) = (t.sport, t.dport) {
        let _ = write!(out, "sport={s} dport={d} ");
    }
}

/// One `conntrack -L`-style line (no trailing newline).
pub fn flow(v: &FlowView) -> String {
    let mut s = String::with_capacity(200);
    let _ = write!(s, "{:<8} {} {} ", v.proto.name(), v.proto.0, v.timeout);
    if let Some(st) = v.state {
        let _ = write!(s, "{st} ");
    }
    tuple(&mut s, &v.orig, "");
    if let Some(z) = v.zone_orig {
        let _ = write!(s, "zone-orig={z} ");
    }
    if let Some(c) = &v.counters {
        let _ = write!(s, "packets={} bytes={} ", c.orig.packets, c.orig.bytes);
    }
    let seen_reply = v.status.0 & crate::model::flow::status::SEEN_REPLY != 0;
    if !seen_reply {
        s.push_str("[UNREPLIED] ");
    }
    tuple(&mut s, &v.reply, "");
    if let Some(z) = v.zone_reply {
        let _ = write!(s, "zone-reply={z} ");
    }
    if let Some(c) = &v.counters {
        let _ = write!(s, "packets={} bytes={} ", c.reply.packets, c.reply.bytes);
    }
    // One tag, the strongest, as `__snprintf_status_assured` prints it: an offloaded flow
    // is also ASSURED, and conntrack(8) says only [OFFLOAD] (or [HW_OFFLOAD]).
    use crate::model::flow::status as st;
    if let Some((_, tag)) = [
        (st::HW_OFFLOAD, "[HW_OFFLOAD] "),
        (st::OFFLOAD, "[OFFLOAD] "),
        (st::ASSURED, "[ASSURED] "),
    ]
    .into_iter()
    .find(|(bit, _)| v.status.0 & bit != 0)
    {
        s.push_str(tag);
    }
    let _ = write!(s, "mark={} ", v.mark);
    if let Some(c) = &v.secctx {
        let _ = write!(s, "secctx={} ", Escaped(c));
    }
    if v.zone != 0 {
        let _ = write!(s, "zone={} ", v.zone);
    }
    if let Some(h) = v.helper {
        let _ = write!(s, "helper={} ", Escaped(h));
    }
    if let Some(m) = &v.master {
        s.push_str("master: ");
        tuple(&mut s, m, "");
    }
    let _ = write!(s, "use={} id={}", v.use_count, v.id);
    // Last, as conntrack -o labels prints them: names from connlabel.conf; a bit the map
    // does not name shows as its number (conntrack(8) would hide it).
    // Names come from a file on the host: escaped like every outside string.
    for (i, l) in v.labels.named().enumerate() {
        let l = l.to_string();
        let _ = write!(
            s,
            "{}{}",
            if i == 0 { " labels=" } else { "," },
            Escaped(&l)
        );
    }
    s
}

/// One `conntrack -L expect`-style line (no trailing newline).
pub fn expectation(v: &ExpectView) -> String {
    let mut s = String::with_capacity(240);
    let _ = write!(s, "{} proto={} ", v.timeout, v.proto.0);
    tuple(&mut s, &v.tuple, "");
    tuple(&mut s, &v.mask, "mask-");
    tuple(&mut s, &v.master, "master-");
    if v.zone != 0 {
        let _ = write!(s, "zone={} ", v.zone);
    }
    let flags: Vec<&str> = crate::model::expect::flags::names(v.flags.0).collect();
    if !flags.is_empty() {
        let _ = write!(s, "{} ", flags.join(","));
    }
    let _ = write!(s, "class={}", v.class);
    if let Some(h) = v.helper {
        let _ = write!(s, " helper={}", Escaped(h));
    }
    if let Some(n) = &v.nat {
        let dir = if n.dir.0 == 0 { "original" } else { "reply" };
        let _ = write!(s, " nat-dir={dir} ");
        tuple(&mut s, &n.tuple, "nat-");
        s.pop();
    }
    if let Some(f) = &v.func {
        let _ = write!(s, " fn={}", Escaped(f));
    }
    s
}

/// Either kind of entry.
pub fn entry(v: &EntryView) -> String {
    match v {
        EntryView::Flow(f) => flow(f),
        EntryView::Expect(e) => expectation(e),
    }
}

/// A `conntrack -E -o timestamp`-style event line, dated in RFC 3339:
/// `<time>     [NEW] tcp ...`, expectations marked `expect`; housekeeping as
/// `<time>   [SWEEP] remove (resync) tcp ...`.
pub fn watch(w: &WatchLine) -> String {
    let tag = format!("[{}]", w.event.to_ascii_uppercase());
    let body = entry(&w.entry);
    let mut s = format!("{} {tag:>9} ", w.stamp.time.rfc3339());
    if let Some(change) = w.change {
        let _ = write!(s, "{change} ({}) ", w.source);
    }
    if let EntryView::Expect(_) = w.entry {
        s.push_str("expect ");
    }
    s.push_str(&body);
    s
}

/// A resync marker line: `<time>  [RESYNC] begin reason=overrun tables=flows,expects`,
/// the end adding `added=N changed=N removed=N`.
pub fn resync(r: &ResyncLine) -> String {
    let mut s = format!(
        "{} {:>9} {} reason={} tables={}",
        r.stamp.time.rfc3339(),
        "[RESYNC]",
        r.phase,
        r.reason,
        r.tables.join(",")
    );
    for (k, v) in [
        ("added", r.added),
        ("changed", r.changed),
        ("removed", r.removed),
    ] {
        if let Some(v) = v {
            let _ = write!(s, " {k}={v}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{helper, Flow};

    /// A helper name and security context chosen by someone else reach a conntrack-style
    /// line escaped; the JSON view keeps them exact.
    #[test]
    fn outside_strings_are_escaped_in_lines_and_exact_in_json() {
        let mut f = Flow::new(Default::default());
        f.helper = helper::intern("h\x1b[2J");
        f.extra_mut().secctx = Some("ctx\u{202e}\x07".into());
        let v = FlowView::of(&f, 0);
        let line = flow(&v);
        assert!(!line.chars().any(crate::escape::is_unsafe), "{line:?}");
        assert!(line.contains(r"helper=h\x1b[2J "), "{line}");
        assert!(line.contains(r"secctx=ctx\u{202e}\x07 "), "{line}");
        let j = serde_json::to_value(&v).unwrap();
        assert_eq!(j["helper"], "h\x1b[2J");
        assert_eq!(j["secctx"], "ctx\u{202e}\x07");
    }
}
