//! Store scenarios: sequences of (event, record) built in code, checking keys, linkage
//! (master ↔ expectation ↔ RELATED), merging of sparse UPDATEs, resync sweeps and the
//! memory budget. Pure model logic: no kernel, no sockets.

use ctscope::model::flow::status;
use ctscope::model::helper;
use ctscope::model::store::{Change, ExpectKey, FlowKey, Store};
use ctscope::model::tuple::{proto, Family};
use ctscope::model::{Counter, Expectation, Flow, Tuple};
use ctscope::model::{Event, Record};

fn tuple(p: u8, src: &str, dst: &str) -> Tuple {
    let (sa, sp) = src.rsplit_once(':').unwrap();
    let (da, dp) = dst.rsplit_once(':').unwrap();
    let sa: std::net::IpAddr = sa.trim_matches(['[', ']']).parse().unwrap();
    let da: std::net::IpAddr = da.trim_matches(['[', ']']).parse().unwrap();
    let mut t = Tuple {
        family: if sa.is_ipv4() {
            Family::Ipv4
        } else {
            Family::Ipv6
        },
        proto: p,
        sport: sp.parse().unwrap(),
        dport: dp.parse().unwrap(),
        ..Tuple::default()
    };
    t.set_src_ip(sa);
    t.set_dst_ip(da);
    t
}

fn tcp(src: &str, dst: &str) -> Tuple {
    tuple(proto::TCP, src, dst)
}

fn flow(orig: Tuple, id: u32) -> Flow {
    let mut f = Flow::new(orig);
    f.id = id;
    f.timeout = 300;
    f.state = 3; // ESTABLISHED
    f.status = status::CONFIRMED | status::SEEN_REPLY | status::ASSURED;
    f
}

/// An FTP control connection with the ftp helper attached.
fn ftp_master() -> Flow {
    let mut f = flow(tcp("10.213.3.1:40000", "10.213.3.2:21"), 100);
    f.helper = helper::intern("ftp");
    f
}

/// The passive-mode expectation the ftp helper creates: any source port, fixed data port.
fn ftp_expect(master: &Flow, dport: u16) -> Expectation {
    let mut t = tcp("10.213.3.1:0", "10.213.3.2:0");
    t.dport = dport;
    let mut mask = t;
    mask.src = [0xff; 16];
    mask.dst = [0xff; 16];
    mask.sport = 0;
    mask.dport = 0xffff;
    let mut e = Expectation::new(t, mask, master.orig);
    e.helper = helper::intern("ftp");
    e.timeout = 300;
    e.id = 7;
    e.zone = master.zone;
    e
}

/// The RELATED data flow an expectation lets in.
fn related(master: &Flow, sport: u16, dport: u16) -> Flow {
    let mut f = flow(
        tcp(
            &format!("10.213.3.1:{sport}"),
            &format!("10.213.3.2:{dport}"),
        ),
        200,
    );
    f.zone = master.zone;
    f.status = status::EXPECTED | status::CONFIRMED;
    f.state = 1; // SYN_SENT
    f.extra_mut().master = Some(master.orig);
    f
}

fn apply_flow(s: &mut Store, ev: Event, f: &Flow, now: u32) -> Change {
    s.apply(ev, Record::Flow(f.clone()), now)
}

fn apply_exp(s: &mut Store, ev: Event, e: &Expectation, now: u32) -> Change {
    s.apply(ev, Record::Expect(e.clone()), now)
}

/// What a DESTROY event carries: tuples, status, id, counters. No helper, no master.
fn destroy_of(f: &Flow) -> Flow {
    let mut d = Flow::new(f.orig);
    d.zone = f.zone;
    d.id = f.id;
    d.status = f.status;
    d.extra_mut().counters = Some(
        [Counter {
            packets: 3,
            bytes: 180,
        }; 2],
    );
    d
}

