//! The dashboard over the `Store` fed by `EngineEvent`s: the lab scene replayed as kernel
//! events must draw exactly the screens of the store the scene built directly (the linkage
//! — RELATED → master, RELATED → the expectation that created it, kept after the kernel
//! dropped it — comes from the store either way).

mod tui_support;

use ctscope::engine::EngineEvent;
use ctscope::model::Store;
use ratatui::crossterm::event::KeyCode;
use tui_support::{lab, opts, Harness};

fn both() -> (Harness, Harness) {
    let mem = Harness::new(lab(), opts(), 120, 30);
    let mut store = Harness::new(Store::new(), opts(), 120, 30);
    // The scene's records were reported at store time 0, like a dump at start.
    store.clock.0.set(0);
    store.event(EngineEvent::Records(lab().log));
    store.clock.0.set(1);
    store.tick(0);
    (mem, store)
}

#[test]
fn engine_events_draw_the_same_screens_as_the_scene() {
    let (mut mem, mut store) = both();
    for keys in ["", "2", "3", "1"] {
        for c in keys.chars() {
            mem.ch(c);
            store.ch(c);
        }
        mem.draw();
        store.draw();
        // Event counts differ (the store counts applied records); the rest must agree.
        let strip = |s: String| s.replace("ev/s", "");
        assert_eq!(
            strip(store.screen()),
            strip(mem.screen()),
            "screen '{keys}'"
        );
    }
}

#[test]
fn real_store_chain_detail_and_jump() {
    let (_, mut store) = both();
    store.ch('/').typed("related").key(KeyCode::Enter);
    assert_eq!(store.app.flow_keys().len(), 2);
    store.key(KeyCode::Down).key(KeyCode::Enter);
    let screen = store.screen();
    assert!(
        screen.contains("expected 10.213.4.2:any → 10.213.4.1:50000"),
        "{screen}"
    );
    assert!(screen.contains("dport In CMD → IN-CMD"), "{screen}");
    store.key(KeyCode::Esc).key(KeyCode::Esc).ch('m');
    let sel = store.app.selected_flow().expect("selection");
    assert_eq!(sel.orig.dport, 21, "jumped to the FTP control connection");
}

#[test]
fn engine_reports_reach_the_status_line() {
    let (_, mut store) = both();
    let report = ctscope::actions::Report {
        removed: 2,
        already_gone: 1,
        refused: 1,
        errors: vec!["permission denied; hint: run with sudo".into()],
        permission: true,
        ..Default::default()
    };
    store.event(EngineEvent::ActionDone(report));
    let s = store.screen();
    assert!(
        s.contains("removed 2, already gone 1, refused 1; permission denied; hint: run with sudo"),
        "{s}"
    );
    store.event(EngineEvent::Fatal("socket closed".into()));
    assert!(store.screen().contains("engine stopped: socket closed"));
}

