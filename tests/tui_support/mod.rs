//! Test support for the TUI tests: a scene builder that records what happens as the kernel
//! would report it (`(Event, Record)` pairs) into the real `Store`, the engine events the
//! app is fed, a manual clock, a recording command sender (the filter bar uses the real
//! filter module), and a lab scene with several helpers (ftp passive and a forged PORT, irc
//! DCC, sip, tftp), NAT, zones, IPv6, counters and the user's own SSH flow.
//!
//! It must not reach the kernel; everything is plain data so screens are deterministic.
//! There is one store: the app's own, fed the same records the engine makes.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ctscope::actions::{self, Plan, Target};
use ctscope::engine::EngineEvent;
use ctscope::model::flow::status;
use ctscope::model::helper::intern;
use ctscope::model::store::{ExpectKey, FlowKey, Store};
use ctscope::model::tuple::proto;
use ctscope::model::{Counter, Expectation, Family, Flow, Tuple};
use ctscope::model::{Event, Record};
use ctscope::risk::{Assessment, Assessor, Config, HelperTable};
use ctscope::tui::risk::Assess;
use ctscope::tui::worker::Pacing;
use ctscope::tui::{App, AppEvent, Clock, Request, TuiOptions};
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;

/// A scene: everything done to it, as the kernel would have reported it (`log`), applied
/// to a real store as it happens.
#[derive(Default)]
pub struct Scene {
    pub store: Store,
    pub log: Vec<(Event, Record)>,
}

impl Scene {
    fn record(&mut self, event: Event, record: Record) {
        self.store.apply(event, record.clone(), 0);
        self.log.push((event, record));
    }

    pub fn add_flow(&mut self, f: Flow) {
        self.record(Event::New, Record::Flow(f));
    }

    pub fn remove_flow(&mut self, k: &FlowKey) {
        if let Some(f) = self.store.flow(k).cloned() {
            self.record(Event::Destroy, Record::Flow(f));
        }
    }

    pub fn add_expect(&mut self, e: Expectation) {
        self.record(Event::New, Record::Expect(e));
    }

    /// The kernel dropped an expectation after it was used; its RELATED flows keep the
    /// link (the store keeps it).
    pub fn drop_expect(&mut self, k: &ExpectKey) {
        if let Some(e) = self.store.expectation(k).cloned() {
            self.record(Event::Destroy, Record::Expect(e));
        }
    }

    /// The live expectations, in key order.
    pub fn expects(&self) -> Vec<Expectation> {
        expects_of(&self.store)
    }
}

/// The live expectations of `store`, in key order.
pub fn expects_of(store: &Store) -> Vec<Expectation> {
    let mut v: Vec<Expectation> = store.expectations().cloned().collect();
    v.sort_by_key(ExpectKey::of);
    v
}

/// The engine events a test feeds the app: the same records the engine makes.
pub mod ev {
    use super::*;

    /// One record as the engine delivers it.
    pub fn record(event: Event, record: Record) -> EngineEvent {
        EngineEvent::Records(vec![(event, record)])
    }

    /// A flow created (or reported again) by the kernel.
    pub fn flow(f: Flow) -> EngineEvent {
        record(Event::New, Record::Flow(f))
    }

    /// A flow destroyed by the kernel.
    pub fn destroy(f: Flow) -> EngineEvent {
        record(Event::Destroy, Record::Flow(f))
    }

    /// An expectation created by a helper.
    pub fn expect(e: Expectation) -> EngineEvent {
        record(Event::New, Record::Expect(e))
    }

    /// The engine's report of an executed plan.
    pub fn report(removed: usize, already_gone: usize, refused: usize) -> EngineEvent {
        EngineEvent::ActionDone(actions::Report {
            removed,
            already_gone,
            refused,
            ..actions::Report::default()
        })
    }

    /// A full dump begins (`true`) or ends (`false`); it sweeps nothing here.
    pub fn dump(begin: bool) -> EngineEvent {
        let (flows, expects) = (false, false);
        if begin {
            EngineEvent::DumpBegin { flows, expects }
        } else {
            EngineEvent::DumpEnd { flows, expects }
        }
    }
}

