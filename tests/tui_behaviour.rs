//! Behaviour of the real `App`, driven by events only (keys, ticks, engine events) and
//! rendered into a TestBackend: selection, pause, sort, filter, jumps, every action's
//! confirmation and request, read-only mode, colours, monochrome, the visible-window
//! rule at a million flows, and keys answered while a view build holds the store.

mod tui_support;

use ctscope::model::flow::status;
use ctscope::model::helper::intern;
use ctscope::model::store::FlowKey;
use ctscope::model::tuple::proto;
use ctscope::model::Flow;
use ctscope::risk::Level;
use ctscope::tui::app::Overlay;
use ctscope::tui::theme::{Theme, ThemeKind};
use ctscope::tui::{AppEvent, ReplayRequest, ReplaySpeed, Request, TuiOptions};
use ratatui::crossterm::event::KeyCode;
use ratatui::style::{Color, Modifier};
use tui_support::{ev, expects_of, lab, opts, plan_expects, plan_flows, tuple, Harness, Scene};

fn key_of(src: &str, sport: u16, dst: &str, dport: u16, p: u8) -> FlowKey {
    FlowKey::new(0, tuple(p, src, sport, dst, dport))
}

fn select(h: &mut Harness, k: FlowKey) {
    h.key(KeyCode::Home);
    for _ in 0..h.app.flow_keys().len() {
        if h.app.selected_flow() == Some(k) {
            return;
        }
        h.key(KeyCode::Down);
    }
    panic!("flow {k:?} not in view");
}

fn ssh_key() -> FlowKey {
    key_of("10.213.4.100", 51000, "10.213.4.1", 22, proto::TCP)
}

#[test]
fn selection_follows_its_entry_while_the_table_changes() {
    let mut h = Harness::lab();
    h.draw();
    select(&mut h, ssh_key());
    let before = h.app.flow_keys().iter().position(|k| *k == ssh_key());
    // New flows that sort before the selection arrive.
    for port in 1..=3 {
        let f = Flow::new(tuple(proto::UDP, "10.0.0.1", port, "10.0.0.2", 53));
        h.event(ev::flow(f));
    }
    let after = h.app.flow_keys().iter().position(|k| *k == ssh_key());
    assert_eq!(after, before.map(|i| i + 3));
    assert_eq!(h.app.selected_flow(), Some(ssh_key()));
    let st = h.style_at("10.213.4.100:51000");
    assert!(st.add_modifier.contains(Modifier::BOLD), "{st:?}");
    assert_eq!(st.bg, Theme::new(ThemeKind::Dark).selected.bg);
    // The selected entry disappears: the selection stays at the same position.
    h.remove_flow(ssh_key());
    assert!(h.app.selected_flow().is_some());
    assert_ne!(h.app.selected_flow(), Some(ssh_key()));
}

#[test]
fn space_pauses_the_view_while_the_store_keeps_updating() {
    let mut h = Harness::lab();
    h.ch(' ');
    assert!(h.app.is_paused());
    assert!(h.screen().contains("PAUSED"));
    let n = h.app.flow_keys().len();
    h.event(ev::flow(Flow::new(tuple(
        proto::UDP,
        "10.0.0.1",
        1,
        "10.0.0.2",
        53,
    ))));
    assert_eq!(h.app.flow_keys().len(), n, "paused view must not change");
    assert!(h.screen().contains("flows 14/262,144"), "{}", h.screen());
    h.ch(' ');
    assert!(!h.screen().contains("PAUSED"));
    assert_eq!(h.app.flow_keys().len(), n + 1);
}

#[test]
fn sort_by_time_left_both_ways() {
    let mut h = Harness::lab();
    h.draw();
    // From the connection column to "Left" (display order: …, Mark, Left).
    for _ in 0..9 {
        h.ch('s');
    }
    assert!(h.screen().contains("Left▲"), "{}", h.screen());
    let left = |h: &Harness| -> Vec<u32> {
        h.app
            .flow_keys()
            .iter()
            .map(|k| h.app.store.read().flow(k).unwrap().timeout)
            .collect()
    };
    let asc = left(&h);
    assert!(asc.windows(2).all(|w| w[0] <= w[1]), "{asc:?}");
    h.ch('r');
    let desc = left(&h);
    assert!(desc.windows(2).all(|w| w[0] >= w[1]), "{desc:?}");
    assert!(h.screen().contains("Left▼"));
    h.ch('S');
    assert!(h.screen().contains("Mark▼") || h.screen().contains("sort Mark▼"));
}

#[test]
fn filter_counts_matches_and_a_bad_expression_keeps_the_previous_filter() {
    let mut h = Harness::lab();
    h.ch('/').typed("helper=ftp").key(KeyCode::Enter);
    assert_eq!(h.app.filter_text(), Some("helper=ftp"));
    assert_eq!(h.app.flow_keys().len(), 2);
    assert!(h.screen().contains("2/13 match"), "{}", h.screen());
    h.ch('/').typed(" and dprt=21").key(KeyCode::Enter);
    assert_eq!(h.app.filter_text(), Some("helper=ftp"));
    assert!(
        h.screen().contains("unknown field 'dprt'"),
        "{}",
        h.screen()
    );
    // The bad span is marked with the error style.
    let bar = h.screen().lines().count() as u16 - 1;
    let span = h.style_in_row(bar, "dprt");
    let want = Theme::new(ThemeKind::Dark).error_span;
    assert_eq!((span.fg, span.bg), (want.fg, want.bg));
    assert!(span.add_modifier.contains(Modifier::UNDERLINED));
    // The valid part of the expression is not marked.
    assert_eq!(h.style_in_row(bar, "helper").bg, Some(Color::Reset));
    h.key(KeyCode::Esc);
    assert!(h.screen().contains("2/13 match"));
    // Esc in the table clears the filter.
    h.key(KeyCode::Esc);
    assert_eq!(h.app.filter_text(), None);
    assert_eq!(h.app.flow_keys().len(), 13);
}

