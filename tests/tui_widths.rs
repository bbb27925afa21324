//! The width sweep: every screen of the lab recording (`assets/lab-helpers.ctrec`, plus a
//! few edge entries the lab does not produce: a `netbios-ns` flow, port 10080, a forged
//! IPv6 `:3306`, zone 65535 and a full mark) drawn into ratatui's TestBackend at every width
//! from 40 to 240 and several heights. Every number on screen must be one of the entries'
//! real values, whole: a port, id, zone, mark, count or duration is printed whole or not at
//! all, and an address is whole or elided in its middle with `…`.
//!
//! The legitimate values are collected from the store's records (and the risk assessor's
//! texts, and the help's static text), never from the screen itself.

mod tui_support;

use std::collections::HashSet;
use std::net::IpAddr;

use ctscope::decode::{self, Message};
use ctscope::engine::record::{Kind, Reader};
use ctscope::engine::{EngineEvent, EXPECTS, FLOWS};
use ctscope::model::flow::status;
use ctscope::model::helper::intern;
use ctscope::model::store::FlowKey;
use ctscope::model::tuple::proto;
use ctscope::model::{Counter, Flow, Store, Tuple};
use ctscope::model::{Event, Record};
use ctscope::tui::text;
use ctscope::tui::AppEvent;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use regex::Regex;
use tui_support::{opts, tuple, CountingAssessor, Harness};

/// Entries the recording lacks but a real table holds: each once broke a width.
fn edge_entries(now: u32) -> Vec<(Event, Record)> {
    let mut out = Vec::new();
    let mut add = |mut f: Flow| {
        f.status |= status::CONFIRMED | status::SEEN_REPLY;
        f.seen = now;
        out.push((Event::New, Record::Flow(f)));
    };
    // netbios-ns: the longest helper name the kernel has.
    let mut f = Flow::new(tuple(proto::UDP, "10.213.6.2", 137, "10.213.6.255", 137));
    f.helper = intern("netbios-ns");
    f.timeout = 3;
    add(f);
    // A five-digit port whose cut reads as another valid port (:100, :1008).
    let mut f = Flow::new(tuple(proto::TCP, "10.213.6.2", 51234, "10.213.6.1", 10080));
    f.state = 3;
    f.timeout = 431_999;
    f.zone = 65535;
    f.mark = 0xffff_ffff;
    f.extra_mut().counters = Some([
        Counter {
            packets: 123_456_789,
            bytes: 98_765_432_100,
        },
        Counter {
            packets: 1,
            bytes: 60,
        },
    ]);
    add(f);
    // A forged IPv6 RELATED flow toward the database, long addresses both sides.
    let master = tuple(
        proto::TCP,
        "fd00:213:6:0:1234:5678:9abc:def0",
        43490,
        "fd00:213:6::3",
        21,
    );
    let mut f = Flow::new(tuple(
        proto::TCP,
        "fd00:213:6::3",
        47000,
        "fd00:213:6:0:1234:5678:9abc:def0",
        3306,
    ));
    f.state = 3;
    f.status = status::EXPECTED;
    f.timeout = 431_999;
    f.extra_mut().master = Some(master);
    add(f);
    out
}

/// The lab recording replayed into the real store (as the engine would feed it), the
/// edge entries added at its end, and the app's clock at the recording's last frame.
fn replay(w: u16, h: u16) -> Harness {
    replay_file("assets/lab-helpers.ctrec", w, h, true)
}