/// The flow keys a sent plan deletes one by one.
pub fn plan_flows(p: &Plan) -> Vec<FlowKey> {
    p.flow_keys().collect()
}

/// The expectation keys a sent plan deletes one by one.
pub fn plan_expects(p: &Plan) -> Vec<ExpectKey> {
    p.targets
        .iter()
        .filter_map(|t| match t {
            Target::Expect { key, .. } => Some(*key),
            _ => None,
        })
        .collect()
}

/// The assessor the dashboard gets in tests: the embedded freedom table, default sensitive
/// ports, no listening sockets (no system access), counting how often the app asks for a
/// full reassessment.
pub struct CountingAssessor {
    pub inner: Assessor,
    pub calls: Calls,
}

/// A count shared with an assessor that runs on the view builder's thread.
#[derive(Clone, Default)]
pub struct Calls(Arc<AtomicUsize>);

impl Calls {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
    fn bump(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl CountingAssessor {
    pub fn embedded() -> CountingAssessor {
        CountingAssessor {
            inner: Assessor::new(HelperTable::embedded().unwrap(), Config::default(), None),
            calls: Calls::default(),
        }
    }
}

impl Assess for CountingAssessor {
    fn expectations(&self, store: &Store) -> Vec<(ExpectKey, Assessment)> {
        self.calls.bump();
        self.inner.all_expectations(store)
    }
    fn flow(&self, store: &Store, key: &FlowKey) -> Option<Assessment> {
        self.inner.flow(store, key)
    }
}

/// A clock the test moves by hand. Store second 0 is 2025-11-21T05:00:00Z.
#[derive(Clone, Default)]
pub struct ManualClock(pub Rc<Cell<u32>>);

impl Clock for ManualClock {
    fn now(&self) -> u32 {
        self.0.get()
    }
    fn epoch(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_763_701_200)
    }
}

fn v4(a: [u8; 4]) -> [u8; 16] {
    let mut o = [0; 16];
    o[..4].copy_from_slice(&a);
    o
}

pub fn tuple(p: u8, src: &str, sport: u16, dst: &str, dport: u16) -> Tuple {
    let s: IpAddr = src.parse().unwrap();
    let family = if s.is_ipv4() {
        Family::Ipv4
    } else {
        Family::Ipv6
    };
    let mut t = Tuple {
        family,
        proto: p,
        sport,
        dport,
        ..Tuple::default()
    };
    t.set_src_ip(s);
    t.set_dst_ip(dst.parse().unwrap());
    t
}

fn flow(t: Tuple, state: u8, bits: u32, timeout: u32) -> Flow {
    let mut f = Flow::new(t);
    f.state = state;
    f.status = bits | status::CONFIRMED;
    f.timeout = timeout;
    f.id = 1000 + u32::from(t.sport % 1000);
    f.use_count = 1;
    f
}

const EST: u8 = 3;
const NO: u8 = u8::MAX;
const LIVE: u32 = status::SEEN_REPLY | status::ASSURED;

fn expect(t: Tuple, any_src: bool, master: Tuple, helper: &str, timeout: u32) -> Expectation {
    let mut mask = Tuple {
        family: t.family,
        proto: t.proto,
        src: if any_src { [0; 16] } else { v4([255; 4]) },
        dst: v4([255; 4]),
        sport: 0,
        dport: 0xffff,
    };
    if t.family == Family::Ipv6 {
        mask.dst = [0xff; 16];
    }
    let mut e = Expectation::new(t, mask, master);
    e.helper = intern(helper);
    e.timeout = timeout;
    e.id = 7000 + u32::from(t.dport % 1000);
    e
}

/// The SSH session of the user running the test scenes.
pub const SSH_CONNECTION: &str = "10.213.4.100 51000 10.213.4.1 22";

/// The lab: several helpers, a forged FTP PORT toward MySQL, NAT, zones, IPv6, counters.
pub fn lab() -> Scene {
    let mut m = Scene::default();
    let ftp_ctl = tuple(proto::TCP, "10.213.4.2", 40000, "10.213.4.1", 21);
    let mut f = flow(ftp_ctl, EST, LIVE | status::HELPER, 431_999);
    f.helper = intern("ftp");
    m.add_flow(f);
    // Passive transfer: expectation for port 50000, already used by the data flow.
    let pasv = expect(
        tuple(proto::TCP, "10.213.4.2", 0, "10.213.4.1", 50000),
        false,
        ftp_ctl,
        "ftp",
        300,
    );
    m.add_expect(pasv.clone());
    let mut data = flow(
        tuple(proto::TCP, "10.213.4.2", 40002, "10.213.4.1", 50000),
        EST,
        LIVE | status::EXPECTED,
        118,
    );
    data.extra_mut().master = Some(ftp_ctl);
    m.add_flow(data);
    m.drop_expect(&ExpectKey::of(&pasv));
    // A second PASV still waiting.
    m.add_expect(expect(
        tuple(proto::TCP, "10.213.4.2", 0, "10.213.4.1", 50010),
        false,
        ftp_ctl,
        "ftp",
        287,
    ));
    // A forged PORT aimed at the database on another host.
    let evil_ctl = tuple(proto::TCP, "10.213.4.66", 41000, "10.213.4.1", 21);
    let mut f = flow(evil_ctl, EST, LIVE | status::HELPER, 431_990);
    f.helper = intern("ftp");
    m.add_flow(f);
    m.add_expect(expect(
        tuple(proto::TCP, "10.213.4.1", 0, "10.213.4.7", 3306),
        false,
        evil_ctl,
        "ftp",
        299,
    ));
    // IRC DCC: any source toward the client.
    let irc_ctl = tuple(proto::TCP, "10.213.4.2", 40100, "10.213.4.9", 6667);
    let mut f = flow(irc_ctl, EST, LIVE | status::HELPER, 431_000);
    f.helper = intern("irc");
    m.add_flow(f);
    m.add_expect(expect(
        tuple(proto::TCP, "0.0.0.0", 0, "10.213.4.2", 5000),
        true,
        irc_ctl,
        "irc",
        240,
    ));
    // SIP with an RTP expectation (class 1: audio).
    let sip_ctl = tuple(proto::UDP, "10.213.4.2", 5060, "10.213.4.1", 5060);
    let mut f = flow(sip_ctl, NO, LIVE | status::HELPER, 3599);
    f.helper = intern("sip");
    m.add_flow(f);
    let mut rtp = expect(
        tuple(proto::UDP, "10.213.4.1", 0, "10.213.4.2", 16384),
        false,
        sip_ctl,
        "sip",
        180,
    );
    rtp.class = 1;
    m.add_expect(rtp);
    // TFTP: the data flow comes back from the server; its expectation is used and gone.
    let tftp_ctl = tuple(proto::UDP, "10.213.4.2", 50123, "10.213.4.1", 69);
    let mut f = flow(tftp_ctl, NO, status::HELPER, 25);
    f.helper = intern("tftp");
    m.add_flow(f);
    let tftp_exp = expect(
        tuple(proto::UDP, "10.213.4.1", 0, "10.213.4.2", 50123),
        false,
        tftp_ctl,
        "tftp",
        5,
    );
    m.add_expect(tftp_exp.clone());
    let mut tdata = flow(
        tuple(proto::UDP, "10.213.4.1", 50200, "10.213.4.2", 50123),
        NO,
        status::EXPECTED,
        28,
    );
    tdata.extra_mut().master = Some(tftp_ctl);
    m.add_flow(tdata);
    m.drop_expect(&ExpectKey::of(&tftp_exp));
    // Plain traffic: DNS, ping, a DNAT'd web flow, a marked flow in zone 3, IPv6 with
    // counters, and the user's own SSH session.
    m.add_flow(flow(
        tuple(proto::UDP, "10.213.4.2", 53000, "10.213.4.53", 53),
        NO,
        0,
        29,
    ));
    let mut ping = flow(
        tuple(proto::ICMP, "10.213.4.2", 7, "10.213.4.1", 8 << 8),
        NO,
        status::SEEN_REPLY,
        29,
    );
    ping.orig.sport = 7;
    m.add_flow(ping);
    let web = tuple(proto::TCP, "192.0.2.10", 44000, "203.0.113.1", 80);
    let mut f = flow(
        web,
        EST,
        LIVE | status::DST_NAT | status::DST_NAT_DONE,
        431_400,
    );
    let mut r = web.inverted();
    r.set_src_ip("10.213.4.5".parse().unwrap());
    r.sport = 8080;
    f.set_reply(r);
    m.add_flow(f);
    let mut f = flow(
        tuple(proto::TCP, "10.213.4.3", 45000, "10.213.4.1", 443),
        1,
        0,
        119,
    );
    f.zone = 3;
    f.mark = 0x10;
    m.add_flow(f);
    let mut f = flow(
        tuple(proto::TCP, "fd00:213:4::2", 41000, "fd00:213:4::1", 443),
        EST,
        LIVE,
        431_000,
    );
    f.extra_mut().counters = Some([
        Counter {
            packets: 12,
            bytes: 2400,
        },
        Counter {
            packets: 10,
            bytes: 48_000,
        },
    ]);
    f.extra_mut().timestamp = Some((1_763_701_100_000_000_000, 0));
    m.add_flow(f);
    m.add_flow(flow(
        tuple(proto::TCP, "10.213.4.100", 51000, "10.213.4.1", 22),
        EST,
        LIVE,
        431_999,
    ));
    m
}

/// Captured requests (re-checks, which are the engine's business, are left out).
pub type Sent = Rc<RefCell<Vec<Request>>>;

/// The view builder's pacing in tests: every data rebuild at once, so a test waits only
/// for the builds themselves (`Harness::settle`).
pub const UNPACED: Pacing = Pacing {
    budget: 1.0,
    min_gap: Duration::ZERO,
    max_lag: Duration::from_secs(1),
};

/// How long `Harness::settle` waits for the view builder.
pub const SETTLE: Duration = Duration::from_secs(60);

/// A harness: the real `App` over the lab, a TestBackend terminal, a manual clock.
pub struct Harness {
    pub app: App,
    pub term: Terminal<TestBackend>,
    pub clock: ManualClock,
    pub sent: Sent,
    /// Full reassessments the app asked of its assessor.
    pub risk_calls: Calls,
}

pub fn opts() -> TuiOptions {
    TuiOptions {
        namespace: Some("lab".into()),
        conntrack_max: Some(262_144),
        tcp_loose: Some(false),
        ssh: ctscope::tui::SshSession::parse(SSH_CONNECTION),
        ..TuiOptions::default()
    }
}

impl Harness {
    pub fn lab() -> Harness {
        Harness::new(lab(), opts(), 80, 24)
    }