#[test]
fn m_jumps_from_a_related_flow_to_its_master_and_back() {
    let mut h = Harness::lab();
    h.draw();
    let data = key_of("10.213.4.2", 40002, "10.213.4.1", 50000, proto::TCP);
    let ctl = key_of("10.213.4.2", 40000, "10.213.4.1", 21, proto::TCP);
    select(&mut h, data);
    h.ch('m');
    assert_eq!(h.app.selected_flow(), Some(ctl));
    h.ch('m');
    assert_eq!(h.app.selected_flow(), Some(data));
    // The same in the chains tree.
    h.ch('3');
    let rows = h.app.chain_rows().to_vec();
    let i = rows
        .iter()
        .position(|r| r.flow_key() == Some(data))
        .expect("data flow in chains");
    h.key(KeyCode::Home);
    for _ in 0..i {
        h.key(KeyCode::Down);
    }
    h.ch('m');
    assert!(h
        .screen()
        .lines()
        .any(|l| l.contains("● tcp 10.213.4.2:40000")));
    h.key(KeyCode::Enter);
    assert!(
        h.screen()
            .contains("children 1 expectation(s), 1 RELATED flow(s)"),
        "{}",
        h.screen()
    );
}

#[test]
fn chains_selection_follows_its_row_when_siblings_arrive() {
    let mut h = Harness::lab();
    h.ch('3');
    let data = key_of("10.213.4.2", 40002, "10.213.4.1", 50000, proto::TCP);
    let i = h
        .app
        .chain_rows()
        .iter()
        .position(|r| r.flow_key() == Some(data))
        .unwrap();
    for _ in 0..i {
        h.key(KeyCode::Down);
    }
    // Another expectation of the same master (listed before its RELATED flows: the row
    // moves down) and a second RELATED flow sorting after it (it is no longer the last
    // child, so its tree corner changes).
    let ctl = tuple(proto::TCP, "10.213.4.2", 40000, "10.213.4.1", 21);
    let mut e = expects_of(&h.app.store.read())[0].clone();
    e.master = ctl;
    e.tuple = tuple(proto::TCP, "10.213.4.2", 0, "10.213.4.1", 50020);
    e.helper = intern("ftp");
    // Both arrive before the next frame.
    h.app.handle(AppEvent::Engine(ev::expect(e)));
    let mut f = Flow::new(tuple(proto::TCP, "10.213.4.2", 40003, "10.213.4.1", 50010));
    f.status = status::EXPECTED | status::CONFIRMED;
    f.extra_mut().master = Some(ctl);
    h.event(ev::flow(f));
    let rows = h.app.chain_rows().to_vec();
    let now_at = rows
        .iter()
        .position(|r| r.flow_key() == Some(data))
        .unwrap();
    assert_eq!(now_at, i + 1);
    h.key(KeyCode::Enter);
    assert!(
        h.screen()
            .contains("original 10.213.4.2:40002 → 10.213.4.1:50000"),
        "{}",
        h.screen()
    );
}

#[test]
fn delete_selected_flow_goes_through_a_confirmation_and_reports() {
    let mut h = Harness::lab();
    h.draw();
    let dns = key_of("10.213.4.2", 53000, "10.213.4.53", 53, proto::UDP);
    select(&mut h, dns);
    h.ch('d');
    match h.app.overlay() {
        Overlay::Confirm(c) => {
            assert_eq!(c.flow_keys(), vec![dns]);
            assert_eq!((c.plan.flows, c.plan.related, c.plan.masters), (1, 0, 0));
        }
        other => panic!("no confirmation: {other:?}"),
    }
    assert!(h.screen().contains("1 flow(s): 0 RELATED, 0 master(s)"));
    assert!(h.sent.borrow().is_empty(), "nothing goes before confirming");
    h.ch('y');
    // The very plan the dialog showed.
    let plans = h.plans();
    assert_eq!(plans.len(), 1);
    assert_eq!(plan_flows(&plans[0]), vec![dns]);
    h.event(ev::report(1, 0, 0));
    assert!(h.screen().contains("removed 1, already gone 0, refused 0"));
}

#[test]
fn cancel_sends_nothing() {
    let mut h = Harness::lab();
    h.ch('X').ch('n');
    assert!(h.sent.borrow().is_empty());
    assert_eq!(*h.app.overlay(), Overlay::None);
    assert!(h.screen().contains("cancelled"));
}

#[test]
fn flush_everything_leaves_the_ssh_session_out_unless_included() {
    let mut h = Harness::lab();
    h.ch('X');
    let Overlay::Confirm(c) = h.app.overlay().clone() else {
        panic!()
    };
    assert_eq!(c.ssh(), Some(ssh_key()));
    assert_eq!(
        (
            c.effective_flows(),
            c.plan.related,
            c.plan.masters,
            c.plan.expects
        ),
        (12, 2, 5, 4)
    );
    assert!(!c.plan.warnings.is_empty(), "tcp_loose=0 warns");
    h.ch('i');
    assert!(h.screen().contains("INCLUDED: this cuts your own session"));
    h.ch('i').ch('y');
    // Exactly the entries the dialog counted, the SSH flow left out.
    let plans = h.plans();
    let (flows, expects) = (plan_flows(&plans[0]), plan_expects(&plans[0]));
    assert_eq!((flows.len(), expects.len()), (12, 4));
    assert!(!flows.contains(&ssh_key()));
    h.ch('X').ch('i').ch('y');
    let flows = plan_flows(&h.plans()[1]);
    assert_eq!(flows.len(), 13);
    assert!(flows.contains(&ssh_key()));
}

#[test]
fn flush_filtered_flows_sends_the_filter_text() {
    let mut h = Harness::lab();
    h.ch('/').typed("proto=tcp").key(KeyCode::Enter);
    h.ch('F');
    let Overlay::Confirm(c) = h.app.overlay().clone() else {
        panic!()
    };
    // Eight TCP flows match; the SSH one is left out.
    assert_eq!(c.plan.flows + c.spared.len(), 8);
    assert_eq!(c.plan.related, 1);
    h.ch('y');
    let plan = &h.plans()[0];
    assert!(plan.what.contains("'proto=tcp'"), "{}", plan.what);
    let flows = plan_flows(plan);
    // The flows counted when the dialog opened, the SSH flow left out.
    assert_eq!(flows.len(), 7);
    assert!(!flows.contains(&ssh_key()));
}