#[test]
fn ftp_chain_links_master_expectation_and_related_flow() {
    let mut s = Store::new();
    let m = ftp_master();
    let mk = FlowKey::of(&m);
    assert_eq!(apply_flow(&mut s, Event::New, &m, 10), Change::FlowAdded);
    let e = ftp_expect(&m, 50000);
    assert_eq!(apply_exp(&mut s, Event::New, &e, 11), Change::ExpectAdded);
    assert_eq!(s.expectations_of(&mk), vec![ExpectKey::of(&e)]);

    // Kernel order: the expectation's DESTROY comes just before the RELATED flow's NEW.
    let mut gone = e.clone();
    gone.helper = Default::default();
    assert_eq!(
        apply_exp(&mut s, Event::Destroy, &gone, 12),
        Change::ExpectRemoved
    );
    assert!(s.expectations_of(&mk).is_empty());
    let r = related(&m, 41000, 50000);
    let rk = FlowKey::of(&r);
    assert_eq!(apply_flow(&mut s, Event::New, &r, 12), Change::FlowAdded);

    assert_eq!(s.master_of(&rk).map(|f| f.id), Some(100));
    assert_eq!(s.related_of(&mk), vec![rk]);
    let origin = s
        .expectation_of(&rk)
        .expect("expectation kept for the RELATED flow");
    assert_eq!(origin.tuple, e.tuple);
    // The store's copy (with helper) wins over the sparser DESTROY record.
    assert_eq!(origin.helper.name(), Some("ftp"));
    // Consumed: a second flow matching the same expectation does not take it again.
    let r2 = related(&m, 41001, 50000);
    apply_flow(&mut s, Event::New, &r2, 13);
    assert!(s.expectation_of(&FlowKey::of(&r2)).is_none());

    // Sparse UPDATE (no master, no helper, no state) keeps linkage and the origin.
    let mut up = Flow::new(r.orig);
    up.status = r.status | status::SEEN_REPLY;
    up.timeout = 120;
    up.id = r.id;
    assert_eq!(
        apply_flow(&mut s, Event::Update, &up, 20),
        Change::FlowUpdated
    );
    let now = s.flow(&rk).unwrap();
    assert_eq!(now.master(), Some(&m.orig));
    assert_eq!(now.state, 1);
    assert!(now.has(status::SEEN_REPLY));
    assert_eq!(s.master_of(&rk).map(|f| f.id), Some(100));
    assert!(s.expectation_of(&rk).is_some());
}

#[test]
fn expectation_for_another_master_is_not_taken() {
    let mut s = Store::new();
    let m = ftp_master();
    let mut other = flow(tcp("10.213.3.9:40000", "10.213.3.2:21"), 101);
    other.helper = m.helper;
    apply_flow(&mut s, Event::New, &m, 1);
    apply_flow(&mut s, Event::New, &other, 1);
    let e = ftp_expect(&other, 50000);
    apply_exp(&mut s, Event::New, &e, 2);
    apply_exp(&mut s, Event::Destroy, &e, 3);
    let r = related(&m, 41000, 50000);
    apply_flow(&mut s, Event::New, &r, 3);
    assert!(s.expectation_of(&FlowKey::of(&r)).is_none());
    // And one whose tuple does not match the flow is not taken either.
    let e2 = ftp_expect(&m, 50001);
    apply_exp(&mut s, Event::New, &e2, 4);
    apply_exp(&mut s, Event::Destroy, &e2, 4);
    let r3 = related(&m, 41002, 50002);
    apply_flow(&mut s, Event::New, &r3, 4);
    assert!(s.expectation_of(&FlowKey::of(&r3)).is_none());
}

#[test]
fn destroyed_expectations_are_forgotten_after_a_while() {
    let mut s = Store::new();
    let m = ftp_master();
    apply_flow(&mut s, Event::New, &m, 0);
    let e = ftp_expect(&m, 50000);
    apply_exp(&mut s, Event::New, &e, 0);
    apply_exp(&mut s, Event::Destroy, &e, 1);
    assert_eq!(s.recent_expectations().count(), 1);
    s.expire_expectations(500);
    assert_eq!(s.recent_expectations().count(), 0);
    let r = related(&m, 41000, 50000);
    apply_flow(&mut s, Event::New, &r, 500);
    assert!(s.expectation_of(&FlowKey::of(&r)).is_none());
    // The bounded queue keeps only the newest entries.
    for p in 0..400u16 {
        let e = ftp_expect(&m, 10000 + p);
        apply_exp(&mut s, Event::Destroy, &e, 501);
    }
    assert_eq!(s.recent_expectations().count(), 256);
}