    pub fn new(scene: impl Into<Store>, opts: TuiOptions, w: u16, h: u16) -> Harness {
        let assessor = CountingAssessor::embedded();
        let risk_calls = assessor.calls.clone();
        let mut h = Harness::with_assessor(scene, opts, w, h, Box::new(assessor));
        h.risk_calls = risk_calls;
        h
    }

    /// Like `new`, with the given assessor (e.g. a real `risk::Assessor` reading a lab
    /// namespace's sockets); `risk_calls` then counts nothing.
    pub fn with_assessor(
        scene: impl Into<Store>,
        opts: TuiOptions,
        w: u16,
        h: u16,
        assessor: Box<dyn Assess>,
    ) -> Harness {
        let clock = ManualClock::default();
        clock.0.set(1);
        let sent: Sent = Rc::default();
        let s2 = sent.clone();
        let risk_calls = Calls::default();
        let app = App::new(
            scene.into(),
            opts,
            Box::new(clock.clone()),
            Box::new(move |r: Request| {
                if !matches!(r, Request::Recheck(_)) {
                    s2.borrow_mut().push(r);
                }
                Ok(())
            }),
        )
        .with_assessor(assessor)
        .with_pacing(UNPACED);
        let term = Terminal::new(TestBackend::new(w, h)).unwrap();
        Harness {
            app,
            term,
            clock,
            sent,
            risk_calls,
        }
    }