/// `file` (under the crate) replayed into the real app, recency snapshots included.
fn replay_file(file: &str, w: u16, h: u16, edges: bool) -> Harness {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let mut r = Reader::open(&path).unwrap();
    let start = r.start();
    let mut hs = Harness::new(Store::new(), opts(), w, h);
    let mut last = 0u32;
    while let Some(f) = r.next_frame().unwrap() {
        last = (f.t / 1_000_000_000) as u32;
        hs.clock.0.set(last);
        let tables = f.bytes.first().copied().unwrap_or(FLOWS | EXPECTS);
        let (flows, expects) = (tables & FLOWS != 0, tables & EXPECTS != 0);
        let records = || {
            decode::messages(&f.bytes)
                .filter_map(|m| match m {
                    Ok(Message::Record { event, record }) => Some((event, record)),
                    _ => None,
                })
                .collect()
        };
        let ev = match f.kind {
            Kind::DumpBegin => EngineEvent::DumpBegin { flows, expects },
            Kind::DumpEnd => EngineEvent::DumpEnd { flows, expects },
            Kind::Overrun => EngineEvent::Overrun,
            Kind::DumpMsg | Kind::EventMsg => EngineEvent::Records(records()),
            Kind::RecheckMsg => EngineEvent::Rechecked(records()),
            Kind::Recent => match ctscope::recent::recorded::decode(&f.bytes) {
                Ok(s) => EngineEvent::Recent(Box::new(s)),
                Err(e) => EngineEvent::RecentDamaged(e),
            },
        };
        hs.app
            .handle(ctscope::tui::AppEvent::Engine(EngineEvent::Received(
                start + f.t,
            )));
        hs.app.handle(ctscope::tui::AppEvent::Engine(ev));
    }
    if edges {
        hs.app
            .handle(ctscope::tui::AppEvent::Engine(EngineEvent::Records(
                edge_entries(last),
            )));
    }
    hs.tick(0);
    hs
}

/// What may appear on screen: numbers, hex numbers, addresses, helper names.
#[derive(Default)]
struct Legit {
    nums: HashSet<u64>,
    hex: HashSet<String>,
    addrs: HashSet<String>,
    helpers: HashSet<String>,
}

impl Legit {
    fn digits_of(&mut self, s: &str) {
        let s = s.replace(',', "");
        for run in s.split(|c: char| !c.is_ascii_digit()) {
            if let Ok(n) = run.parse::<u64>() {
                self.nums.insert(n);
            }
        }
    }

    fn tuple(&mut self, t: &Tuple) {
        for ip in [t.src_ip(), t.dst_ip()] {
            self.addrs.insert(ip.to_string());
        }
        for n in [t.sport, t.dport] {
            self.nums.insert(n.into());
        }
        if t.is_icmp() {
            self.nums.extend([
                u64::from(t.icmp_type()),
                u64::from(t.icmp_code()),
                u64::from(t.icmp_id()),
            ]);
        }
    }

    fn secs(&mut self, s: u32) {
        self.digits_of(&text::dur(s));
        self.digits_of(&text::dur_short(s));
    }