#[test]
fn permanent_live_expectation_links_without_destroy() {
    let mut s = Store::new();
    let m = ftp_master();
    apply_flow(&mut s, Event::New, &m, 0);
    let mut e = ftp_expect(&m, 50000);
    e.flags = ctscope::model::expect::flags::PERMANENT;
    apply_exp(&mut s, Event::New, &e, 0);
    let r = related(&m, 41000, 50000);
    apply_flow(&mut s, Event::New, &r, 1);
    assert_eq!(
        s.expectation_of(&FlowKey::of(&r)).map(|x| x.flags),
        Some(e.flags)
    );
    assert_eq!(s.expect_count(), 1);
}

#[test]
fn destroy_master_keeps_children_as_orphans() {
    let mut s = Store::new();
    let m = ftp_master();
    let mk = FlowKey::of(&m);
    apply_flow(&mut s, Event::New, &m, 0);
    let r = related(&m, 41000, 50000);
    let rk = FlowKey::of(&r);
    apply_flow(&mut s, Event::New, &r, 0);
    assert!(s.master_of(&rk).is_some());

    assert_eq!(
        apply_flow(&mut s, Event::Destroy, &destroy_of(&m), 5),
        Change::FlowRemoved
    );
    assert!(s.flow(&mk).is_none());
    let child = s.flow(&rk).expect("child stays");
    assert_eq!(child.master(), Some(&m.orig), "master tuple still known");
    assert!(s.master_of(&rk).is_none());
    assert!(s.is_orphan(&rk));
    assert!(s.related_of(&mk).is_empty());

    // A new connection reusing the master's tuple does not adopt the orphan.
    let mut again = ftp_master();
    again.id = 999;
    apply_flow(&mut s, Event::New, &again, 6);
    assert!(s.master_of(&rk).is_none());
    assert!(s.related_of(&mk).is_empty());

    // DESTROY of the child (no master tuple in it) cleans every trace.
    assert_eq!(
        apply_flow(&mut s, Event::Destroy, &destroy_of(&r), 7),
        Change::FlowRemoved
    );
    assert!(!s.is_orphan(&rk));
    assert_eq!(s.flow_count(), 1);
    assert_eq!(
        apply_flow(&mut s, Event::Destroy, &destroy_of(&r), 7),
        Change::Nothing
    );
}

#[test]
fn child_seen_before_master_links_when_master_arrives() {
    let mut s = Store::new();
    let m = ftp_master();
    let r = related(&m, 41000, 50000);
    apply_flow(&mut s, Event::Dump, &r, 0);
    assert!(s.master_of(&FlowKey::of(&r)).is_none());
    apply_flow(&mut s, Event::Dump, &m, 0);
    assert_eq!(s.master_of(&FlowKey::of(&r)).map(|f| f.id), Some(100));
    assert_eq!(s.related_of(&FlowKey::of(&m)), vec![FlowKey::of(&r)]);
}