    pub fn key(&mut self, code: KeyCode) -> &mut Self {
        self.app
            .handle(AppEvent::Key(KeyEvent::new(code, KeyModifiers::NONE)));
        self.draw()
    }

    pub fn ch(&mut self, c: char) -> &mut Self {
        self.key(KeyCode::Char(c))
    }

    pub fn typed(&mut self, s: &str) -> &mut Self {
        for c in s.chars() {
            self.ch(c);
        }
        self
    }

    pub fn event(&mut self, e: EngineEvent) -> &mut Self {
        self.app.handle(AppEvent::Engine(e));
        self.draw()
    }

    /// The kernel destroys the flow `k` (as the store holds it).
    pub fn remove_flow(&mut self, k: FlowKey) -> &mut Self {
        let f = self
            .app
            .store
            .read()
            .flow(&k)
            .cloned()
            .expect("flow to remove");
        self.event(ev::destroy(f))
    }

    /// The plans sent so far.
    pub fn plans(&self) -> Vec<Plan> {
        self.sent
            .borrow()
            .iter()
            .filter_map(|r| match r {
                Request::Execute(p) => Some((**p).clone()),
                _ => None,
            })
            .collect()
    }

    pub fn tick(&mut self, secs: u32) -> &mut Self {
        self.clock.0.set(self.clock.0.get() + secs);
        self.app.handle(AppEvent::Tick);
        self.draw()
    }

