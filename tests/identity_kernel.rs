//! The kernel's identity of an entry and plans as values, against the real kernel in a
//! throwaway namespace:
//! - six flows `10.1.0.3:10000 → 10.3.0.99:5201` that differ only by zone-orig (the
//!   shape nft_nat_zones.sh builds: one zone per ingress, masquerade keeping the reply
//!   tuples apart) are six entries for `list`, `--mark`, `delete` one by one and by filter,
//!   with conntrack(8)'s exit statuses;
//! - an entry deleted and re-created under the same identity between planning and
//!   executing survives, on the CLI path (a plan run with `execute_watched` over the
//!   subscription opened before the dump) and on the dashboard path (the real `App` over
//!   the real engine), whether the new entry reuses the kernel id or not.
//!
//! Root only (see `common::lab::privileged`); every table touched is the lab's own.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::lab::{privileged, Lab};
use ctscope::actions::{self, Context, Plan};
use ctscope::engine::{self, Engine, EngineEvent, Live, Options};
use ctscope::model::store::FlowKey;
use ctscope::model::Store;
use ctscope::model::{Event, Record};
use ctscope::netlink::Namespace;

const SUBNET: u8 = 17;

fn ctscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ctscope"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run ctscope")
}

/// The six zone-orig flows; `mark(z)` gives each one's mark.
fn six_flows(lab: &Lab, mark: impl Fn(u16) -> u16) {
    let mut lines = String::new();
    for z in 1..=6u16 {
        lines.push_str(&format!(
            "-I -p tcp -s 10.1.0.3 -d 10.3.0.99 --sport 10000 --dport 5201 \
             -r 10.3.0.99 -q 10.3.0.1 --reply-port-src 5201 --reply-port-dst {} \
             --state ESTABLISHED -u SEEN_REPLY,ASSURED -t 300 --orig-zone {z} --mark {}\n",
            30000 + z,
            mark(z)
        ));
    }
    lab.restore(&lab.srv, &lines);
}

fn conntrack_lines(lab: &Lab, args: &str) -> usize {
    let out = lab.sh(&lab.srv, &format!("conntrack -L {args} 2>/dev/null"));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

fn json_flows(out: &Output) -> Vec<serde_json::Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).expect("JSON array")
}