    fn collect(store: &Store, now: u32) -> Legit {
        let mut l = Legit::default();
        let assessor = CountingAssessor::embedded().inner;
        let mut helpers: std::collections::HashMap<&str, (u64, u64)> = Default::default();
        let (mut related, mut masters) = (0u64, HashSet::new());
        store.flows().for_each(|f| {
            l.tuple(&f.orig);
            l.tuple(&f.reply());
            if let Some(m) = f.master() {
                l.tuple(m);
                masters.insert((f.zone, *m));
            }
            l.nums.extend::<[u64; 5]>([
                f.zone.into(),
                f.mark.into(),
                f.id.into(),
                f.use_count.into(),
                f.state.into(),
            ]);
            l.hex.insert(format!("{:#x}", f.mark));
            l.secs(f.remaining(now));
            l.secs(now.saturating_sub(f.seen));
            if let Some(e) = f.extra.as_deref() {
                l.nums.extend(e.zone_orig.map(u64::from));
                l.nums.extend(e.zone_reply.map(u64::from));
                l.nums
                    .extend((0..128).filter(|i| e.labels & (1u128 << i) != 0));
                if let Some(c) = e.counters {
                    for n in [c[0].packets, c[0].bytes, c[1].packets, c[1].bytes] {
                        l.nums.insert(n);
                    }
                    l.nums.insert(c[0].packets + c[1].packets);
                    l.digits_of(&text::bytes(c[0].bytes + c[1].bytes));
                }
                if let Some((start, stop)) = e.timestamp {
                    // Shown as RFC 3339 (checked whole) and relative to the app's wall
                    // clock (the harness clock's epoch plus store time).
                    let wall_ns = (1_763_701_200 + u64::from(now)) * 1_000_000_000;
                    for ns in [start, stop].into_iter().filter(|n| *n != 0) {
                        let ago = wall_ns.saturating_sub(ns) / 1_000_000_000;
                        l.secs(ago.min(u64::from(u32::MAX)) as u32);
                    }
                }
            }
            let hn = f.helper.name().unwrap_or("");
            if !hn.is_empty() {
                l.helpers.insert(hn.to_owned());
                helpers.entry(f.helper.name().unwrap()).or_default().0 += 1;
            }
            if f.is_related() {
                related += 1;
                if let Some(a) = assessor.flow(store, &FlowKey::of(f)) {
                    l.assessment(&a);
                }
            }
        });
        store.expectations().for_each(|e| {
            l.tuple(&e.tuple);
            l.tuple(&e.mask);
            l.tuple(&e.master);
            if let Some(n) = &e.nat {
                l.tuple(&n.tuple);
            }
            masters.insert((e.zone, e.master));
            l.nums
                .extend::<[u64; 4]>([e.class.into(), e.zone.into(), e.id.into(), e.flags.into()]);
            l.hex.insert(format!("{:#x}", e.flags));
            for m in [e.mask.sport, e.mask.dport] {
                l.hex.insert(format!("{m:#06x}"));
            }
            l.secs(e.remaining(now));
            l.secs(now.saturating_sub(e.seen));
            if let Some(h) = e.helper.name() {
                l.helpers.insert(h.to_owned());
                helpers.entry(h).or_default().1 += 1;
            }
        });
        for (_, a) in assessor.all_expectations(store) {
            l.assessment(&a);
        }
        // The header and tab line: counts of the store.
        let (flows, expects) = (store.flow_count() as u64, store.expect_count() as u64);
        l.nums
            .extend([flows, expects, related, masters.len() as u64]);
        for (fl, ex) in helpers.values() {
            l.nums.extend([*fl, *ex]);
        }
        let max = opts().conntrack_max.unwrap();
        l.nums.insert(max);
        l.nums
            .insert((flows as f64 / max as f64 * 100.0).round() as u64);
        // Resyncs and decode errors of this replay, tab numbers, family names
        // (ipv4/ipv6), the help's static text and its legend.
        l.nums.extend([0, 1, 2, 3, 4, 6]);
        // Every screen's digit on the tab line (`5 T │ 6 R` at 40 columns).
        l.nums.extend(1..=ctscope::tui::screens::all().len() as u64);
        for (title, rows) in ctscope::tui::keymap::help_sections(false, false) {
            l.digits_of(title);
            for (k, h) in rows {
                l.digits_of(&k);
                l.digits_of(h);
            }
        }
        l.digits_of("!3306 a finding (4) nf_conntrack_tcp_loose=0");
        l
    }