#[test]
fn flush_the_selected_helpers_expectations() {
    let mut h = Harness::lab();
    h.ch('2');
    // Expectations sorted by time left: sip, irc, ftp, ftp.
    h.key(KeyCode::End).ch('H');
    let Overlay::Confirm(c) = h.app.overlay().clone() else {
        panic!()
    };
    assert_eq!(c.plan.expects, 2);
    assert!(h
        .screen()
        .contains("Flush the expectations of helper 'ftp'"));
    h.ch('y');
    assert_eq!(
        h.plans()[0].targets,
        vec![ctscope::actions::Target::FlushHelper("ftp".into())]
    );
}

#[test]
fn delete_a_masters_related_children() {
    let mut h = Harness::lab();
    h.draw();
    let ctl = key_of("10.213.4.2", 40000, "10.213.4.1", 21, proto::TCP);
    let data = key_of("10.213.4.2", 40002, "10.213.4.1", 50000, proto::TCP);
    select(&mut h, ctl);
    h.ch('D').ch('y');
    assert_eq!(plan_flows(&h.plans()[0]), vec![data]);
}

#[test]
fn read_only_removes_every_action() {
    let o = TuiOptions {
        read_only: true,
        ..opts()
    };
    let mut h = Harness::new(lab(), o, 80, 24);
    for c in ['d', 'D', 'F', 'H', 'X'] {
        h.ch(c);
        assert_eq!(*h.app.overlay(), Overlay::None);
    }
    assert!(h.sent.borrow().is_empty());
    assert!(h.screen().contains("read-only mode"));
    h.ch('?');
    let help = h.screen();
    assert!(!help.contains("flush"), "{help}");
    assert!(help.contains("quit"));
}

#[test]
fn related_rows_take_their_helpers_colour_and_risk_badges_their_freedoms() {
    let mut h = Harness::new(lab(), opts(), 120, 24);
    h.draw();
    let dark = Theme::new(ThemeKind::Dark);
    let tftp_row = h.style_at("10.213.4.1:50200");
    assert_eq!(tftp_row.fg, dark.helper("tftp").fg);
    assert!(tftp_row.add_modifier.contains(Modifier::BOLD));
    let ftp_row = h.style_at("10.213.4.2:40002");
    assert_eq!(ftp_row.fg, dark.helper("ftp").fg);
    assert_ne!(ftp_row.fg, tftp_row.fg);
    let badge = h.style_at("IN-CMD");
    assert_eq!(badge.fg, dark.freedom(Level::InCmd).fg);
    // A plain flow is not coloured.
    assert_eq!(h.style_at("10.213.4.2:53000").fg, Some(Color::Reset));
    h.ch('2');
    let full = h.style_at("FULL");
    assert_eq!(full.bg, dark.freedom(Level::Full).bg);
    assert_eq!(h.style_at("irc ").fg, dark.helper("irc").fg);
    // Colour is never the only signal: name and badge are text.
    assert!(h.screen().contains("irc    FULL"));
}

#[test]
fn every_colour_theme_colours_helpers_apart_and_t_cycles_them() {
    let mut h = Harness::new(lab(), opts(), 120, 24);
    h.draw();
    for kind in [
        ThemeKind::Light,
        ThemeKind::Ansi16,
        ThemeKind::Mono,
        ThemeKind::Dark,
    ] {
        h.ch('t');
        assert!(
            h.screen().contains(&format!("theme: {}", kind.name())),
            "{}",
            h.screen()
        );
        let t = Theme::new(kind);
        let tftp = h.style_at("10.213.4.1:50200");
        let ftp = h.style_at("10.213.4.2:40002");
        assert_eq!(tftp.fg, t.helper("tftp").fg.or(Some(Color::Reset)));
        assert_eq!(ftp.fg, t.helper("ftp").fg.or(Some(Color::Reset)));
        if kind != ThemeKind::Mono {
            assert_ne!(tftp.fg, ftp.fg, "{kind:?}");
        }
        assert!(
            tftp.add_modifier.contains(Modifier::BOLD),
            "RELATED is bold in {kind:?}"
        );
    }
}

#[test]
fn monochrome_theme_uses_no_colour_at_all() {
    let o = TuiOptions {
        theme: ThemeKind::choose("auto", None, Some("1"), Default::default()),
        ..opts()
    };
    let mut h = Harness::new(lab(), o, 100, 24);
    for keys in ["", "2", "3", "?"] {
        for c in keys.chars() {
            h.ch(c);
        }
        h.draw();
        let buf = h.term.backend().buffer();
        for cell in buf.content() {
            assert_eq!(cell.fg, Color::Reset, "fg colour in mono: {cell:?}");
            assert_eq!(cell.bg, Color::Reset, "bg colour in mono: {cell:?}");
        }
    }
    let mut h = Harness::new(
        lab(),
        TuiOptions {
            theme: ThemeKind::Mono,
            ..opts()
        },
        100,
        24,
    );
    h.ch('2');
    let full = h.style_at("FULL");
    assert!(full
        .add_modifier
        .contains(Modifier::REVERSED | Modifier::BOLD));
}

#[test]
fn an_overrun_shows_in_the_header_and_the_status_line() {
    let mut h = Harness::lab();
    h.draw();
    assert!(h.screen().contains("resyncs 0"));
    h.event(ctscope::engine::EngineEvent::Overrun);
    let s = h.screen();
    assert!(s.contains("resyncs 1"), "{s}");
    assert!(s.contains("kernel dropped events (ENOBUFS)"), "{s}");
    let dark = Theme::new(ThemeKind::Dark);
    assert_eq!(h.style_at("resyncs 1").fg, dark.warn.fg);
}

#[test]
fn resize_round_trip_draws_the_same_screen() {
    let mut h = Harness::lab();
    h.draw();
    let before = h.screen();
    h.resize(40, 12).resize(200, 50).resize(80, 24);
    assert_eq!(h.screen(), before);
}