#[test]
fn six_flows_differing_only_by_zone_orig_are_six() {
    if !privileged("six_flows_differing_only_by_zone_orig_are_six") {
        return;
    }
    let lab = Lab::new("id", SUBNET);
    six_flows(&lab, |z| z % 3);
    assert_eq!(conntrack_lines(&lab, "-p tcp --dport 5201"), 6);

    // list: six entries, one per zone-orig.
    let all = json_flows(&ctscope(&[
        "--netns", &lab.srv, "list", "-p", "tcp", "--dport", "5201", "--json",
    ]));
    let mut zones: Vec<u64> = all
        .iter()
        .map(|f| f["zone_orig"].as_u64().expect("zone_orig"))
        .collect();
    zones.sort_unstable();
    assert_eq!(zones, [1, 2, 3, 4, 5, 6]);

    // --mark picks what conntrack -L -m picks.
    for m in 0..3 {
        let ours = json_flows(&ctscope(&[
            "--netns",
            &lab.srv,
            "list",
            "--mark",
            &m.to_string(),
            "--json",
        ]));
        assert_eq!(
            ours.len(),
            conntrack_lines(&lab, &format!("-m {m}")),
            "mark {m}"
        );
        assert_eq!(ours.len(), 2, "mark {m}");
    }

    // A plan whose entry vanished is judged by the kernel's answer for that identity.
    let ns = Namespace::parse(&lab.srv);
    let mut source = Live::open(&ns, false).unwrap();
    let mut store = Store::new();
    engine::load(&mut source, &mut store, 0).unwrap();
    assert_eq!(store.flow_count(), 6);
    let plan = Plan::flows(
        &store,
        &|f| f.dir_zones().0 == 3,
        "zone-orig 3",
        &Context::default(),
    );
    assert_eq!(plan.flows, 1);
    lab.sh_ok(
        &lab.srv,
        "conntrack -D -p tcp --dport 5201 --orig-zone 3 >/dev/null 2>&1",
    );
    let mut conn = ctscope::netlink::Conn::open(&ns).unwrap();
    let report = actions::execute(&mut conn, &plan);
    assert_eq!((report.removed, report.already_gone), (0, 1), "{report}");
    assert_eq!(conntrack_lines(&lab, "-p tcp --dport 5201"), 5);

    // Delete one by one, each by its own identity (the filter's zone_orig, and the zone
    // sent inside the tuple): exactly that one goes.
    lab.sh_ok(&lab.srv, "conntrack -F >/dev/null 2>&1");
    six_flows(&lab, |z| z % 3);
    for z in 1..=6u16 {
        let out = ctscope(&[
            "--netns",
            &lab.srv,
            "delete",
            "-p",
            "tcp",
            "--dport",
            "5201",
            "--filter",
            &format!("zone_orig={z}"),
            "--yes",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "zone {z}: {err}");
        assert!(err.contains("removed 1, already gone 0"), "zone {z}: {err}");
        assert_eq!(conntrack_lines(&lab, &format!("--orig-zone {z}")), 0);
        assert_eq!(conntrack_lines(&lab, "-p tcp --dport 5201"), 6 - z as usize);
    }

    // Then by filter: all six in one delete, exit 0 as conntrack -D.
    six_flows(&lab, |z| z % 3);
    let out = ctscope(&[
        "--netns", &lab.srv, "delete", "-p", "tcp", "--dport", "5201", "--yes",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("6 flows") && err.contains("removed 6, already gone 0"),
        "{err}"
    );
    assert_eq!(conntrack_lines(&lab, "-p tcp --dport 5201"), 0);

    // Nothing matched: exit 1, like conntrack -D.
    let out = ctscope(&[
        "--netns", &lab.srv, "delete", "-p", "tcp", "--dport", "5201", "--yes",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let conntrack = lab.sh(&lab.srv, "conntrack -D -p tcp --dport 5201");
    assert_eq!(conntrack.status.code(), Some(1));
}

/// The flow of one recycle trial.
fn trial_tuple(sport: u16) -> String {
    format!("-p tcp -s 10.1.0.3 -d 10.3.0.99 --sport {sport} --dport 5201")
}

fn insert(lab: &Lab, sport: u16) {
    lab.sh_ok(
        &lab.srv,
        &format!(
            "conntrack -I {} --state ESTABLISHED -u SEEN_REPLY,ASSURED -t 300 >/dev/null 2>&1",
            trial_tuple(sport)
        ),
    );
}

/// Delete the flow and create it again under the same identity.
fn recycle(lab: &Lab, sport: u16) {
    lab.sh_ok(
        &lab.srv,
        &format!("conntrack -D {} >/dev/null 2>&1", trial_tuple(sport)),
    );
    insert(lab, sport);
}

/// The kernel id of the trial flow, from `conntrack -L -o id`.
fn kernel_id(lab: &Lab, sport: u16) -> Option<u32> {
    let out = lab.sh_ok(
        &lab.srv,
        &format!("conntrack -L {} -o id 2>/dev/null", trial_tuple(sport)),
    );
    out.split_whitespace()
        .find_map(|w| w.strip_prefix("id="))
        .and_then(|v| v.parse().ok())
}

#[test]
fn a_recycled_entry_survives_a_cli_plan() {
    if !privileged("a_recycled_entry_survives_a_cli_plan") {
        return;
    }
    let lab = Lab::new("idcli", SUBNET);
    let ns = Namespace::parse(&lab.srv);
    let mut same_id = 0;
    // events=2 (the default: the planned flow predates the listener, so its end is
    // silent), then events=1; timestamps off, then on.
    for (round, (events, stamps)) in [(2, 0), (1, 0), (1, 1)].into_iter().enumerate() {
        lab.sh_ok(
            &lab.srv,
            &format!(
                "sysctl -qw net.netfilter.nf_conntrack_events={events} \
                 net.netfilter.nf_conntrack_timestamp={stamps}"
            ),
        );
        for i in 0..6u16 {
            let sport = 11000 + round as u16 * 100 + i;
            insert(&lab, sport);
            // As `ctscope delete`: subscribe, dump, catch up, plan.
            let mut source = Live::open(&ns, true).unwrap();
            let mut store = Store::new();
            engine::load(&mut source, &mut store, 0).unwrap();
            assert!(
                !actions::catch_up(&mut source, &mut store, 0).unwrap(),
                "no events lost"
            );
            let mut plan = Plan::flows(
                &store,
                &|f| f.orig.sport == sport,
                "trial",
                &Context::default(),
            );
            assert_eq!(plan.flows, 1);
            let before = kernel_id(&lab, sport).expect("planned flow");
            recycle(&lab, sport);
            let after = kernel_id(&lab, sport).expect("re-created flow");
            same_id += usize::from(before == after);
            let report = actions::execute_watched(&mut source, &mut plan);
            assert_eq!(
                (report.removed, report.recreated),
                (0, 1),
                "events={events} timestamp={stamps} trial {i}: {report}"
            );
            assert_eq!(
                kernel_id(&lab, sport),
                Some(after),
                "the re-created entry survives"
            );
        }
    }
    println!("re-created entries that reused the planned id: {same_id} of 18");
    // And an untouched plan still deletes.
    insert(&lab, 11999);
    let mut source = Live::open(&ns, true).unwrap();
    let mut store = Store::new();
    engine::load(&mut source, &mut store, 0).unwrap();
    assert!(!actions::catch_up(&mut source, &mut store, 0).unwrap());
    let mut plan = Plan::flows(&store, &|f| f.orig.sport == 11999, "t", &Context::default());
    let report = actions::execute_watched(&mut source, &mut plan);
    assert_eq!((report.removed, report.recreated), (1, 0), "{report}");
    assert_eq!(kernel_id(&lab, 11999), None);
}

/// After lost events (ENOBUFS) the plan cannot trust the stream: each flow is fetched
/// before its delete and compared by its start time (`nf_conntrack_timestamp=1`), so a
/// re-created entry survives even when it reused the kernel id.
#[test]
fn after_lost_events_each_flow_is_checked_with_a_get() {
    if !privileged("after_lost_events_each_flow_is_checked_with_a_get") {
        return;
    }
    let lab = Lab::new("idlost", SUBNET);
    let ns = Namespace::parse(&lab.srv);
    lab.sh_ok(
        &lab.srv,
        "sysctl -qw net.netfilter.nf_conntrack_events=1 net.netfilter.nf_conntrack_timestamp=1",
    );
    for sport in [13001u16, 13002] {
        insert(&lab, sport);
    }
    // Planned from a dump without a subscription, as if every event since was lost.
    let mut source = Live::open(&ns, false).unwrap();
    let mut store = Store::new();
    engine::load(&mut source, &mut store, 0).unwrap();
    let mut plan = Plan::flows(
        &store,
        &|f| f.orig.dport == 5201,
        "lost",
        &Context::default(),
    );
    assert_eq!(plan.flows, 2);
    plan.lives.lost = true;
    recycle(&lab, 13001);
    let report = actions::execute_watched(&mut source, &mut plan);
    assert_eq!((report.removed, report.recreated), (1, 1), "{report}");
    assert!(
        kernel_id(&lab, 13001).is_some(),
        "the re-created entry survives"
    );
    assert_eq!(kernel_id(&lab, 13002), None, "the untouched one went");
}

mod dashboard {
    use super::*;
    use ctscope::tui::live::EngineClock;
    use ctscope::tui::{App, AppEvent, TuiOptions};
    use ratatui::backend::TestBackend;
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use ratatui::Terminal;
    use std::sync::mpsc::Receiver;

    type LiveApp = App;

    fn key(app: &mut LiveApp, term: &mut Terminal<TestBackend>, code: KeyCode) {
        app.handle(AppEvent::Key(KeyEvent::new(code, KeyModifiers::NONE)));
        assert!(app.settle(Duration::from_secs(10)), "views settle");
        app.draw(term).unwrap();
    }

    /// Hand engine events to the app until `until` holds for one (checked first).
    fn pump(
        app: &mut LiveApp,
        rx: &Receiver<EngineEvent>,
        until: &mut dyn FnMut(&EngineEvent) -> bool,
    ) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ev = rx.recv_timeout(left).expect("engine event in time");
            let stop = until(&ev);
            app.handle(AppEvent::Engine(ev));
            if stop {
                return;
            }
        }
    }

    fn new_of(ev: &EngineEvent, sport: u16) -> bool {
        matches!(ev, EngineEvent::Records(b) if b.iter().any(|(e, r)| {
            *e == Event::New && matches!(r, Record::Flow(f) if f.orig.sport == sport)
        }))
    }

    fn select(app: &mut LiveApp, term: &mut Terminal<TestBackend>, sport: u16) -> FlowKey {
        key(app, term, KeyCode::Home);
        for _ in 0..=app.flow_keys().len() {
            if let Some(k) = app.selected_flow().filter(|k| k.orig.sport == sport) {
                return k;
            }
            key(app, term, KeyCode::Down);
        }
        panic!("flow {sport} not in view");
    }

    /// `d` on a flow; the flow is deleted and re-created; `y`. Run twice: once with the
    /// recycle's events reaching the dashboard while the dialog is open, once with them
    /// still on their way when `y` is pressed (the engine shows the plan what it missed).
    #[test]
    fn a_recycled_entry_survives_the_dashboard() {
        if !privileged("a_recycled_entry_survives_the_dashboard") {
            return;
        }
        let lab = Lab::new("idtui", SUBNET);
        lab.sh_ok(&lab.srv, "sysctl -qw net.netfilter.nf_conntrack_events=1");
        let ns = Namespace::parse(&lab.srv);
        let (rx, handle) =
            Engine::spawn(Box::new(Live::open(&ns, true).unwrap()), Options::default()).unwrap();
        let clock = Box::new(EngineClock::new(handle.clock()));
        let opts = TuiOptions {
            ssh: None,
            ..TuiOptions::default()
        };
        // The engine handle is where the app's confirmed plans go.
        let mut app = App::new(Store::new(), opts, clock, Box::new(handle));
        let mut term = Terminal::new(TestBackend::new(160, 30)).unwrap();
        pump(&mut app, &rx, &mut |e| {
            matches!(e, EngineEvent::DumpEnd { .. })
        });

        for (sport, events_first) in [(12001u16, true), (12002, false)] {
            insert(&lab, sport);
            pump(&mut app, &rx, &mut |e| new_of(e, sport));
            assert!(app.settle(Duration::from_secs(10)), "views settle");
            app.draw(&mut term).unwrap();
            let k = select(&mut app, &mut term, sport);
            key(&mut app, &mut term, KeyCode::Char('d'));
            let before = kernel_id(&lab, sport).unwrap();
            recycle(&lab, sport);
            let after = kernel_id(&lab, sport).unwrap();
            if events_first {
                pump(&mut app, &rx, &mut |e| new_of(e, sport));
                key(&mut app, &mut term, KeyCode::Char('y'));
                let status = app.status().map(|s| s.text.clone()).unwrap_or_default();
                assert!(
                    status.contains("nothing sent") && status.contains("1 re-created"),
                    "{status}"
                );
            } else {
                // Let the engine read the recycle, but keep it from the app until `y`.
                std::thread::sleep(Duration::from_millis(300));
                key(&mut app, &mut term, KeyCode::Char('y'));
                let mut report = None;
                pump(&mut app, &rx, &mut |e| {
                    if let EngineEvent::ActionDone(r) = e {
                        report = Some(r.clone());
                        true
                    } else {
                        false
                    }
                });
                let report = report.unwrap();
                assert_eq!((report.removed, report.recreated), (0, 1), "{report}");
                let status = app.status().map(|s| s.text.clone()).unwrap_or_default();
                assert!(
                    status.contains("re-created since planning 1 (kept)"),
                    "{status}"
                );
            }
            assert_eq!(
                kernel_id(&lab, sport),
                Some(after),
                "the re-created entry survives (id reused: {})",
                before == after
            );
            assert!(app.store.read().flow(&k).is_some());
        }
    }
}