#[test]
fn resync_sweeps_entries_the_dump_missed() {
    let mut s = Store::new();
    let m = ftp_master();
    let keep = flow(tcp("10.0.0.1:1", "10.0.0.2:2"), 1);
    let lost = flow(tcp("10.0.0.1:3", "10.0.0.2:4"), 2);
    let r = related(&m, 41000, 50000);
    for f in [&m, &keep, &lost, &r] {
        apply_flow(&mut s, Event::Dump, f, 0);
    }
    let e = ftp_expect(&m, 50001);
    apply_exp(&mut s, Event::Dump, &e, 0);
    let g0 = s.generation();

    s.begin_resync();
    apply_flow(&mut s, Event::Dump, &keep, 10);
    apply_flow(&mut s, Event::Dump, &r, 10);
    // An event arriving during the dump counts as reported.
    let fresh = flow(tcp("10.0.0.9:1", "10.0.0.2:2"), 3);
    apply_flow(&mut s, Event::New, &fresh, 10);
    // Only the flow table is swept here; the expectation survives until its own dump ends.
    assert_eq!(s.end_resync(true, false), 2);
    assert!(s.flow(&FlowKey::of(&lost)).is_none());
    assert!(s.flow(&FlowKey::of(&m)).is_none());
    assert!(s.is_orphan(&FlowKey::of(&r)));
    assert_eq!(s.flow_count(), 3);
    assert_eq!(s.expect_count(), 1);
    assert_eq!(s.end_resync(false, true), 1);
    assert_eq!(s.expect_count(), 0);
    // A stray end without a begin sweeps nothing.
    assert_eq!(s.end_resync(true, true), 0);
    assert_eq!(s.flow_count(), 3);
    assert!(s.generation() > g0);
    let st = s.stats();
    assert_eq!((st.swept, st.dumps, st.events), (3, 2, 1));
    s.note_resync();
    assert_eq!(s.stats().resyncs, 1);
    // Every surviving key still resolves after the swap-removes, to its own position.
    for (i, f) in s.flow_slice().iter().enumerate() {
        assert_eq!(s.flow(&FlowKey::of(f)), Some(f));
        assert_eq!(s.position(&FlowKey::of(f)), Some(i));
    }
}

/// A re-dump that starts again (an overrun in the middle of one) counts only what the
/// newest dump reported: a flow reported by the abandoned dump alone is swept.
#[test]
fn a_restarted_resync_sweeps_what_only_the_abandoned_dump_reported() {
    let mut s = Store::new();
    let flows: Vec<Flow> = (0..200u16)
        .map(|i| {
            flow(
                tcp(&format!("10.0.0.1:{}", 1000 + i), "10.0.0.2:80"),
                u32::from(i),
            )
        })
        .collect();
    for f in &flows {
        apply_flow(&mut s, Event::Dump, f, 0);
    }
    s.begin_resync_tables(true, false);
    // The abandoned dump reported the even flows.
    for f in flows.iter().step_by(2) {
        apply_flow(&mut s, Event::Dump, f, 5);
    }
    s.begin_resync_tables(true, false);
    // The newest one reports every third flow, and one flow new to the store.
    for f in flows.iter().step_by(3) {
        apply_flow(&mut s, Event::Dump, f, 6);
    }
    let fresh = flow(tcp("10.0.0.9:1", "10.0.0.2:80"), 999);
    apply_flow(&mut s, Event::Dump, &fresh, 6);
    assert_eq!(s.end_resync(true, false), 200 - 67);
    for (i, f) in flows.iter().enumerate() {
        assert_eq!(s.flow(&FlowKey::of(f)).is_some(), i % 3 == 0, "flow {i}");
    }
    assert!(s.flow(&FlowKey::of(&fresh)).is_some());
    // Outside a re-dump nothing is swept, and the next one starts from a clean slate.
    apply_flow(&mut s, Event::New, &flows[1], 7);
    s.begin_resync_tables(true, false);
    apply_flow(&mut s, Event::Dump, &flows[1], 8);
    assert_eq!(s.end_resync(true, false), 68);
    assert_eq!(s.flow_count(), 1);
}

#[test]
fn id_collisions_are_two_flows() {
    let mut s = Store::new();
    let a = flow(tcp("10.0.0.1:1000", "10.0.0.2:80"), 42);
    let b = flow(tcp("10.0.0.3:1000", "10.0.0.2:80"), 42);
    apply_flow(&mut s, Event::Dump, &a, 0);
    apply_flow(&mut s, Event::Dump, &b, 0);
    assert_eq!(s.flow_count(), 2);
    apply_flow(&mut s, Event::Destroy, &destroy_of(&a), 1);
    assert_eq!(s.flow_count(), 1);
    assert_eq!(s.flow(&FlowKey::of(&b)).map(|f| f.orig), Some(b.orig));
}