#[test]
fn signals_and_quit_key_end_the_app() {
    let mut h = Harness::lab();
    h.app.handle(AppEvent::Signal(libc::SIGHUP));
    assert!(h.app.should_quit());
    let mut h = Harness::lab();
    h.ch('q');
    assert!(h.app.should_quit());
    // Ctrl-C quits even while the filter bar or a dialog has the keys.
    for open in ["/", "X", "?"] {
        let mut h = Harness::lab();
        h.typed(open);
        h.app
            .handle(AppEvent::Key(ratatui::crossterm::event::KeyEvent::new(
                KeyCode::Char('c'),
                ratatui::crossterm::event::KeyModifiers::CONTROL,
            )));
        assert!(h.app.should_quit(), "after '{open}'");
        assert!(h.sent.borrow().is_empty());
    }
}

#[test]
fn a_million_flows_become_only_the_visible_rows() {
    let mut m = Scene::default();
    let ftp = intern("ftp");
    for i in 0..1_000_000u32 {
        let mut t = tuple(proto::TCP, "10.0.0.1", 0, "10.1.0.1", 80);
        t.src[1] = (i >> 16) as u8;
        t.src[2] = (i >> 8) as u8;
        t.src[3] = i as u8;
        t.sport = 1024 + (i % 50_000) as u16;
        let mut f = Flow::new(t);
        f.status = status::CONFIRMED | status::SEEN_REPLY;
        f.timeout = i % 432_000;
        if i % 1000 == 0 {
            f.helper = ftp;
        }
        m.add_flow(f);
    }
    let mut h = Harness::new(m, opts(), 80, 24);
    h.draw();
    assert_eq!(h.app.flow_keys().len(), 1_000_000);
    // 24 lines: 2 header, 1 tabs, 1 footer, 1 table header → 19 rows.
    assert_eq!(h.app.frame_stats().table_rows, 19);
    h.key(KeyCode::PageDown).key(KeyCode::End);
    assert_eq!(h.app.frame_stats().table_rows, 19);
    // Six tabs fill the tab line at 80 columns: the flows tab carries the count whole.
    let s = h.screen();
    assert!(s.contains("1 Flows 1,000,000"), "{s}");
    // New data reaches the view without waiting for a tick: the view builder rebuilds it
    // off the main thread (paced in production, at once here) and the harness waits.
    h.event(ev::flow(Flow::new(tuple(
        proto::UDP,
        "10.9.9.9",
        1,
        "10.1.0.1",
        53,
    ))));
    assert_eq!(h.app.flow_keys().len(), 1_000_001);
    // While a dump streams, its rows are shown as they come, and the header says so.
    h.event(ev::dump(true));
    assert!(h.screen().contains("dumping…"));
    h.event(ev::flow(Flow::new(tuple(
        proto::UDP,
        "10.9.9.9",
        2,
        "10.1.0.1",
        53,
    ))));
    assert_eq!(h.app.flow_keys().len(), 1_000_002);
    h.event(ev::dump(false));
    assert_eq!(h.app.flow_keys().len(), 1_000_002);
    assert!(!h.screen().contains("dumping…"));
    // A settings change rebuilds at once.
    h.ch('r');
    assert_eq!(h.app.flow_keys()[0].orig.src[..4], [10, 15, 66, 63]);
    assert_eq!(h.app.frame_stats().table_rows, 19);
}

#[test]
fn tiny_terminals_never_panic_on_any_screen() {
    for (w, hgt) in [(1, 1), (10, 5), (20, 8), (40, 12), (300, 3)] {
        for keys in ["", "?", "X", "d", "2\n", "3\n", "1\n", "/x"] {
            let mut h = Harness::new(lab(), opts(), w, hgt);
            h.draw();
            for c in keys.chars() {
                if c == '\n' {
                    h.key(KeyCode::Enter);
                } else {
                    h.ch(c);
                }
            }
            h.resize(w + 1, hgt + 1).resize(w, hgt);
        }
    }
}

#[test]
fn chains_keep_a_whole_chain_when_any_member_matches_the_filter() {
    let mut h = Harness::lab();
    h.ch('/').typed("helper=irc").key(KeyCode::Enter).ch('3');
    let s = h.screen();
    assert!(
        s.contains("● tcp 10.213.4.2:40100 → 10.213.4.9:6667"),
        "{s}"
    );
    assert!(s.contains("└─ expect any:any → 10.213.4.2:5000"), "{s}");
    assert!(!s.contains(":21"), "other chains are filtered out: {s}");
    // At 80 columns the tab line keeps the match count whole and lets the filter's text
    // go (the status line shows it); the filter is the one typed.
    assert!(s.contains("1/5 match"), "{s}");
    assert_eq!(h.app.filter_text(), Some("helper=irc"));
    h.key(KeyCode::Esc);
    assert_eq!(
        h.app
            .chain_rows()
            .iter()
            .filter(|r| matches!(r, ctscope::tui::screens::chains::ChainRow::Master(_)))
            .count(),
        5
    );
}

/// No SSH session known (e.g. under sudo in a container without the process tree), but
/// sshd listens on :22: every flow to it is left out of `X` unless `i` includes them.
#[test]
fn without_a_session_flows_to_the_local_sshd_are_spared() {
    let o = TuiOptions {
        ssh: None,
        sshd: vec![ctscope::ssh::Listener {
            addr: None,
            port: 22,
        }],
        ..opts()
    };
    let mut h = Harness::new(tui_support::lab(), o, 120, 40);
    h.ch('X');
    let Overlay::Confirm(c) = h.app.overlay().clone() else {
        panic!("no dialog")
    };
    assert!(c.spared_sshd);
    assert!(c.spared.contains(&ssh_key()), "{:?}", c.spared);
    assert!(c.spared.iter().all(|k| k.orig.dport == 22));
    assert!(c.flow_keys().iter().all(|k| !c.spared.contains(k)));
    assert!(
        h.screen().contains("to the local sshd EXCLUDED"),
        "{}",
        h.screen()
    );
    h.ch('y');
    assert!(!plan_flows(&h.plans()[0]).contains(&ssh_key()));
    // `i` includes them.
    h.ch('X').ch('i').ch('y');
    assert!(plan_flows(&h.plans()[1]).contains(&ssh_key()));
}