    /// Wait for the view builder to finish what the last event asked for (tests assert
    /// on views right after `handle`), then draw.
    pub fn draw(&mut self) -> &mut Self {
        self.settle();
        self.app.draw(&mut self.term).unwrap();
        self
    }

    /// Wait for outstanding builds (generously: the machine may be loaded).
    pub fn settle(&mut self) -> &mut Self {
        assert!(
            self.app.settle(SETTLE),
            "the view builder did not finish in {SETTLE:?}"
        );
        assert_eq!(self.app.failed_builds(), 0, "a build panicked");
        self
    }

    pub fn resize(&mut self, w: u16, h: u16) -> &mut Self {
        self.term.backend_mut().resize(w, h);
        self.app.handle(AppEvent::Resize(w, h));
        self.draw()
    }

    /// The screen as text, one line per row.
    pub fn screen(&self) -> String {
        let buf = self.term.backend().buffer();
        let mut out = String::new();
        for y in 0..buf.area.height {
            let mut line = String::new();
            for x in 0..buf.area.width {
                line.push_str(buf[(x, y)].symbol());
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// The row of the screen containing `needle`.
    pub fn row_of(&self, needle: &str) -> Option<u16> {
        self.screen()
            .lines()
            .position(|l| l.contains(needle))
            .map(|y| y as u16)
    }

    /// Style of the cell where `needle` starts (first occurrence).
    pub fn style_at(&self, needle: &str) -> ratatui::style::Style {
        let y = self
            .row_of(needle)
            .unwrap_or_else(|| panic!("'{needle}' not on screen:\n{}", self.screen()));
        self.style_in_row(y, needle)
    }

    /// Style of the cell where `needle` starts in row `y`.
    pub fn style_in_row(&self, y: u16, needle: &str) -> ratatui::style::Style {
        let buf = self.term.backend().buffer();
        let mut line = String::new();
        let mut xs = Vec::new();
        for x in 0..buf.area.width {
            let sym = buf[(x, y)].symbol();
            for _ in sym.chars() {
                xs.push(x);
            }
            line.push_str(sym);
        }
        let ci = line[..line.find(needle).unwrap()].chars().count();
        buf[(xs[ci], y)].style()
    }
}

impl From<Scene> for Store {
    fn from(s: Scene) -> Store {
        s.store
    }
}
