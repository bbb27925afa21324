//! Risk through the store: an expectation's JSON values come from the store's view of its
//! master (NAT'd reply tuple included), and a RELATED flow inherits the freedom and findings
//! of the expectation that created it, after the kernel has dropped that expectation, and a
//! RELATED flow whose expectation the store never saw reads the same, judged from the flow.
//! Pure model logic on hand-built records: no kernel.

use ctscope::model::flow::status;
use ctscope::model::helper;
use ctscope::model::store::{FlowKey, Store};
use ctscope::model::tuple::{proto, Family};
use ctscope::model::{Event, Record};
use ctscope::model::{Expectation, Flow, Tuple};
use ctscope::risk::{Assessor, Config, HelperTable};
use serde_json::json;

fn tcp(src: &str, dst: &str) -> Tuple {
    let (sa, sp) = src.rsplit_once(':').unwrap();
    let (da, dp) = dst.rsplit_once(':').unwrap();
    let mut t = Tuple {
        family: Family::Ipv4,
        proto: proto::TCP,
        sport: sp.parse().unwrap(),
        dport: dp.parse().unwrap(),
        ..Tuple::default()
    };
    t.set_src_ip(sa.parse().unwrap());
    t.set_dst_ip(da.parse().unwrap());
    t
}

fn master() -> Flow {
    let mut f = Flow::new(tcp("10.213.5.2:40000", "10.213.5.1:21"));
    f.status = status::CONFIRMED | status::SEEN_REPLY | status::ASSURED;
    f.timeout = 300;
    f.state = 3;
    f.helper = helper::intern("ftp");
    f
}

/// What the ftp helper makes of `PORT 10,213,5,2,12,234` on that master.
fn forged(m: &Flow) -> Expectation {
    let t = tcp("10.213.5.1:0", "10.213.5.2:3306");
    let mut mask = t;
    mask.src = [0xff; 16];
    mask.dst = [0xff; 16];
    mask.sport = 0;
    mask.dport = 0xffff;
    let mut e = Expectation::new(t, mask, m.orig);
    e.helper = helper::intern("ftp");
    e.timeout = 300;
    e
}

fn assessor() -> Assessor {
    Assessor::new(HelperTable::embedded().unwrap(), Config::default(), None)
}

#[test]
fn expectation_json_and_related_flow_inheritance() {
    let mut s = Store::new();
    let m = master();
    s.apply(Event::New, Record::Flow(m.clone()), 1);
    let e = forged(&m);
    s.apply(Event::New, Record::Expect(e.clone()), 2);
    let a = assessor();
    let live = s.expectations().next().unwrap().clone();
    let (freedom, findings) = a.expectation_json(&s, &live);
    assert_eq!(
        freedom,
        json!({"src":"fixed","sport":"full","dst":"fixed","dport":"in_cmd"})
    );
    assert_eq!(findings[0]["kind"], "sensitive_port");
    assert!(findings[0]["fix"]
        .as_str()
        .unwrap()
        .contains("-m helper --helper ftp"));

    // The attacker connects: the kernel consumes the expectation, then reports the flow.
    s.apply(Event::Destroy, Record::Expect(e), 3);
    let mut rel = Flow::new(tcp("10.213.5.1:51000", "10.213.5.2:3306"));
    rel.status = status::EXPECTED | status::CONFIRMED;
    rel.timeout = 120;
    rel.extra_mut().master = Some(m.orig);
    s.apply(Event::New, Record::Flow(rel.clone()), 3);
    let key = FlowKey::of(&rel);
    assert!(s.expectation_of(&key).is_some(), "store links the origin");
    let (freedom, findings) = a.flow_json(&s, &key).expect("RELATED flow is assessed");
    assert_eq!(freedom["dport"], "in_cmd");
    assert_eq!(findings[0]["kind"], "sensitive_port");
    assert!(findings[0]["detail"]
        .as_str()
        .unwrap()
        .starts_with("RELATED flow"));
    // Flows that are not RELATED get nothing.
    assert!(a.flow_json(&s, &FlowKey::of(&m)).is_none());
}

