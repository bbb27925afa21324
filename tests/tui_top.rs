//! The dashboard's table-pressure parts, driven by events only over the real store: the
//! Top screen (groups, rates from events, Enter to the group's flows, `F` flushes the
//! group through the planner), the stale key `Z` and `stale` filter terms, and the
//! header's expectation gauge, stale counts and kernel counter rates.

mod tui_support;

use ctscope::actions::Target;
use ctscope::engine::EngineEvent;
use ctscope::model::flow::status;
use ctscope::model::helper::intern;
use ctscope::model::stats::{CpuCounters, Stats};
use ctscope::model::store::ExpectKey;
use ctscope::model::tuple::proto;
use ctscope::model::{Expectation, Flow, Store};
use ctscope::tui::app::{AppEvent, Overlay};
use ctscope::tui::{Request, TuiOptions};
use insta::assert_snapshot;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tui_support::{ev, opts, plan_expects, plan_flows, tuple, Harness};

fn flow(src: &str, sport: u16, dst: &str, dport: u16, replied: bool) -> Flow {
    let mut f = Flow::new(tuple(proto::TCP, src, sport, dst, dport));
    f.state = 3;
    f.status = status::CONFIRMED | if replied { status::SEEN_REPLY } else { 0 };
    f.timeout = 431_999;
    f
}

/// 6 flows from 10.9.9.9 (2 UNREPLIED) and 3 from 10.7.7.7, each arriving as a NEW event
/// at store second 1, on an empty table; Top shown.
fn crowd() -> Harness {
    let mut h = Harness::new(Store::new(), opts(), 80, 24);
    for p in 0..6 {
        h.event(ev::flow(flow("10.9.9.9", 2000 + p, "10.0.0.1", 80, p >= 2)));
    }
    for p in 0..3 {
        h.event(ev::flow(flow("10.7.7.7", 3000 + p, "10.0.0.1", 443, true)));
    }
    h.ch('5');
    h
}

#[test]
fn top_counts_each_source_with_its_unreplied_share_and_event_rates() {
    let mut h = crowd();
    assert_eq!(h.app.tab(), "Top");
    let rows: Vec<(String, u64, u64)> = h
        .app
        .top_rows()
        .iter()
        .map(|r| (r.label.clone(), r.flows, r.unreplied))
        .collect();
    assert_eq!(rows, [("10.9.9.9".into(), 6, 2), ("10.7.7.7".into(), 3, 0)]);
    // Nine NEW events within the 10 s window: 0.6/s and 0.3/s.
    let r = &h.app.top_rows()[0];
    assert!((r.new_per_s - 0.6).abs() < 1e-9, "{r:?}");
    // A DESTROY is counted for the group of the flow the store held.
    h.event(ev::destroy(flow("10.7.7.7", 3000, "10.0.0.1", 443, true)));
    h.tick(1);
    let r = h
        .app
        .top_rows()
        .iter()
        .find(|r| r.label == "10.7.7.7")
        .unwrap();
    assert_eq!(r.flows, 2);
    assert!((r.destroyed_per_s - 0.1).abs() < 1e-9, "{r:?}");
    let s = h.screen();
    assert!(s.contains("10.9.9.9") && s.contains("33%"), "{s}");
    let head = s.lines().nth(3).unwrap_or("");
    assert!(
        head.starts_with("src "),
        "the group column names the key: {s}"
    );
}