/// A confirmation is frozen when it opens: a flow deleted and re-created under the same
/// identity while the dialog is open (same kernel id, as when the slab slot is reused) is
/// left out at `y`, and a flow created meanwhile is not added.
#[test]
fn a_dialog_sends_only_the_entries_it_froze() {
    use ctscope::model::{Event, Record};
    use ctscope::tui::app::Overlay;
    let (_, mut h) = both();
    // Every flow, frozen when X opens.
    h.ch('X');
    let Overlay::Confirm(c) = h.app.overlay().clone() else {
        panic!("no dialog")
    };
    let first = c.flow_keys()[0];
    let old = h
        .app
        .store
        .read()
        .flow(&first)
        .cloned()
        .expect("frozen flow");
    // Recycled while the dialog is open: DESTROY, then NEW with the same id.
    h.event(EngineEvent::Records(vec![
        (Event::Destroy, Record::Flow(old.clone())),
        (Event::New, Record::Flow(old.clone())),
    ]));
    // And a flow that did not exist when the dialog opened.
    let mut newcomer = old.clone();
    newcomer.orig.sport = newcomer.orig.sport.wrapping_add(7777);
    newcomer.id = 424_242;
    h.event(EngineEvent::Records(vec![(
        Event::New,
        Record::Flow(newcomer.clone()),
    )]));
    h.ch('i').ch('y');
    let plans = h.plans();
    let [plan] = plans.as_slice() else {
        panic!("{plans:?}")
    };
    let flows = tui_support::plan_flows(plan);
    assert!(!flows.contains(&first), "the re-created flow is skipped");
    assert!(
        !flows.iter().any(|k| k.orig == newcomer.orig),
        "a flow created after the dialog opened is not added"
    );
    // Every frozen flow (`i` took the SSH one in) but the re-created one.
    assert_eq!(flows.len(), c.flow_keys().len() + c.spared.len() - 1);
    let s = h.screen();
    assert!(s.contains("skipped 1 re-created, 0 gone"), "{s}");
    // The engine's report later carries the skip too.
    h.event(EngineEvent::ActionDone(ctscope::actions::Report {
        removed: flows.len(),
        ..Default::default()
    }));
    let s = h.screen();
    assert!(
        s.contains("re-created since the dialog opened 1 (kept)"),
        "{s}"
    );
}

/// `H` is the kernel's per-helper flush: its result line carries the count that went
/// (the engine counts the helper's expectations before and after).
#[test]
fn a_helper_flush_result_names_the_count() {
    let (_, mut h) = both();
    h.event(EngineEvent::ActionDone(ctscope::actions::Report {
        removed: 6,
        flushed: vec!["expectations of 'ftp' (6)".into()],
        ..Default::default()
    }));
    let s = h.screen();
    assert!(
        s.contains("removed 6, already gone 0, refused 0; flushed expectations of 'ftp' (6)"),
        "{s}"
    );
}

/// The flows view refined from the change journal (sorted by connection, no filter: one
/// merge pass per build) is always the view a full filter-and-sort of the store gives,
/// through random record batches, destroys, re-check answers, dumps (which reset the
/// journal), reversals and filters (which build from scratch), zones per direction
/// included.
#[test]
fn the_flows_view_refined_from_the_journal_equals_a_fresh_sort() {
    use ctscope::filter::Filter;
    use ctscope::model::flow::Flow;
    use ctscope::model::store::FlowKey;
    use ctscope::model::tuple::proto;
    use ctscope::model::{Event, Record};
    use ctscope::tui::screens::flows::key_order;

    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }
    fn flow(i: u64) -> Flow {
        let p = [proto::TCP, proto::UDP][i as usize % 2];
        let mut f = Flow::new(tui_support::tuple(
            p,
            "10.0.0.1",
            1000 + (i % 40) as u16,
            "10.1.0.1",
            [53, 80, 443][i as usize % 3],
        ));
        f.orig.src[3] = (i / 40) as u8;
        // Equal tuples apart only by their per-direction zones: the order must still be total.
        if i.is_multiple_of(3) {
            f.extra_mut().zone_orig = Some(1);
        }
        f.timeout = 300;
        f
    }
    for case in 0..12u64 {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ ((case + 1) * 0x9e37_79b9));
        let mut h = Harness::new(Store::new(), opts(), 120, 30);
        let (mut desc, mut filtered) = (false, false);
        for step in 0..120 {
            match rng.below(20) {
                0 => {
                    h.event(EngineEvent::DumpBegin {
                        flows: false,
                        expects: false,
                    });
                    h.event(EngineEvent::DumpEnd {
                        flows: false,
                        expects: false,
                    });
                }
                1 => {
                    h.ch('r');
                    desc = !desc;
                }
                2 => {
                    if filtered {
                        h.ch('/').key(KeyCode::Esc);
                        h.key(KeyCode::Esc);
                    } else {
                        h.ch('/').typed("proto=tcp").key(KeyCode::Enter);
                    }
                    filtered = h.app.filter_text().is_some();
                }
                3 => {
                    // Re-check answers: a refresh of a flow still there, or its destroy.
                    let f = flow(rng.below(200));
                    let ev = [Event::Dump, Event::Destroy][rng.below(2) as usize];
                    h.event(EngineEvent::Rechecked(vec![(ev, Record::Flow(f))]));
                }
                _ => {
                    let n = 1 + rng.below(8);
                    let batch = (0..n)
                        .map(|_| {
                            let f = flow(rng.below(200));
                            let ev =
                                [Event::New, Event::Update, Event::Destroy][rng.below(3) as usize];
                            (ev, Record::Flow(f))
                        })
                        .collect();
                    h.event(EngineEvent::Records(batch));
                }
            }
            let want: Vec<FlowKey> = {
                let store = h.app.store.read();
                let filter = filtered.then(|| Filter::parse("proto=tcp").unwrap());
                let mut keys: Vec<FlowKey> = store
                    .flows()
                    .filter(|f| filter.as_ref().is_none_or(|x| x.match_flow(f, 0)))
                    .map(FlowKey::of)
                    .collect();
                keys.sort_by(key_order);
                if desc {
                    keys.reverse();
                }
                keys
            };
            assert_eq!(
                h.app.flow_keys(),
                &want[..],
                "case {case} step {step} (desc {desc}, filtered {filtered})"
            );
        }
    }
}