#[test]
fn zones_separate_identical_tuples() {
    let mut s = Store::new();
    let mut m0 = ftp_master();
    m0.id = 1;
    let mut m3 = ftp_master();
    m3.zone = 3;
    m3.id = 3;
    apply_flow(&mut s, Event::New, &m0, 0);
    apply_flow(&mut s, Event::New, &m3, 0);
    assert_eq!(s.flow_count(), 2);
    // A RELATED flow in zone 3 links to the zone-3 master only.
    let r = related(&m3, 41000, 50000);
    apply_flow(&mut s, Event::New, &r, 0);
    assert_eq!(s.master_of(&FlowKey::of(&r)).map(|f| f.id), Some(3));
    assert!(s.related_of(&FlowKey::of(&m0)).is_empty());
    // Expectations too are per zone.
    let e0 = ftp_expect(&m0, 50000);
    let e3 = ftp_expect(&m3, 50000);
    apply_exp(&mut s, Event::New, &e0, 0);
    apply_exp(&mut s, Event::New, &e3, 0);
    assert_eq!(s.expect_count(), 2);
    assert_eq!(
        s.expectations_of(&FlowKey::of(&m3)),
        vec![ExpectKey::of(&e3)]
    );
    apply_flow(&mut s, Event::Destroy, &destroy_of(&m0), 1);
    assert!(s.flow(&FlowKey::of(&m3)).is_some());
    assert!(s.master_of(&FlowKey::of(&r)).is_some());
}

#[test]
fn update_merges_sparse_attributes_and_unchanged_is_nothing() {
    let mut s = Store::new();
    let mut m = ftp_master();
    m.extra_mut().timestamp = Some((1, 0));
    m.mark = 0x10;
    apply_flow(&mut s, Event::Dump, &m, 0);
    let g = s.generation();
    assert_eq!(apply_flow(&mut s, Event::Dump, &m, 0), Change::Nothing);
    assert_eq!(s.generation(), g);
    let mut up = Flow::new(m.orig);
    up.id = m.id;
    up.status = m.status;
    up.timeout = 299;
    up.mark = 0x10;
    apply_flow(&mut s, Event::Update, &up, 1);
    let got = s.flow(&FlowKey::of(&m)).unwrap();
    assert_eq!(got.helper.name(), Some("ftp"));
    assert_eq!(got.state_name(), Some("ESTABLISHED"));
    assert_eq!(got.extra.as_ref().and_then(|e| e.timestamp), Some((1, 0)));
    assert_eq!((got.timeout, got.seen), (299, 1));
    assert!(s.generation() > g);
}

#[test]
fn expiry_of_flows_and_expectations() {
    let mut s = Store::new();
    let m = ftp_master();
    apply_flow(&mut s, Event::Dump, &m, 0);
    let mut e = ftp_expect(&m, 50000);
    e.timeout = 10;
    apply_exp(&mut s, Event::New, &e, 0);
    assert!(s.expired_flows(299).is_empty());
    assert_eq!(s.expired_flows(300), vec![FlowKey::of(&m)]);
    assert_eq!(
        s.expire_expectations(10),
        0,
        "reported timeouts are rounded down"
    );
    assert_eq!(s.expire_expectations(11), 1);
    assert_eq!(s.expect_count(), 0);
}

#[test]
fn many_flows_survive_swap_remove_churn() {
    let mut s = Store::new();
    let mk = |i: u32| {
        let mut t = tcp("10.0.0.1:1", "10.0.0.2:2");
        t.src[1..4].copy_from_slice(&i.to_be_bytes()[1..]);
        flow(t, i)
    };
    for i in 0..5000 {
        apply_flow(&mut s, Event::Dump, &mk(i), 0);
    }
    for i in (0..5000).filter(|i| i % 3 == 0) {
        assert_eq!(
            apply_flow(&mut s, Event::Destroy, &mk(i), 1),
            Change::FlowRemoved
        );
    }
    assert_eq!(s.flow_count(), 5000 - 1667);
    for i in 0..5000 {
        assert_eq!(
            s.flow(&FlowKey::of(&mk(i))).is_some(),
            i % 3 != 0,
            "flow {i}"
        );
    }
}