#[test]
fn enter_on_a_group_shows_its_flows_and_f_flushes_exactly_the_group() {
    let mut h = crowd();
    h.key(KeyCode::Down);
    h.key(KeyCode::Enter);
    assert_eq!(h.app.tab(), "Flows");
    assert_eq!(h.app.filter_text(), Some("flow and src=10.7.7.7"));
    assert_eq!(h.app.flow_keys().len(), 3);
    // Back on Top (the filter now narrows Top too: one group), F plans the group's flows.
    h.key(KeyCode::Esc).ch('5').key(KeyCode::Home).ch('F');
    let Overlay::Confirm(c) = h.app.overlay().clone() else {
        panic!("no confirmation:\n{}", h.screen())
    };
    assert_eq!(c.plan.flows, 6);
    assert!(c.title.contains("src=10.9.9.9"), "{}", c.title);
    h.ch('y');
    let sent = plan_flows(&h.plans()[0]);
    assert_eq!(sent.len(), 6);
    assert!(sent
        .iter()
        .all(|k| k.orig.src_ip().to_string() == "10.9.9.9"));
}

/// Top counted under the dashboard's filter: Enter and F keep it, so the group flushed is
/// the group shown, not every flow of that source.
#[test]
fn a_group_under_a_filter_keeps_the_filter() {
    let mut h = crowd();
    h.event(ev::flow(flow("10.7.7.7", 3999, "10.0.0.1", 80, true)));
    h.ch('/').typed("dport=443").key(KeyCode::Enter);
    assert_eq!(h.app.top_rows()[0].flows, 3);
    h.ch('F');
    let Overlay::Confirm(c) = h.app.overlay().clone() else {
        panic!("{}", h.screen())
    };
    assert_eq!(c.plan.flows, 3, "not the fourth flow of 10.7.7.7 (port 80)");
    h.key(KeyCode::Esc).key(KeyCode::Enter);
    assert_eq!(
        h.app.filter_text(),
        Some("(dport=443) and (flow and src=10.7.7.7)")
    );
    assert_eq!(h.app.flow_keys().len(), 3);
}

#[test]
fn b_regroups_and_the_filter_narrows_the_groups() {
    let mut h = crowd();
    // Before the new grouping's pass is back, the empty table says it is counting, not
    // that there are no flows.
    h.app.handle(AppEvent::Key(KeyEvent::new(
        KeyCode::Char('b'),
        KeyModifiers::NONE,
    )));
    h.app.draw(&mut h.term).unwrap();
    assert!(
        h.screen().contains("counting the flows by dst…"),
        "{}",
        h.screen()
    );
    assert!(!h.screen().contains("no flows"), "{}", h.screen());
    h.draw();
    assert!(h.screen().contains("grouped by dst"), "{}", h.screen());
    let rows: Vec<(String, u64)> = h
        .app
        .top_rows()
        .iter()
        .map(|r| (r.label.clone(), r.flows))
        .collect();
    assert_eq!(rows, [("10.0.0.1".into(), 9)]);
    h.ch('b');
    h.ch('/').typed("dport=443").key(KeyCode::Enter);
    let rows: Vec<(String, u64)> = h
        .app
        .top_rows()
        .iter()
        .map(|r| (r.label.clone(), r.flows))
        .collect();
    assert_eq!(rows, [("tcp/443".into(), 3)]);
    // A group the language cannot name exactly refuses Enter and F with a reason.
    h.key(KeyCode::Esc);
    for _ in 0..4 {
        h.ch('b');
    }
    assert!(h.screen().contains("by helper"), "{}", h.screen());
    h.key(KeyCode::Enter);
    assert_eq!(h.app.tab(), "Top");
    assert!(h.screen().contains("no exact filter"), "{}", h.screen());
}

#[test]
fn top_snapshots() {
    let mut h = crowd();
    h.tick(1);
    assert_snapshot!("top_80x24", h.screen());
    h.term.backend_mut().resize(40, 20);
    h.draw();
    assert_snapshot!("top_40x20", h.screen());
}