    /// What the Top screen (under every grouping) and the stale parts show: the groups'
    /// counts, shares and rates as the model computes them, formatted by the screen's
    /// own cell functions; the stale counts per helper and the stale plan's lines.
    fn pressure(&mut self, h: &mut Harness, now: u32) {
        use ctscope::tui::screens::top::{percent, rate};
        press(h, KeyCode::Char('5'));
        let by = ctscope::model::top::GroupBy::ALL.len();
        let max = opts().conntrack_max.unwrap();
        for _ in 0..by {
            h.draw();
            for r in h.app.top_rows() {
                self.nums.insert(r.flows);
                self.digits_of(&r.label);
                // A network (`10.0.0.0/24`) or NAT target (`dnat [fd00::1]:80`) is an
                // address of its own.
                for tok in r.label.split([' ', '/', '[', ']']) {
                    let addr = match tok.parse::<IpAddr>() {
                        Ok(_) => tok,
                        Err(_) => tok.rsplit_once(':').map_or(tok, |(a, _)| a),
                    };
                    if addr.parse::<IpAddr>().is_ok() {
                        self.addrs.insert(addr.to_owned());
                    }
                }
                self.digits_of(&r.filter.clone().unwrap_or_default());
                for s in [
                    percent(r.share_of(max)),
                    percent(r.unreplied_share()),
                    rate(r.new_per_s),
                    rate(r.destroyed_per_s),
                    text::bytes(r.bytes_per_s.unwrap_or(0.0).round() as u64),
                ] {
                    self.digits_of(&s);
                }
            }
            press(h, KeyCode::Char('b'));
        }
        reset(h);
        let guard = h.app.store.read();
        let judge =
            ctscope::model::stale::Staleness::new(&guard, Default::default(), Default::default());
        for (_, fl, ex) in judge.per_helper(now) {
            self.nums.extend([fl as u64, ex as u64]);
        }
        let ctx = ctscope::actions::Context {
            ssh: opts().ssh,
            ..Default::default()
        };
        let plan = ctscope::actions::Plan::stale(&judge, now, None, &ctx);
        self.digits_of(&plan.what);
        self.nums.extend([plan.flows as u64, plan.expects as u64]);
        for s in &plan.sample {
            self.digits_of(s);
        }
    }

    fn assessment(&mut self, a: &ctscope::risk::Assessment) {
        if let Some(r) = &a.row {
            self.digits_of(r);
        }
        if let Some(n) = &a.note {
            self.digits_of(n);
        }
        for f in &a.findings {
            self.digits_of(&f.detail);
            self.digits_of(&f.fix);
        }
    }

    /// A whole address, or one elided in its middle (`fd00:…:1`) whose two ends belong
    /// to the same real address.
    fn address_ok(&self, s: &str) -> bool {
        match s.split_once('…') {
            None => self.addrs.contains(s),
            Some((head, tail)) => self.addrs.iter().any(|a| {
                a.len() > head.len() + tail.len() && a.starts_with(head) && a.ends_with(tail)
            }),
        }
    }
}

/// Screen checks, compiled once.
struct Checker {
    stamp: Regex,
    bracketed: Regex,
    elided: Regex,
    v4: Regex,
    v6: Regex,
    hex: Regex,
    thousands: Regex,
    rate: Regex,
    digits: Regex,
    word: Regex,
    never: Regex,
}