/// Structural bytes per flow at 1,000,000 flows, from capacities: the slab, the marks, the
/// index, boxed extras (every 20th flow NATed, every 50th with counters) and side maps.
/// The budget is 120 bytes of RSS per stored flow (issue 2, performance).
#[test]
fn one_million_flows_fit_in_120_bytes_each() {
    const N: u32 = 1_000_000;
    let mut s = Store::new();
    for i in 0..N {
        let mut t = tuple(proto::UDP, "10.0.0.0:1024", "192.168.0.1:53");
        t.src[1..4].copy_from_slice(&i.to_be_bytes()[1..]);
        let mut f = Flow::new(t);
        f.id = i;
        f.timeout = 30;
        if i % 20 == 0 {
            let mut r = t.inverted();
            r.dst = [0; 16];
            r.dst[..4].copy_from_slice(&[203, 0, 113, 7]);
            f.set_reply(r);
        }
        if i % 50 == 0 {
            f.extra_mut().counters = Some([Counter::default(); 2]);
        }
        s.apply(Event::Dump, Record::Flow(f), 0);
    }
    assert_eq!(s.flow_count(), N as usize);
    let mem = s.memory();
    let per_flow = mem.total() as f64 / f64::from(N);
    eprintln!("{mem:?}: {per_flow:.1} bytes per flow");
    assert!(per_flow <= 120.0, "{per_flow:.1} bytes per flow: {mem:?}");
    assert!(mem.slab >= N as usize * 72, "the slab is counted");
}

// ---- TOML scenario files (tests/fixtures/scenarios/*.toml) --------------------------------

