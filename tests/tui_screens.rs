//! Snapshots of every screen, drawn by the real `App` into ratatui's TestBackend and driven
//! only by events (keys, ticks, engine events): no terminal, no sleeps.

mod tui_support;

use insta::assert_snapshot;
use ratatui::crossterm::event::KeyCode;
use tui_support::{ev, Harness};

#[test]
fn header_and_flows_80x24() {
    let mut h = Harness::lab();
    h.tick(1);
    assert_snapshot!("flows_80x24", h.screen());
}

#[test]
fn flows_wide_with_nat_zone_mark_counters() {
    let mut h = Harness::new(tui_support::lab(), tui_support::opts(), 180, 24);
    h.tick(1);
    assert_snapshot!("flows_180x24", h.screen());
}

#[test]
fn expectations_screen() {
    let mut h = Harness::lab();
    h.ch('2');
    assert_snapshot!("expectations_80x24", h.screen());
}

#[test]
fn chains_screen() {
    let mut h = Harness::lab();
    h.ch('3');
    assert_snapshot!("chains_80x24", h.screen());
}

#[test]
fn detail_pane_of_a_related_flow() {
    let mut h = Harness::new(tui_support::lab(), tui_support::opts(), 100, 30);
    h.ch('/').typed("related").key(KeyCode::Enter);
    h.key(KeyCode::Down).key(KeyCode::Enter);
    assert_snapshot!("detail_related_flow", h.screen());
}

#[test]
fn detail_pane_of_an_expectation() {
    let mut h = Harness::new(tui_support::lab(), tui_support::opts(), 100, 30);
    h.ch('2').key(KeyCode::Enter);
    assert_snapshot!("detail_expectation", h.screen());
}

#[test]
fn help_overlay() {
    let mut h = Harness::lab();
    h.ch('?');
    assert_snapshot!("help_80x24", h.screen());
}

/// A replay's help lists the replay clock keys in place of the deletes and flushes it
/// refuses, and still fits 80x24 whole.
#[test]
fn help_overlay_of_a_replay() {
    let opts = ctscope::tui::TuiOptions {
        recorded_start: Some(std::time::UNIX_EPOCH),
        ..tui_support::opts()
    };
    let mut h = Harness::new(tui_support::lab(), opts, 80, 24);
    h.ch('?');
    let s = h.screen();
    for k in [
        "replay: hold/run clock",
        "replay: next frame",
        "replay: to the end",
    ] {
        assert!(s.contains(k), "{k}:\n{s}");
    }
    // The last rows of the keymap are still there: nothing fell off the bottom.
    assert!(s.contains("close the bar"), "{s}");
    assert_snapshot!("help_replay_80x24", s);
}

#[test]
fn confirmation_of_flush_everything() {
    let mut h = Harness::lab();
    h.ch('X');
    assert_snapshot!("confirm_flush_all", h.screen());
}

#[test]
fn filter_error_marks_the_span_and_keeps_the_filter() {
    let mut h = Harness::lab();
    h.ch('/').typed("proto=tcp").key(KeyCode::Enter);
    h.ch('/').key(KeyCode::End);
    for _ in 0.."proto=tcp".len() {
        h.key(KeyCode::Backspace);
    }
    h.typed("proto=udp and prot=tcp").key(KeyCode::Enter);
    assert_snapshot!("filter_error", h.screen());
}

#[test]
fn forty_columns() {
    let mut h = Harness::new(tui_support::lab(), tui_support::opts(), 40, 20);
    h.tick(1);
    assert_snapshot!("flows_40x20", h.screen());
    h.ch('2');
    assert_snapshot!("expectations_40x20", h.screen());
    h.ch('3');
    assert_snapshot!("chains_40x20", h.screen());
}

#[test]
fn paused_header_and_status_report() {
    let mut h = Harness::lab();
    h.ch(' ');
    h.event(ctscope::engine::EngineEvent::Overrun);
    h.event(ev::report(3, 1, 0));
    assert_snapshot!("paused_with_report", h.screen());
}