/// Options for a replay: the recording's start makes the app a replay viewer.
fn replay_opts() -> TuiOptions {
    TuiOptions {
        recorded_start: Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_763_701_200)),
        ..opts()
    }
}

fn replay_requests(h: &Harness) -> Vec<ReplayRequest> {
    h.sent
        .borrow()
        .iter()
        .map(|r| match r {
            Request::Replay(q) => *q,
            other => panic!("not a replay request: {other:?}"),
        })
        .collect()
}

#[test]
fn replay_keys_steer_the_replay_clock_and_the_header_shows_position_and_pace() {
    let mut h = Harness::new(lab(), replay_opts(), 100, 24);
    h.tick(4);
    let first = h.screen().lines().next().unwrap_or_default().to_owned();
    // The manual clock stands at 5 s: whole seconds and the starting pace.
    assert!(first.contains("at 5s 1x"), "{first}");
    assert!(!first.contains("held"), "{first}");

    // p holds the replay clock; the view is not paused (that is space).
    h.ch('p');
    let first = h.screen().lines().next().unwrap_or_default().to_owned();
    assert!(first.contains("at 5s 1x held"), "{first}");
    assert!(!first.contains("PAUSED"), "{first}");
    assert_eq!(replay_requests(&h), [ReplayRequest::TogglePause]);

    // . steps one frame while held; x cycles the pace 1x → 10x → fast → 1x.
    h.ch('.').ch('x');
    h.draw();
    assert!(h.screen().contains("at 5s 10x held"), "{}", h.screen());
    h.ch('x');
    h.draw();
    assert!(h.screen().contains("at 5s fast held"), "{}", h.screen());
    h.ch('x');
    // p again lets it run.
    h.ch('p');
    h.tick(1);
    let first = h.screen().lines().next().unwrap_or_default().to_owned();
    assert!(first.contains("at 6s 1x"), "{first}");
    assert!(!first.contains("held"), "{first}");

    // e plays the rest at once.
    h.ch('e');
    h.draw();
    assert!(h.screen().contains("at 6s fast"), "{}", h.screen());
    assert_eq!(
        replay_requests(&h),
        [
            ReplayRequest::TogglePause,
            ReplayRequest::Step,
            ReplayRequest::Speed(ReplaySpeed::Ten),
            ReplayRequest::Speed(ReplaySpeed::Fast),
            ReplayRequest::Speed(ReplaySpeed::Normal),
            ReplayRequest::TogglePause,
            ReplayRequest::End,
        ]
    );

    // Space still pauses the view only: no request, and the clock stays as it was.
    h.ch(' ');
    h.draw();
    assert!(h.screen().contains("PAUSED"), "{}", h.screen());
    assert_eq!(replay_requests(&h).len(), 7);

    // After the end, the keys say so instead of sending to an engine that is gone.
    h.app.handle(AppEvent::SourceEnded);
    h.ch('p');
    assert_eq!(replay_requests(&h).len(), 7);
    let status = format!("{:?}", h.app.status());
    assert!(status.contains("the replay has ended"), "{status}");
}

#[test]
fn a_step_while_the_replay_runs_holds_it_first() {
    let mut h = Harness::new(lab(), replay_opts(), 100, 24);
    h.ch('.');
    h.draw();
    assert!(h.screen().contains("1x held"), "{}", h.screen());
    assert_eq!(
        replay_requests(&h),
        [ReplayRequest::TogglePause, ReplayRequest::Step]
    );
}

#[test]
fn replay_keys_on_the_live_table_send_nothing_and_say_why() {
    let mut h = Harness::lab();
    for c in ['p', '.', 'e', 'x'] {
        h.ch(c);
        let status = format!("{:?}", h.app.status());
        assert!(status.contains("not a replay"), "{c}: {status}");
    }
    assert!(h.sent.borrow().is_empty());
    h.draw();
    assert!(!h.screen().contains(" 1x"), "{}", h.screen());
}

/// An assessor whose full reassessment, while `closed`, waits at a gate until the test
/// opens it (or 10 s pass, so a dashboard that wrongly waits for builds fails the test's
/// time check instead of hanging): a build that holds the store's read lock for as long
/// as the test wants (risk is a view-builder job whose scan is the assessment).
struct GatedAssessor {
    inner: ctscope::risk::Assessor,
    closed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
    entered: std::sync::mpsc::Sender<()>,
}

impl ctscope::tui::risk::Assess for GatedAssessor {
    fn expectations(
        &self,
        store: &ctscope::model::Store,
    ) -> Vec<(ctscope::model::store::ExpectKey, ctscope::risk::Assessment)> {
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            let _ = self.entered.send(());
            if let Ok(open) = self.open.lock() {
                let _ = open.recv_timeout(std::time::Duration::from_secs(10));
            }
        }
        self.inner.all_expectations(store)
    }
    fn flow(
        &self,
        store: &ctscope::model::Store,
        key: &FlowKey,
    ) -> Option<ctscope::risk::Assessment> {
        self.inner.flow(store, key)
    }
}