mod scenario {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        step: Vec<Step>,
    }

    /// One record applied (`event` with `flow` or `expect`), a resync boundary, or a
    /// `[step.check]` of the store's state; steps run in file order.
    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Step {
        event: Option<String>,
        flow: Option<FlowSpec>,
        expect: Option<ExpectSpec>,
        /// Store time; defaults to the step's index.
        now: Option<u32>,
        /// Expected `Change`, snake_case.
        change: Option<String>,
        /// `begin` or `end` (both tables).
        resync: Option<String>,
        swept: Option<usize>,
        check: Option<Check>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct FlowSpec {
        orig: String,
        #[serde(default)]
        zone: u16,
        #[serde(default)]
        id: u32,
        helper: Option<String>,
        status: Option<String>,
        state: Option<u8>,
        #[serde(default)]
        timeout: u32,
        master: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ExpectSpec {
        tuple: String,
        mask: String,
        master: String,
        #[serde(default)]
        zone: u16,
        helper: Option<String>,
        #[serde(default)]
        timeout: u32,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Check {
        flows: Option<usize>,
        expects: Option<usize>,
        #[serde(default)]
        flow: Vec<FlowCheck>,
        #[serde(default)]
        absent: Vec<KeySpec>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct KeySpec {
        orig: String,
        #[serde(default)]
        zone: u16,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct FlowCheck {
        orig: String,
        #[serde(default)]
        zone: u16,
        helper: Option<String>,
        state: Option<u8>,
        /// Master's original tuple, or `none` for no master in the store.
        master: Option<String>,
        orphan: Option<bool>,
        /// The expectation kept for a RELATED flow (its tuple), or `none`.
        expectation: Option<String>,
        /// Original tuples of the RELATED children, in any order.
        related: Option<Vec<String>>,
    }

    /// `tcp 10.0.0.1:40000 -> 10.0.0.2:21` (IPv6 in brackets), the form `Tuple` displays.
    fn parse_tuple(s: &str) -> Tuple {
        let (p, rest) = s.split_once(' ').expect("proto first");
        let (src, dst) = rest.split_once(" -> ").expect("src -> dst");
        tuple(
            proto::parse(p).expect("known proto"),
            src.trim(),
            dst.trim(),
        )
    }

    fn key(orig: &str, zone: u16) -> FlowKey {
        FlowKey::new(zone, parse_tuple(orig))
    }

    fn build_flow(s: &FlowSpec) -> Flow {
        let mut f = Flow::new(parse_tuple(&s.orig));
        f.zone = s.zone;
        f.id = s.id;
        f.timeout = s.timeout;
        if let Some(h) = &s.helper {
            f.helper = helper::intern(h);
        }
        if let Some(st) = &s.status {
            f.status = st
                .split(',')
                .map(|n| status::parse(n).unwrap_or_else(|| panic!("status {n}")))
                .fold(0, |a, b| a | b);
        }
        if let Some(st) = s.state {
            f.state = st;
        }
        if let Some(m) = &s.master {
            f.extra_mut().master = Some(parse_tuple(m));
        }
        f
    }

    fn build_expect(s: &ExpectSpec) -> Expectation {
        let mut e = Expectation::new(
            parse_tuple(&s.tuple),
            parse_tuple(&s.mask),
            parse_tuple(&s.master),
        );
        e.zone = s.zone;
        e.timeout = s.timeout;
        if let Some(h) = &s.helper {
            e.helper = helper::intern(h);
        }
        e
    }

    fn change_name(c: Change) -> &'static str {
        match c {
            Change::FlowAdded => "flow_added",
            Change::FlowUpdated => "flow_updated",
            Change::FlowRemoved => "flow_removed",
            Change::ExpectAdded => "expect_added",
            Change::ExpectUpdated => "expect_updated",
            Change::ExpectRemoved => "expect_removed",
            Change::Nothing => "nothing",
        }
    }

    fn run_check(s: &Store, c: &Check, ctx: &str) {
        if let Some(n) = c.flows {
            assert_eq!(s.flow_count(), n, "{ctx}: flow count");
        }
        if let Some(n) = c.expects {
            assert_eq!(s.expect_count(), n, "{ctx}: expectation count");
        }
        for a in &c.absent {
            assert!(
                s.flow(&key(&a.orig, a.zone)).is_none(),
                "{ctx}: {} present",
                a.orig
            );
        }
        for fc in &c.flow {
            let k = key(&fc.orig, fc.zone);
            let f = s
                .flow(&k)
                .unwrap_or_else(|| panic!("{ctx}: {} missing", fc.orig));
            if let Some(h) = &fc.helper {
                assert_eq!(
                    f.helper.name(),
                    Some(h.as_str()),
                    "{ctx}: {} helper",
                    fc.orig
                );
            }
            if let Some(st) = fc.state {
                assert_eq!(f.state, st, "{ctx}: {} state", fc.orig);
            }
            if let Some(m) = &fc.master {
                let got = s.master_of(&k).map(|m| m.orig);
                let want = (m != "none").then(|| parse_tuple(m));
                assert_eq!(got, want, "{ctx}: {} master", fc.orig);
            }
            if let Some(o) = fc.orphan {
                assert_eq!(s.is_orphan(&k), o, "{ctx}: {} orphan", fc.orig);
            }
            if let Some(e) = &fc.expectation {
                let got = s.expectation_of(&k).map(|e| e.tuple);
                let want = (e != "none").then(|| parse_tuple(e));
                assert_eq!(got, want, "{ctx}: {} expectation", fc.orig);
            }
            if let Some(r) = &fc.related {
                let mut got: Vec<Tuple> = s.related_of(&k).iter().map(|k| k.orig).collect();
                let mut want: Vec<Tuple> = r.iter().map(|t| parse_tuple(t)).collect();
                got.sort();
                want.sort();
                assert_eq!(got, want, "{ctx}: {} related", fc.orig);
            }
        }
    }

    fn run(path: &std::path::Path) {
        let text = std::fs::read_to_string(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let file: File = toml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut s = Store::new();
        let mut checks = 0;
        for (i, st) in file.step.iter().enumerate() {
            let ctx = format!("{name} step {}", i + 1);
            let now = st.now.unwrap_or(i as u32);
            if let Some(c) = &st.check {
                checks += 1;
                run_check(&s, c, &ctx);
                continue;
            }
            match st.resync.as_deref() {
                Some("begin") => s.begin_resync(),
                Some("end") => {
                    let gone = s.end_resync(true, true);
                    if let Some(w) = st.swept {
                        assert_eq!(gone, w, "{ctx}: swept");
                    }
                }
                Some(other) => panic!("{ctx}: resync {other}"),
                None => {
                    let event = match st.event.as_deref() {
                        Some("dump") => Event::Dump,
                        Some("new") => Event::New,
                        Some("update") => Event::Update,
                        Some("destroy") => Event::Destroy,
                        other => panic!("{ctx}: event {other:?}"),
                    };
                    let record = match (&st.flow, &st.expect) {
                        (Some(f), None) => Record::Flow(build_flow(f)),
                        (None, Some(e)) => Record::Expect(build_expect(e)),
                        _ => panic!("{ctx}: one of flow or expect"),
                    };
                    let got = s.apply(event, record, now);
                    if let Some(w) = &st.change {
                        assert_eq!(change_name(got), w, "{ctx}: change");
                    }
                }
            }
        }
        assert!(
            checks > 0,
            "{name}: a scenario without checks proves nothing"
        );
    }

    #[test]
    fn scenario_files() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scenarios");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        files.sort();
        assert!(files.len() >= 2, "scenario files in {}", dir.display());
        for f in files {
            run(&f);
        }
    }
}

/// An engine batch applied at once (`apply_records`: flows looked up in runs) leaves the
/// store exactly as applying its records one by one: repeats of a key inside a run, an
/// expectation between flows, a RELATED child before and after its master, DESTROYs.
#[test]
fn a_batch_applies_as_its_records_one_by_one() {
    let master = ftp_master();
    let exp = ftp_expect(&master, 50_000);
    let child = related(&master, 41_000, 50_000);
    let mut batch: Vec<(Event, Record)> = vec![(Event::New, Record::Flow(child.clone()))];
    for i in 0..100u16 {
        let f = flow(
            tcp(
                &format!("10.1.{}.{}:{}", i / 50, i % 50, 1000 + i),
                "10.2.0.1:80",
            ),
            u32::from(i),
        );
        batch.push((Event::New, Record::Flow(f.clone())));
        if i % 7 == 0 {
            let mut u = f.clone();
            u.state = 7;
            batch.push((Event::Update, Record::Flow(u)));
        }
        if i % 11 == 0 {
            batch.push((Event::Destroy, Record::Flow(destroy_of(&f))));
        }
        if i == 40 {
            batch.push((Event::New, Record::Flow(master.clone())));
            batch.push((Event::New, Record::Expect(exp.clone())));
        }
    }
    batch.push((Event::Destroy, Record::Flow(destroy_of(&master))));
    let mut one = Store::new();
    let mut changed = false;
    for (e, r) in batch.clone() {
        changed |= one.apply(e, r, 9) != Change::Nothing;
    }
    let mut runs = Store::new();
    assert_eq!(runs.apply_records(batch, 9), changed);
    let dump = |s: &Store| {
        let mut f: Vec<String> = s.flows().map(|f| format!("{f:?}")).collect();
        f.sort();
        let mut e: Vec<String> = s.expectations().map(|e| format!("{e:?}")).collect();
        e.sort();
        (f, e, s.generation(), format!("{:?}", s.stats()))
    };
    assert_eq!(dump(&runs), dump(&one));
    assert!(runs.flow_count() > 50);
    assert!(
        runs.master_of(&FlowKey::of(&child)).is_none(),
        "its master was destroyed"
    );
}