/// A first dump that announces a large table has the buffers of its complete view made
/// while it streams (`tui::scratch`): that build takes every one of them and shows every
/// flow in order. Announced but not delivered (a table that emptied meanwhile), they are
/// released once the view is in. (One test: the process has one pool.)
#[test]
fn a_large_first_dump_is_built_in_buffers_made_while_it_streamed() {
    use ctscope::engine::Progress;
    use ctscope::model::store::FlowKey;
    use ctscope::model::{Event, Flow, Record};
    use ctscope::tui::scratch;
    use ctscope::tui::screens::flows::key_order;
    use std::time::{Duration, Instant};
    // Over the size from which a build splits over two threads (and the app warms).
    const N: u32 = 140_000;
    let held = || {
        scratch::held::<FlowKey>()
            + scratch::held::<(u64, FlowKey)>()
            + scratch::held::<(u64, u32)>()
    };
    let dump = |delivered: u32| {
        let mut h = Harness::new(Store::new(), opts(), 120, 30);
        h.event(tui_support::ev::dump(true));
        h.event(EngineEvent::DumpProgress(Progress {
            received: 0,
            expected: Some(u64::from(N)),
        }));
        // The view's keys are warmed last.
        let end = Instant::now() + tui_support::SETTLE;
        while scratch::held::<FlowKey>() == 0 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        let (warmed, taken) = (held(), scratch::taken());
        assert!(warmed >= 3, "rows, pairs and keys: {warmed}");
        let flows: Vec<(Event, Record)> = (0..delivered)
            .map(|i| {
                let src = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 0xff, i & 0xff);
                let sport = 1024 + (i % 60_000) as u16;
                let t = tui_support::tuple(6, &src, sport, "10.9.9.9", 80);
                (Event::Dump, Record::Flow(Flow::new(t)))
            })
            .collect();
        for batch in flows.chunks(4096) {
            h.event(EngineEvent::Records(batch.to_vec()));
        }
        h.event(tui_support::ev::dump(false));
        h.settle();
        let keys = h.app.flow_keys();
        assert_eq!(keys.len(), delivered as usize);
        assert!(keys.windows(2).all(|w| key_order(&w[0], &w[1]).is_lt()));
        assert_eq!(held(), 0, "nothing held once the view is in");
        (warmed as u64, scratch::taken() - taken)
    };
    let (warmed, taken) = dump(N);
    assert_eq!(
        taken, warmed,
        "the complete view took every buffer made for it"
    );
    let (_, taken) = dump(100);
    assert_eq!(taken, 0, "too large for a view of 100 flows: released");
}