#[test]
fn nat_reply_tuple_of_the_master_counts_as_fixed() {
    let mut s = Store::new();
    // SNAT: the server sees the client as 198.51.100.7:61000.
    let mut m = master();
    m.set_reply(tcp("10.213.5.1:21", "198.51.100.7:61000"));
    s.apply(Event::New, Record::Flow(m.clone()), 1);
    let mut e = forged(&m);
    e.tuple.set_dst_ip("198.51.100.7".parse().unwrap());
    e.tuple.dport = 50000;
    s.apply(Event::New, Record::Expect(e.clone()), 2);
    let a = assessor();
    let with_store = a.expectation(&s, s.expectations().next().unwrap());
    assert_eq!(with_store.freedom_json()["dst"], "fixed");
    assert!(with_store.findings.is_empty(), "{:#?}", with_store.findings);
    // Without the master flow the NAT address is indistinguishable from a third party.
    let alone = a.expectation(&Store::new(), &e);
    assert_eq!(alone.freedom_json()["dst"], "in_cmd");
    assert!(alone
        .findings
        .iter()
        .any(|f| f.kind == ctscope::risk::FindingKind::ThirdPartyAddress));
}

#[test]
fn a_burst_of_expectations_from_one_master_is_reported_in_one_pass() {
    let mut s = Store::new();
    let mut m = master();
    m.helper = helper::intern("irc");
    m.orig.dport = 6667;
    s.apply(Event::New, Record::Flow(m.clone()), 1);
    // Six DCC offers pending from one client: more than irc's normal four.
    for port in 5000..5006 {
        let mut e = forged(&m);
        e.helper = helper::intern("irc");
        e.mask.src = [0; 16];
        e.tuple.src = [0; 16];
        e.tuple.dport = port;
        s.apply(Event::New, Record::Expect(e), 2);
    }
    let all = assessor().all_expectations(&s);
    assert_eq!(all.len(), 6);
    for (key, a) in &all {
        assert_eq!(a.freedom_json()["src"], "full", "{key:?}");
        let kinds: Vec<_> = a.findings.iter().map(|f| f.kind).collect();
        assert_eq!(kinds, [ctscope::risk::FindingKind::ExpectationBurst]);
        // The one-at-a-time path agrees.
        let one = assessor().expectation(&s, s.expectation(key).unwrap());
        assert_eq!(&one, a);
    }
}

#[test]
fn a_related_flow_reads_the_same_whether_or_not_the_store_saw_its_expectation() {
    let m = master();
    let e = forged(&m);
    let mut rel = Flow::new(tcp("10.213.5.1:47000", "10.213.5.2:3306"));
    rel.status = status::EXPECTED | status::CONFIRMED;
    rel.extra_mut().master = Some(m.orig);
    let key = FlowKey::of(&rel);
    let a = assessor();

    // Watched: the expectation, its DESTROY, then the flow.
    let mut watched = Store::new();
    watched.apply(Event::New, Record::Flow(m.clone()), 1);
    watched.apply(Event::New, Record::Expect(e.clone()), 2);
    watched.apply(Event::Destroy, Record::Expect(e), 3);
    watched.apply(Event::New, Record::Flow(rel.clone()), 3);
    let by_exp = a.flow(&watched, &key).unwrap();
    assert_eq!(by_exp.from, ctscope::risk::RiskFrom::Expectation);

    // Started afterwards: one dump holds the master and the flow, never the expectation.
    let mut late = Store::new();
    late.apply(Event::Dump, Record::Flow(rel.clone()), 5);
    late.apply(Event::Dump, Record::Flow(m), 5);
    assert!(late.expectation_of(&key).is_none());
    let by_flow = a.flow(&late, &key).expect("judged from the flow");
    assert_eq!(by_flow.from, ctscope::risk::RiskFrom::Flow);

    assert_eq!(by_flow.freedom, by_exp.freedom);
    assert_eq!(by_flow.row, by_exp.row);
    let kinds =
        |x: &ctscope::risk::Assessment| x.findings.iter().map(|f| f.kind).collect::<Vec<_>>();
    assert_eq!(kinds(&by_flow), kinds(&by_exp));
    let j = ctscope::risk::RiskJson::of(&by_flow);
    assert_eq!(j.risk_from, "flow");
    assert_eq!(j.table["row"], "ftp data (loose=0)");
    assert_eq!(
        ctscope::risk::RiskJson::of(&by_exp).risk_from,
        "expectation"
    );
}