#[test]
fn keys_are_answered_while_a_build_holds_the_store() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Arc, Mutex};
    use std::time::{Duration, Instant};
    let closed = Arc::new(AtomicBool::new(false));
    let (opener, open) = mpsc::channel();
    let (entered, builds) = mpsc::channel();
    let assessor = GatedAssessor {
        inner: ctscope::risk::Assessor::new(
            ctscope::risk::HelperTable::embedded().unwrap(),
            ctscope::risk::Config::default(),
            None,
        ),
        closed: closed.clone(),
        open: Mutex::new(open),
        entered,
    };
    let mut h = Harness::with_assessor(lab(), opts(), 100, 30, Box::new(assessor));
    h.draw();
    let before = h.app.selected_flow();
    let frames = h.app.frame_stats().frames;
    // Close the gate, then change the store: the next risk build starts and waits there,
    // holding the store's read lock.
    closed.store(true, Ordering::SeqCst);
    h.app.handle(AppEvent::Engine(ev::flow(Flow::new(tuple(
        proto::UDP,
        "10.77.0.1",
        5353,
        "10.1.0.1",
        53,
    )))));
    h.app.draw(&mut h.term).unwrap();
    builds
        .recv_timeout(Duration::from_secs(30))
        .expect("a risk build reached the gate");
    // A key while the build runs: handled and drawn at once, without waiting for it.
    let t = Instant::now();
    h.app
        .handle(AppEvent::Key(ratatui::crossterm::event::KeyEvent::new(
            KeyCode::Down,
            ratatui::crossterm::event::KeyModifiers::NONE,
        )));
    h.app.draw(&mut h.term).unwrap();
    assert_ne!(h.app.selected_flow(), before, "the selection moved");
    assert!(h.app.frame_stats().frames > frames + 1, "a frame was drawn");
    // Engine records meanwhile are queued behind the build, not waited for.
    h.app.handle(AppEvent::Engine(ev::flow(Flow::new(tuple(
        proto::UDP,
        "10.77.0.2",
        5353,
        "10.1.0.1",
        53,
    )))));
    h.app.draw(&mut h.term).unwrap();
    assert!(h.app.store.pending() > 0, "the update waits for the build");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "keys and frames waited {:?}",
        t.elapsed()
    );
    // Once the build ends, the queue is applied and the views catch up.
    closed.store(false, Ordering::SeqCst);
    opener.send(()).unwrap();
    h.settle();
    assert_eq!(h.app.store.pending(), 0);
    let shown = |h: &Harness, a: &str| {
        h.app
            .flow_keys()
            .iter()
            .any(|k| k.orig.src_ip().to_string() == a)
    };
    assert!(shown(&h, "10.77.0.1") && shown(&h, "10.77.0.2"));
}

/// During the first dump the header's entry counts follow the store at every frame,
/// though the summary's pass is not rebuilt at the data pace until the dump ends.
#[test]
fn the_first_dump_counts_flows_in_the_header_as_they_arrive() {
    use ctscope::model::{Event, Record};
    let mut h = Harness::new(Scene::default(), opts(), 100, 24);
    h.draw();
    h.event(ev::dump(true));
    for i in 1..=3u16 {
        let mut f = Flow::new(tuple(proto::TCP, "10.5.0.1", 1000 + i, "10.1.0.1", 80));
        f.timeout = 300;
        h.event(ev::record(Event::Dump, Record::Flow(f)));
        let head: String = h.screen().lines().take(2).collect();
        assert!(head.contains(&format!("flows {i}/")), "{head}");
    }
    h.event(ev::dump(false));
    let head: String = h.screen().lines().take(2).collect();
    assert!(
        head.contains("flows 3/") && !head.contains("dumping"),
        "{head}"
    );
}

/// A dump's first records are drawn at once (the frame asks for the first rows), not at
/// the data pace: the first rows are what the admin waits for. Once rows show, a batch
/// only marks the store as moved, for the next data frame.
#[test]
fn a_dumps_first_records_draw_at_once_and_later_ones_at_the_data_pace() {
    use ctscope::model::{Event, Record};
    let mut h = Harness::new(Scene::default(), opts(), 100, 24);
    h.draw();
    h.event(ev::dump(true));
    let flow = |port: u16| {
        let mut f = Flow::new(tuple(proto::TCP, "10.5.0.1", port, "10.1.0.1", 80));
        f.timeout = 300;
        AppEvent::Engine(ev::record(Event::Dump, Record::Flow(f)))
    };
    assert!(!h.app.needs_draw());
    h.app.handle(flow(1001));
    assert!(h.app.needs_draw(), "the first rows are drawn at once");
    h.draw();
    assert!(h.screen().contains("10.5.0.1:1001"), "{}", h.screen());
    h.app.handle(flow(1002));
    assert!(
        !h.app.needs_draw() && h.app.data_moved(),
        "later batches wait for the data pace"
    );
}

/// The header follows a dump's progress: received against the kernel's count (an
/// estimate, "~"), or the bare count when the count is unknown (a replay); at any width
/// the item is whole or absent, and it goes when the dump ends.
#[test]
fn the_header_shows_how_far_the_dump_is() {
    use ctscope::engine::{EngineEvent, Progress};
    let mut h = Harness::lab();
    h.event(ev::dump(true));
    assert!(h.screen().contains("dumping…"), "{}", h.screen());
    h.event(EngineEvent::DumpProgress(Progress {
        received: 12_345,
        expected: Some(1_000_000),
    }));
    assert!(
        h.screen().contains("dumping 12,345/~1,000,000"),
        "{}",
        h.screen()
    );
    for w in (20..=140).step_by(3) {
        h.resize(w, 24);
        let head: String = h.screen().lines().take(2).collect();
        assert!(
            head.contains("dumping 12,345/~1,000,000") || !head.contains("dumping"),
            "{w} columns: {head}"
        );
    }
    h.resize(100, 24);
    h.event(EngineEvent::DumpProgress(Progress {
        received: 20_000,
        expected: None,
    }));
    let s = h.screen();
    assert!(s.contains("dumping 20,000") && !s.contains("/~"), "{s}");
    h.event(ev::dump(false));
    assert!(!h.screen().contains("dumping"), "{}", h.screen());
}

/// An app over `scene` (no assessor, unpaced) whose requests to the engine are all kept,
/// re-checks included, with its clock at second 1.
fn recheck_app(
    scene: Scene,
) -> (
    ctscope::tui::App,
    tui_support::ManualClock,
    std::rc::Rc<std::cell::RefCell<Vec<Request>>>,
) {
    let clock = tui_support::ManualClock::default();
    clock.0.set(1);
    let sent: std::rc::Rc<std::cell::RefCell<Vec<Request>>> = Default::default();
    let s2 = sent.clone();
    let app = ctscope::tui::App::new(
        scene.into(),
        opts(),
        Box::new(clock.clone()),
        Box::new(move |r: Request| {
            s2.borrow_mut().push(r);
            Ok(())
        }),
    )
    .with_pacing(tui_support::UNPACED);
    (app, clock, sent)
}