impl Checker {
    fn new() -> Checker {
        Checker {
            stamp: Regex::new(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z").unwrap(),
            bracketed: Regex::new(r"\[([0-9A-Fa-f:.…]+)\]").unwrap(),
            elided: Regex::new(r"[0-9A-Fa-f:.]*…[0-9A-Fa-f:.]*").unwrap(),
            v4: Regex::new(r"\d{1,3}(\.\d{1,3}){3}").unwrap(),
            v6: Regex::new(r"[0-9A-Fa-f]{0,4}(:[0-9A-Fa-f]{0,4}){2,7}").unwrap(),
            hex: Regex::new(r"0x[0-9A-Fa-f]+").unwrap(),
            thousands: Regex::new(r"\d{1,3}(,\d{3})+").unwrap(),
            rate: Regex::new(r"\d+ ev/s").unwrap(),
            digits: Regex::new(r"\d+").unwrap(),
            word: Regex::new(r"[A-Za-z][A-Za-z0-9_.-]*").unwrap(),
            never: Regex::new(r"[^\s\S]").unwrap(),
        }
    }

    /// Every problem on one screen, as `line: token (why)`. Lines already found good
    /// (`seen`) are not looked at again: screens of neighbouring widths share most lines.
    fn check(&self, l: &Legit, screen: &str, seen: &mut HashSet<String>) -> Vec<String> {
        let mut bad = Vec::new();
        for line in screen.lines() {
            if seen.contains(line) {
                continue;
            }
            let before = bad.len();
            let mut rest = line.to_owned();
            let mut fault = |tok: &str, why: &str| bad.push(format!("{line}\n    '{tok}' {why}"));
            // Each pass looks at what earlier passes left, blanks what it judged (same byte
            // length, so offsets stay put), and says why a token is wrong.
            let pass =
                |rest: &mut String, re: &Regex, judge: &mut dyn FnMut(&str) -> Option<usize>| {
                    let found: Vec<(usize, String)> = re
                        .find_iter(rest)
                        .map(|m| (m.start(), m.as_str().to_owned()))
                        .collect();
                    for (at, tok) in found {
                        if let Some(len) = judge(&tok) {
                            rest.replace_range(at..at + len, &" ".repeat(len));
                        }
                    }
                };
            // Whole timestamps, the measured event rate: not entries' values.
            pass(&mut rest, &self.stamp, &mut |t| Some(t.len()));
            pass(&mut rest, &self.rate, &mut |t| Some(t.len()));
            pass(&mut rest, &self.bracketed, &mut |t| {
                let inner = &t[1..t.len() - 1];
                if !l.address_ok(inner) {
                    fault(inner, "is not an address, whole or elided");
                }
                Some(t.len())
            });
            let elided = if line.contains('…') {
                &self.elided
            } else {
                &self.never
            };
            pass(&mut rest, elided, &mut |tok| {
                if !tok
                    .chars()
                    .any(|c| c.is_ascii_digit() || c == ':' || c == '.')
                {
                    return None;
                }
                // An IPv4 address keeps its `:port` (or `:any`) after the elided middle.
                let addr = match tok.rsplit_once(':') {
                    Some((a, _)) if !l.address_ok(tok) && !a.ends_with(':') => a,
                    _ => tok,
                };
                if !l.address_ok(addr) {
                    fault(tok, "is not an address elided in its middle");
                }
                Some(addr.len())
            });
            for re in [&self.v4, &self.v6] {
                pass(&mut rest, re, &mut |m| {
                    let tok = m.trim_end_matches(':');
                    tok.parse::<IpAddr>().ok()?;
                    if !l.address_ok(tok) {
                        fault(tok, "is not a whole address");
                    }
                    Some(tok.len())
                });
            }
            pass(&mut rest, &self.hex, &mut |t| {
                if !l.hex.contains(t) {
                    fault(t, "is not a real value (hex)");
                }
                Some(t.len())
            });
            pass(&mut rest, &self.thousands, &mut |t| {
                let n: u64 = t.replace(',', "").parse().unwrap_or(u64::MAX);
                if !l.nums.contains(&n) {
                    fault(t, "is not a real count");
                }
                Some(t.len())
            });
            pass(&mut rest, &self.digits, &mut |t| {
                if !t.parse::<u64>().is_ok_and(|n| l.nums.contains(&n)) {
                    fault(t, "is not a real value, whole");
                }
                Some(t.len())
            });
            // Helper names whole: no strict prefix of a helper's name stands alone.
            for m in self.word.find_iter(line) {
                let w = m.as_str();
                let cut = l
                    .helpers
                    .iter()
                    .any(|h| h.len() > w.len() && w.len() >= 4 && h.starts_with(w));
                if cut && !l.helpers.contains(w) {
                    fault(w, "is a cut helper name");
                }
            }
            if bad.len() == before {
                seen.insert(line.to_owned());
            }
        }
        bad
    }
}

/// Key sequences that reach each screen from the flows table, with the state reset first.
const SCREENS: &[(&str, &[KeyCode])] = &[
    ("flows", &[KeyCode::Char('1')]),
    (
        "flows, sorted by Left",
        &[KeyCode::Char('1'), KeyCode::Char('s')],
    ),
    ("expectations", &[KeyCode::Char('2')]),
    ("chains", &[KeyCode::Char('3')]),
    ("findings", &[KeyCode::Char('4')]),
    ("top", &[KeyCode::Char('5')]),
    (
        "top by dport",
        &[KeyCode::Char('5'), KeyCode::Char('b'), KeyCode::Char('b')],
    ),
    (
        "confirm group flush",
        &[KeyCode::Char('5'), KeyCode::Char('F')],
    ),
    ("confirm stale flush", &[KeyCode::Char('Z')]),
    ("help", &[KeyCode::Char('?')]),
    ("confirm flush all", &[KeyCode::Char('X')]),
    ("confirm delete", &[KeyCode::Char('1'), KeyCode::Char('d')]),
    (
        "confirm helper flush",
        &[KeyCode::Char('2'), KeyCode::Char('H')],
    ),
];

/// A key to the app, without drawing (the sweep draws once per screen it looks at).
fn press(h: &mut Harness, code: KeyCode) {
    h.app
        .handle(AppEvent::Key(KeyEvent::new(code, KeyModifiers::NONE)));
}

/// Close overlays and the detail pane, back to the first row of the flows table.
fn reset(h: &mut Harness) {
    for k in [
        KeyCode::Esc,
        KeyCode::Esc,
        KeyCode::Char('1'),
        KeyCode::Home,
    ] {
        press(h, k);
    }
}

/// Draw every screen at every `step`th width from 40 to 240 at `height`, the detail pane
/// of every row at `detail_widths`, and collect what is cut or foreign.
fn sweep(height: u16, step: usize, detail_widths: &[u16]) {
    let mut h = replay(80, height);
    let now = h.clock.0.get();
    let mut legit = Legit::collect(&h.app.store.read(), now);
    legit.pressure(&mut h, now);
    assert!(
        legit.helpers.contains("netbios-ns"),
        "the edge entries are in"
    );
    let checker = Checker::new();
    let mut problems: Vec<String> = Vec::new();
    let mut screens = 0usize;
    let mut seen = HashSet::new();
    let mut look = |h: &mut Harness, what: &str| {
        h.draw();
        screens += 1;
        let w = h.term.backend().buffer().area.width;
        for p in checker.check(&legit, &h.screen(), &mut seen) {
            if problems.len() < 40 {
                problems.push(format!("{w}x{height} {what}: {p}"));
            }
        }
    };
    let widths: Vec<u16> = (40u16..=240)
        .filter(|w| usize::from(w - 40) % step == 0 || detail_widths.contains(w))
        .collect();
    for &width in &widths {
        h.resize(width, height);
        for (what, keys) in SCREENS {
            reset(&mut h);
            for k in *keys {
                press(&mut h, *k);
            }
            look(&mut h, what);
        }
        // The detail pane of every row at a few widths (ICMP ids, IPv6, NAT, RELATED
        // flows with their risk), of the first row everywhere else.
        let rows = if detail_widths.contains(&width) {
            70
        } else {
            1
        };
        for tab in ['1', '2', '3'] {
            reset(&mut h);
            press(&mut h, KeyCode::Char(tab));
            press(&mut h, KeyCode::Enter);
            for i in 0..rows {
                if i > 0 {
                    press(&mut h, KeyCode::Down);
                }
                look(&mut h, &format!("detail {tab} row {i}"));
            }
        }
    }
    assert!(screens >= widths.len() * 12, "{screens} screens");
    assert!(
        problems.is_empty(),
        "cut or foreign numbers (the first {}):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// The Recent screen over the knock recording (progress lines, list entries with hits,
/// ages and expiries, admitted flows) and its detail pane, at every width from 40: every
/// number is one of the snapshot's or the store's, whole.
#[test]
fn the_recent_screen_keeps_numbers_whole_at_every_width() {
    for height in [24u16, 12] {
        let mut h = replay_file("assets/lab-knock.ctrec", 80, height, false);
        let now = h.clock.0.get();
        let mut legit = Legit::collect(&h.app.store.read(), now);
        let v = h.app.recent_view().expect("the recording holds snapshots");
        let whole = |x: f64| text::dur_short(x.max(0.0).round() as u32);
        // The tab's count: every entry of every list and set.
        let total: usize = v.lists.iter().map(|l| l.entries.len()).sum();
        legit.nums.insert(total as u64);
        for l in &v.lists {
            legit.nums.insert(l.entries.len() as u64);
            for e in &l.entries {
                if let Some(a) = e.addr {
                    legit.addrs.insert(a.to_string());
                }
                legit.nums.extend(e.hits.map(|x| x as u64));
                for x in [e.age_s, e.expires_s].into_iter().flatten() {
                    legit.digits_of(&whole(x));
                }
            }
        }
        for s in &v.progress {
            legit.addrs.insert(s.progress.addr.to_string());
            legit.digits_of(&s.progress.text);
        }
        // The snapshot's time heads the screen (`snapshot 16:46:59Z`).
        let taken = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(v.at);
        legit.digits_of(&humantime::format_rfc3339_seconds(taken).to_string()[11..]);
        let checker = Checker::new();
        let mut seen = HashSet::new();
        let mut problems = Vec::new();
        press(&mut h, KeyCode::Char('6'));
        h.draw();
        let rows = h.app.recent_lines().len();
        assert!(rows > 15, "{:#?}", h.app.recent_lines());
        // The tab line's "21 shown": the screen's rows.
        legit.nums.insert(rows as u64);
        for width in 40u16..=240 {
            h.resize(width, height);
            // The table, then at a few widths Enter on every row: its detail pane, or
            // for an admitted flow the flows screen with that flow's.
            let detail = [40, 59, 60, 99, 100, 120].contains(&width);
            for i in 0..if detail { rows + 1 } else { 1 } {
                reset(&mut h);
                press(&mut h, KeyCode::Char('6'));
                for _ in 1..i {
                    press(&mut h, KeyCode::Down);
                }
                if i > 0 {
                    press(&mut h, KeyCode::Enter);
                }
                h.draw();
                for p in checker.check(&legit, &h.screen(), &mut seen) {
                    problems.push(format!("{width}x{height} row {i}: {p}"));
                }
            }
        }
        assert!(
            problems.is_empty(),
            "cut or foreign numbers:\n{}",
            problems.join("\n")
        );
    }
}

/// Every width, at the classic height.
#[test]
fn every_number_is_whole_at_every_width_24_rows() {
    sweep(24, 1, &[]);
}

/// A tall terminal (the detail pane beside a long table) every third width, and the
/// detail pane of every row at the widths where layouts change.
#[test]
fn every_number_is_whole_at_every_third_width_40_rows() {
    sweep(40, 3, &[40, 59, 60, 99, 100, 120, 160]);
}

/// A short terminal (popups and the detail pane squeezed) every third width.
#[test]
fn every_number_is_whole_at_every_third_width_12_rows() {
    sweep(12, 3, &[]);
}

/// The Risk column survives every width on the flows, expectations and chains tables
/// (narrower screens shrink the connection instead: its addresses elide).
#[test]
fn the_risk_column_is_never_dropped() {
    let mut h = replay(40, 40);
    for width in 40u16..=240 {
        h.resize(width, 40);
        for tab in ['1', '2', '3'] {
            h.ch(tab);
            let s = h.screen();
            let head = s.lines().nth(3).unwrap_or("");
            assert!(head.contains("Risk"), "{width} cols, tab {tab}:\n{s}");
        }
    }
}

/// The header's lost-event counter is whole at every width, with no helper in use (the
/// case that once printed `resyn`) and after resyncs.
#[test]
fn the_resync_counter_is_always_whole() {
    let mut h = Harness::new(Store::new(), opts(), 40, 24);
    for overruns in [0u32, 12] {
        for _ in 0..overruns {
            h.app
                .handle(ctscope::tui::AppEvent::Engine(EngineEvent::Overrun));
        }
        for width in 40u16..=240 {
            h.resize(width, 24);
            let s = h.screen();
            let line = s.lines().nth(1).unwrap_or("");
            let want = format!("resyncs {overruns}");
            assert!(
                line.ends_with(&want) && line.contains("findings 0"),
                "{width} cols, {overruns} resyncs:\n{s}"
            );
        }
    }
}
