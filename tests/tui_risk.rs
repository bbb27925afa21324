//! Helper risk in the dashboard (issue 4 in the TUI): badges and the findings screen come
//! from `crate::risk` (the same assessments as `list --json`), are text in every theme, are
//! recomputed only when the store changes, and a replay's end leaves the dashboard open.
//! Driven by events only, rendered into a TestBackend.

mod tui_support;

use ctscope::model::flow::status;
use ctscope::model::store::{ExpectKey, FlowKey};
use ctscope::model::tuple::proto;
use ctscope::model::{Expectation, Flow};
use ctscope::risk::{Assessor, Config, FindingKind, HelperTable};
use ctscope::tui::theme::ThemeKind;
use ctscope::tui::{AppEvent, TuiOptions};
use ratatui::crossterm::event::KeyCode;
use ratatui::style::{Color, Modifier};
use tui_support::{ev, lab, opts, tuple, Harness, Scene};

/// The forged PORT of the lab: 10.213.4.66 made the ftp helper expect a connection from
/// the server to 10.213.4.7:3306 (a database on another host).
fn forged(m: &Scene) -> Expectation {
    m.expects()
        .into_iter()
        .find(|e| e.tuple.dport == 3306)
        .expect("the lab has the forged PORT")
}

/// The screen with the findings pane's wrapped lines joined again.
fn joined(h: &Harness) -> String {
    h.screen()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn findings_screen_lists_the_forged_port_to_3306_with_its_fix_and_goes_to_it() {
    let mut h = Harness::new(lab(), opts(), 100, 30);
    h.draw();
    assert!(h.screen().contains("findings !2"), "{}", h.screen());
    h.ch('4');
    assert_eq!(h.app.tab(), "Findings");
    let s = h.screen();
    assert!(s.contains("!sensitive port"), "{s}");
    assert!(s.contains("expect 10.213.4.1:any → 10.213.4.7:3306"), "{s}");
    // The first row (most severe kind) is selected: its detail and fix are shown in full.
    let j = joined(&h);
    assert!(j.contains("kind: sensitive port (sensitive_port)"), "{j}");
    assert!(j.contains("toward tcp port 3306, a sensitive port"), "{j}");
    assert!(
        j.contains("-m helper --helper ftp -d $FTP_SERVER -p tcp --dport 1024:"),
        "{j}"
    );
    assert!(
        j.contains("iptables -I INPUT -p tcp --dport 3306 -m conntrack --ctstate RELATED -j DROP"),
        "{j}"
    );

    // What the screen lists is exactly what the assessor (the JSON's source) says.
    let model = lab();
    let e = forged(&model);
    let a = Assessor::new(HelperTable::embedded().unwrap(), Config::default(), None);
    let live = model.store.expectation(&ExpectKey::of(&e)).unwrap();
    let want: Vec<FindingKind> = a
        .expectation(&model.store, live)
        .findings
        .iter()
        .map(|f| f.kind)
        .collect();
    assert_eq!(
        want,
        vec![FindingKind::SensitivePort, FindingKind::ThirdPartyAddress]
    );
    assert_eq!(h.app.finding_rows().len(), want.len());
    let (_, findings) = a.expectation_json(&model.store, live);
    assert_eq!(findings[0]["kind"], "sensitive_port");
    assert!(j.contains(findings[0]["fix"].as_str().unwrap()), "{j}");

    // Enter goes to the entry: the expectation is selected, its detail pane open.
    h.key(KeyCode::Enter);
    assert_eq!(h.app.tab(), "Expectations");
    assert_eq!(h.app.selected_expect(), Some(ExpectKey::of(&e)));
    let s = h.screen();
    assert!(s.contains("!2 sensitive port, third-party address"), "{s}");
    assert!(s.contains("table ftp data (loose=0)"), "{s}");
}

#[test]
fn help_lists_the_findings_key() {
    let mut h = Harness::lab();
    h.ch('?');
    assert!(
        // The screen digits share one row ("1-5 !"); it names the findings key.
        h.screen().contains("! screen by tab; ! findings"),
        "{}",
        h.screen()
    );
    h.ch('x').ch('!');
    assert_eq!(h.app.tab(), "Findings");
}

#[test]
fn a_related_flow_inherits_the_finding_of_the_expectation_that_made_it() {
    let mut m = lab();
    let e = forged(&m);
    // The attacker's server connects: the kernel reports the RELATED flow, then drops the
    // expectation it consumed.
    let mut f = Flow::new(tuple(proto::TCP, "10.213.4.1", 20, "10.213.4.7", 3306));
    f.status = status::EXPECTED | status::CONFIRMED | status::SEEN_REPLY;
    f.state = 3;
    f.timeout = 120;
    f.extra_mut().master = Some(e.master);
    m.add_flow(f.clone());
    m.drop_expect(&ExpectKey::of(&e));
    let mut h = Harness::new(m, opts(), 100, 30);
    h.draw();
    let row = h
        .row_of("10.213.4.1:20 → 10.213.4.7:3306")
        .expect("RELATED row");
    let line = h.screen().lines().nth(row as usize).unwrap().to_owned();
    assert!(line.contains("!3306+"), "{line}");
    h.ch('4');
    let rows = h.app.finding_rows().to_vec();
    assert!(
        rows.iter()
            .any(|r| r.subject == ctscope::tui::risk::Subject::Flow(FlowKey::of(&f))),
        "{rows:?}"
    );
    assert!(h
        .screen()
        .contains("RELATED tcp 10.213.4.1:20 → 10.213.4.7:3306"));
}

#[test]
fn badges_are_text_in_the_monochrome_theme() {
    let o = TuiOptions {
        theme: ThemeKind::choose("auto", None, Some("1"), Default::default()),
        ..opts()
    };
    let mut h = Harness::new(lab(), o, 100, 24);
    h.ch('2');
    let s = h.screen();
    let row = s
        .lines()
        .find(|l| l.contains("10.213.4.7:3306"))
        .expect("forged expectation row");
    assert!(row.contains("!3306+"), "{row}");
    let irc = s
        .lines()
        .find(|l| l.contains("any:any → 10.213.4.2:5000"))
        .unwrap();
    assert!(irc.contains("FULL"), "{irc}");
    let badge = h.style_at("!3306+");
    assert_eq!(badge.fg, Some(Color::Reset));
    assert_eq!(badge.bg, Some(Color::Reset));
    assert!(badge
        .add_modifier
        .contains(Modifier::BOLD | Modifier::UNDERLINED));
    h.ch('4');
    assert!(h.screen().contains("!sensitive port"));
    assert!(h.screen().contains("findings !2"));
}

#[test]
fn assessments_are_not_recomputed_when_only_the_clock_ticks() {
    let mut h = Harness::lab();
    h.draw();
    let built = h.risk_calls.get();
    assert_eq!(built, 1, "one assessment for the first frame");
    for _ in 0..5 {
        h.tick(1);
    }
    h.key(KeyCode::Down).ch('2').ch('4').ch('1');
    assert_eq!(
        h.risk_calls.get(),
        built,
        "ticks, keys and frames reuse the cache"
    );
    assert!(h.app.frame_stats().frames > 5);
    // A store change is reassessed once, on the next frame.
    let mut e = forged(&lab());
    e.tuple.dport = 6379;
    h.event(ev::expect(e));
    assert_eq!(h.risk_calls.get(), built + 1);
    // The header counts what the assessor now says of the whole store (a second
    // expectation from one ftp master is also a burst for both).
    let a = Assessor::new(HelperTable::embedded().unwrap(), Config::default(), None);
    let guard = h.app.store.read();
    let store = &*guard;
    let mut want: usize = a
        .all_expectations(store)
        .iter()
        .map(|(_, x)| x.findings.len())
        .sum();
    for f in store.flows() {
        want += a
            .flow(store, &FlowKey::of(f))
            .map_or(0, |x| x.findings.len());
    }
    drop(guard);
    assert!(want > 2, "the new expectation adds findings");
    assert_eq!(h.app.finding_count(), want);
    assert!(
        h.screen().contains(&format!("findings !{want}")),
        "{}",
        h.screen()
    );
    h.tick(1);
    assert_eq!(h.risk_calls.get(), built + 1);
}

#[test]
fn a_replay_reaching_its_end_leaves_the_dashboard_open() {
    let start = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_763_701_200);
    let o = TuiOptions {
        recorded_start: Some(start),
        ..opts()
    };
    let mut h = Harness::new(lab(), o, 100, 24);
    h.draw();
    h.app.handle(AppEvent::SourceEnded);
    h.draw();
    assert!(!h.app.should_quit());
    assert!(h.app.source_ended());
    let s = h.screen();
    assert!(s.contains("REPLAY ENDED"), "{s}");
    assert!(
        s.contains("replay ended: the last state stays on screen"),
        "{s}"
    );
    // Still usable: keys answer, the table is there.
    h.ch('2');
    assert_eq!(h.app.tab(), "Expectations");
    assert!(h.screen().contains("10.213.4.7:3306"));
    h.ch('q');
    assert!(h.app.should_quit());
}