/// Move the manual clock to `at` and deliver the tick, then let the builds finish.
fn tick(app: &mut ctscope::tui::App, clock: &tui_support::ManualClock, at: u32) {
    clock.0.set(at);
    app.handle(AppEvent::Tick);
    assert!(app.settle(tui_support::SETTLE));
}

/// A UDP flow from port `sport`, of `timeout` seconds, from the engine as `event` (a NEW
/// the kernel announced, or a dumped entry it never announced); its key.
fn short_flow(
    app: &mut ctscope::tui::App,
    sport: u16,
    timeout: u32,
    event: ctscope::model::Event,
) -> FlowKey {
    let mut short = Flow::new(tuple(proto::UDP, "10.8.0.2", sport, "10.1.0.1", 53));
    short.timeout = timeout;
    let key = FlowKey::of(&short);
    app.handle(AppEvent::Engine(ev::record(
        event,
        ctscope::model::Record::Flow(short),
    )));
    key
}

/// The flows of each re-check sent so far.
fn rechecks(sent: &std::cell::RefCell<Vec<Request>>) -> Vec<Vec<FlowKey>> {
    sent.borrow()
        .iter()
        .filter_map(|r| match r {
            Request::Recheck(k) => Some(k.clone()),
            _ => None,
        })
        .collect()
}

/// Once a tick, flows past their timeout with no DESTROY seen are handed to the engine to
/// re-check; the list (a pass over every flow) is made by the view builder.
#[test]
fn a_tick_asks_the_engine_to_recheck_flows_past_their_timeout() {
    use tui_support::SETTLE;
    let mut scene = Scene::default();
    let mut f = Flow::new(tuple(proto::UDP, "10.8.0.1", 4000, "10.1.0.1", 53));
    f.timeout = 30;
    let key = FlowKey::of(&f);
    scene.add_flow(f);
    let (mut app, clock, sent) = recheck_app(scene);
    app.handle(AppEvent::Tick);
    assert!(app.settle(SETTLE));
    assert!(rechecks(&sent).is_empty(), "still within its timeout");
    clock.0.set(100);
    app.handle(AppEvent::Tick);
    assert!(app.settle(SETTLE));
    assert_eq!(rechecks(&sent), vec![vec![key]]);
}

/// The expiry pass (a scan of every flow) runs only once a timeout can have run out: a
/// still table of long timeouts costs none after the first; a record with a short timeout
/// (here a dumped one, which no event announced) brings it forward to that second; a flow
/// sent for a re-check and never answered is sent again after ten seconds, not at every
/// tick.
#[test]
fn expiry_passes_wait_for_the_soonest_timeout() {
    let mut scene = Scene::default();
    let mut f = Flow::new(tuple(proto::TCP, "10.8.0.1", 4000, "10.1.0.1", 443));
    f.timeout = 3600;
    scene.add_flow(f);
    let (mut app, clock, sent) = recheck_app(scene);
    tick(&mut app, &clock, 1);
    assert_eq!(
        app.expiry_passes(),
        1,
        "the first pass learns the soonest timeout"
    );
    for at in 2..=10 {
        tick(&mut app, &clock, at);
    }
    assert_eq!(app.expiry_passes(), 1, "nothing can have run out yet");
    let key = short_flow(&mut app, 5000, 5, ctscope::model::Event::Dump);
    for at in 11..=14 {
        tick(&mut app, &clock, at);
    }
    assert_eq!(app.expiry_passes(), 1);
    tick(&mut app, &clock, 15);
    assert_eq!(app.expiry_passes(), 2, "due when the short timeout ran out");
    assert_eq!(rechecks(&sent), vec![vec![key]]);
    for at in 16..=24 {
        tick(&mut app, &clock, at);
    }
    assert_eq!(rechecks(&sent).len(), 1, "not asked again at every tick");
    tick(&mut app, &clock, 25);
    assert_eq!(rechecks(&sent), vec![vec![key], vec![key]], "asked again");
}

/// A RELATED flow whose master the dump left out (no DESTROY said it went): the verdicts
/// find it missing and the app asks the kernel for that master, once until the next
/// dump ends; a master that went while its flow lived (an orphan) is not asked for.
#[test]
fn a_master_the_dump_left_out_is_asked_for_once() {
    let master = tuple(proto::TCP, "10.213.5.2", 46152, "10.213.5.1", 21);
    let mut data = Flow::new(tuple(proto::TCP, "10.213.5.2", 48492, "10.213.5.1", 44461));
    data.status = status::CONFIRMED | status::EXPECTED;
    data.extra_mut().master = Some(master);
    data.timeout = 120;
    let mut scene = Scene::default();
    scene.add_flow(data);
    // The harness keeps re-checks out of its requests: this app keeps them.
    let (app, _clock, sent) = recheck_app(scene);
    let mut app = app.with_assessor(Box::new(tui_support::CountingAssessor::embedded()));
    assert!(app.settle(tui_support::SETTLE));
    assert_eq!(rechecks(&sent), vec![vec![FlowKey::new(0, master)]]);
    // Another verdict build (the store moved) does not ask again.
    let mut other = Flow::new(tuple(proto::UDP, "10.8.0.2", 5000, "10.1.0.1", 53));
    other.timeout = 30;
    app.handle(AppEvent::Engine(ev::flow(other)));
    assert!(app.settle(tui_support::SETTLE));
    assert_eq!(rechecks(&sent).len(), 1);
}

/// The first dump brings flows with fresh timeouts: no expiry pass runs over the growing
/// table, however due; the first one comes at the tick after the dump ends.
#[test]
fn no_expiry_pass_runs_during_the_first_dump() {
    use ctscope::engine::EngineEvent;
    let (mut app, clock, sent) = recheck_app(Scene::default());
    app.handle(AppEvent::Engine(EngineEvent::DumpBegin {
        flows: true,
        expects: true,
    }));
    let key = short_flow(&mut app, 5000, 2, ctscope::model::Event::Dump);
    for at in 2..=9 {
        tick(&mut app, &clock, at);
    }
    assert_eq!(
        app.expiry_passes(),
        0,
        "no pass while the first dump streams"
    );
    app.handle(AppEvent::Engine(EngineEvent::DumpEnd {
        flows: true,
        expects: true,
    }));
    tick(&mut app, &clock, 10);
    assert_eq!(app.expiry_passes(), 1, "the first tick after the dump");
    assert_eq!(rechecks(&sent), vec![vec![key]]);
}