/// An FTP control flow that is gone, its expectation still pending (master_gone), and
/// a live FTP session with its own pending expectation.
fn stale_scene(h: &mut Harness) -> (ExpectKey, ExpectKey) {
    let live_ctl = tuple(proto::TCP, "10.1.0.2", 40000, "10.1.0.1", 21);
    let gone_ctl = tuple(proto::TCP, "10.1.0.3", 40001, "10.1.0.1", 21);
    let mut m = Flow::new(live_ctl);
    m.state = 3;
    m.status = status::CONFIRMED | status::SEEN_REPLY | status::HELPER;
    m.helper = intern("ftp");
    m.timeout = 431_999;
    h.event(ev::flow(m));
    let mask = tuple(proto::TCP, "255.255.255.255", 0, "255.255.255.255", 0xffff);
    let exp = |master, port| {
        let mut e = Expectation::new(
            tuple(proto::TCP, "10.1.0.2", 0, "10.1.0.1", port),
            mask,
            master,
        );
        e.helper = intern("ftp");
        e.timeout = 290;
        e
    };
    let live = exp(live_ctl, 50000);
    let stale = exp(gone_ctl, 50001);
    h.event(ev::expect(live.clone()));
    h.event(ev::expect(stale.clone()));
    (ExpectKey::of(&live), ExpectKey::of(&stale))
}

#[test]
fn z_flushes_stale_helper_state_with_its_reasons_and_leaves_the_live_session() {
    let mut h = Harness::new(Store::new(), opts(), 100, 30);
    let (_live, stale) = stale_scene(&mut h);
    h.tick(1);
    assert!(h.screen().contains("stale ftp 0/1"), "{}", h.screen());
    h.ch('Z');
    let s = h.screen();
    assert!(s.contains("master_gone"), "{s}");
    let Overlay::Confirm(c) = h.app.overlay().clone() else {
        panic!("{s}")
    };
    assert_eq!((c.plan.flows, c.plan.expects), (0, 1));
    h.ch('y');
    assert_eq!(plan_expects(&h.plans()[0]), vec![stale]);
    assert!(h.plans()[0]
        .targets
        .iter()
        .all(|t| matches!(t, Target::Expect { .. })));
}

#[test]
fn a_stale_term_in_the_filter_bar_judges_with_the_store() {
    let mut h = Harness::new(Store::new(), opts(), 100, 30);
    let (_live, stale) = stale_scene(&mut h);
    h.ch('2')
        .ch('/')
        .typed("stale=master_gone")
        .key(KeyCode::Enter);
    assert_eq!(h.app.selected_expect(), Some(stale));
    assert!(h.screen().contains("1/2 match"), "{}", h.screen());
}

#[test]
fn the_header_gauges_expectations_and_shows_moving_kernel_counters_as_rates() {
    let o = TuiOptions {
        expect_max: Some(2),
        kernel_stats: true,
        ..opts()
    };
    let mut h = Harness::new(Store::new(), o, 100, 30);
    stale_scene(&mut h);
    h.tick(1);
    assert!(h.screen().contains("exp 2/2"), "{}", h.screen());
    // Each tick asks the engine; the answers become rates.
    assert!(h.sent.borrow().contains(&Request::Stats));
    let reading = |drop, insert| {
        EngineEvent::Stats(Ok(Box::new(Stats {
            cpus: vec![CpuCounters {
                cpu: 0,
                drop,
                insert,
                ..Default::default()
            }],
            ..Default::default()
        })))
    };
    h.event(reading(10, 100));
    h.tick(2);
    h.event(reading(16, 140));
    let s = h.screen();
    assert!(s.contains("drop 3/s"), "{s}");
    assert!(
        !s.lines().take(2).any(|l| l.contains("insert")),
        "normal activity stays out of the header: {s}"
    );
    // Top's strip lists every counter.
    h.ch('5');
    let s = h.screen();
    assert!(s.contains("insert 20") && s.contains("early_drop 0"), "{s}");
}

#[test]
fn a_live_dashboard_without_kernel_stats_asks_for_none() {
    let mut h = Harness::new(Store::new(), opts(), 80, 24);
    h.tick(1).tick(1);
    assert!(!h.sent.borrow().contains(&Request::Stats));
}