/// A flow an event announced carries the kernel's event extension, so its DESTROY comes
/// when the kernel reaps it: it is re-checked only `DESTROY_GRACE` seconds past its
/// timeout, and not at all when the DESTROY comes first. A dumped flow, which may never
/// send one, is re-checked as its timeout runs out.
#[test]
fn a_flow_an_event_announced_is_rechecked_only_if_its_destroy_is_late() {
    use ctscope::model::store::DESTROY_GRACE;
    use ctscope::model::Event;
    let (mut app, clock, sent) = recheck_app(Scene::default());
    tick(&mut app, &clock, 1);
    let dumped = short_flow(&mut app, 5001, 5, Event::Dump);
    let reaped = short_flow(&mut app, 5002, 5, Event::New);
    let silent = short_flow(&mut app, 5003, 5, Event::New);
    let gone = |app: &mut ctscope::tui::App, k: FlowKey| {
        app.handle(AppEvent::Engine(ev::destroy(Flow::new(k.orig))));
    };
    for at in 2..=6 {
        tick(&mut app, &clock, at);
    }
    assert_eq!(
        rechecks(&sent),
        vec![vec![dumped]],
        "the dumped flow at once"
    );
    // The engine's answer: it went. The kernel reaps another within the grace.
    gone(&mut app, dumped);
    tick(&mut app, &clock, 7);
    gone(&mut app, reaped);
    let due = 1 + 5 + DESTROY_GRACE;
    for at in 8..due {
        tick(&mut app, &clock, at);
    }
    assert_eq!(rechecks(&sent).len(), 1, "no re-check within the grace");
    tick(&mut app, &clock, due);
    assert_eq!(rechecks(&sent), vec![vec![dumped], vec![silent]]);
}

/// `m` from an expectation whose master arrived while another screen was shown: the flows
/// rows it jumps to are stale, so the selection waits for their build and lands on it.
#[test]
fn a_jump_to_a_screen_with_stale_rows_lands_when_they_are_built() {
    use ctscope::model::Expectation;
    let mut h = Harness::lab();
    h.ch('2');
    let master = tuple(proto::TCP, "10.66.0.1", 40000, "10.1.0.1", 21);
    let mut mf = Flow::new(master);
    mf.status = status::CONFIRMED | status::SEEN_REPLY | status::HELPER;
    mf.timeout = 300;
    mf.helper = intern("ftp");
    h.event(ev::flow(mf));
    let mask = tuple(proto::TCP, "255.255.255.255", 0, "255.255.255.255", 0xffff);
    let mut e = Expectation::new(
        tuple(proto::TCP, "10.66.0.1", 0, "10.1.0.1", 50000),
        mask,
        master,
    );
    e.helper = intern("ftp");
    e.timeout = 60;
    h.event(ev::expect(e));
    assert_eq!(h.app.tab(), "Expectations");
    h.key(KeyCode::Home);
    let n = h.app.flow_keys().len() + 50;
    for _ in 0..n {
        let sel = h.app.selected_expect().expect("a selection");
        if sel.tuple.dport == 50000 {
            break;
        }
        h.key(KeyCode::Down);
    }
    // The flows rows were built before the master arrived.
    let mk = FlowKey::new(0, master);
    assert!(!h.app.flow_keys().contains(&mk));
    h.ch('m');
    assert_eq!(h.app.tab(), "Flows", "{:?}", h.app.status());
    assert_eq!(h.app.selected_flow(), Some(mk));
}

/// The first dump into an empty dashboard shows its first rows at once, then keeps them
/// while the rest streams (the gauge moves instead: rebuilding a growing table would take
/// the core the dump needs), and shows the complete table when the dump ends. Later
/// dumps refresh a table already shown, which the view follows.
#[test]
fn the_first_dump_shows_first_rows_then_the_whole_table_at_its_end() {
    let mut h = Harness::new(ctscope::model::Store::new(), opts(), 100, 24);
    h.draw();
    h.event(ev::dump(true));
    let flow_from = |i: u16| Flow::new(tuple(proto::UDP, "10.5.0.1", 1000 + i, "10.1.0.1", 53));
    h.event(ev::flow(flow_from(0)));
    assert_eq!(
        h.app.flow_keys().len(),
        1,
        "first rows while the dump streams"
    );
    for i in 1..50 {
        h.event(ev::flow(flow_from(i)));
    }
    assert_eq!(
        h.app.flow_keys().len(),
        1,
        "kept while the first dump streams"
    );
    assert!(h.screen().contains("dumping"), "{}", h.screen());
    h.event(ev::dump(false));
    assert_eq!(h.app.flow_keys().len(), 50, "complete at the dump's end");
    // A later dump (a resync) is followed as it goes.
    h.event(ev::dump(true));
    h.event(ev::flow(flow_from(60)));
    assert_eq!(h.app.flow_keys().len(), 51);
    h.event(ev::dump(false));
}

/// Switching screens on a still table reuses each screen's rows: after one round of Tab,
/// a second round costs no build (at millions of flows each would be a full sort).
#[test]
fn tab_through_a_still_table_costs_no_builds() {
    let mut h = Harness::lab();
    h.draw();
    for _ in 0..6 {
        h.key(KeyCode::Tab);
    }
    let built = h.app.rows_built();
    for _ in 0..12 {
        h.key(KeyCode::Tab);
    }
    h.key(KeyCode::BackTab);
    assert_eq!(h.app.rows_built(), built, "no rebuild for a still table");
    // Data moving makes the screen shown follow it.
    h.event(ev::flow(Flow::new(tuple(
        proto::UDP,
        "10.9.9.9",
        1,
        "10.1.0.1",
        53,
    ))));
    assert!(h.app.rows_built() > built);
}
