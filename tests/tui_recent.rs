//! The dashboard's Recent screen over the committed knock recording
//! (`assets/lab-knock.ctrec`, made by `assets/lab/make-knock-recording.sh`: seed 004's
//! four-stage knock in iptables and in nft, an admin who knocks correctly and a slow
//! client), played frame by frame into the real app as the engine would deliver it
//! (`Received`, flow records, recency snapshots). No root: progress at chosen moments,
//! the admitted flow linked to its list entry (Enter goes to it on the flows screen), a
//! damaged snapshot (a status line, nothing lost), the empty states, and the list actions
//! (one confirmation, the admin's SSH address spared, refused on a replay).

mod tui_support;

use ctscope::actions::Target;
use ctscope::decode::{self, Message};
use ctscope::engine::record::{Kind, Reader};
use ctscope::engine::{EngineEvent, EXPECTS, FLOWS};
use ctscope::model::Store;
use ctscope::recent::act::ListRef;
use ctscope::tui::{AppEvent, TuiOptions};
use ratatui::crossterm::event::KeyCode;
use tui_support::{opts, Harness};

const KNOCK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/lab-knock.ctrec");

/// The recording's frames up to `until_s` seconds in, as engine events to `h` (the app's
/// clock follows the recorded time). Returns the recording's start (ns since the epoch).
fn play(h: &mut Harness, until_s: f64) -> u64 {
    let mut r = Reader::open(std::path::Path::new(KNOCK)).unwrap();
    let start = r.start();
    while let Some(f) = r.next_frame().unwrap() {
        if f.t as f64 / 1e9 > until_s {
            break;
        }
        h.clock.0.set((f.t / 1_000_000_000) as u32);
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
        h.app
            .handle(AppEvent::Engine(EngineEvent::Received(start + f.t)));
        h.app.handle(AppEvent::Engine(ev));
    }
    h.draw();
    start
}

fn harness(w: u16, h: u16) -> Harness {
    Harness::new(Store::new(), opts(), w, h)
}

/// The Recent screen's lines (from its own rows, whatever fits the terminal).
fn lines(h: &Harness) -> Vec<String> {
    h.app.recent_lines()
}

fn has(h: &Harness, needle: &str) -> bool {
    lines(h).iter().any(|l| l.contains(needle))
}

#[test]
fn progress_rows_follow_the_knock_through_the_recording() {
    let mut h = harness(120, 40);
    h.ch('6');
    assert_eq!(h.app.tab(), "Recent");
    // Before the first snapshot: it says it is waiting, no empty table.
    h.draw();
    assert!(
        h.screen()
            .contains("waiting for the first recency snapshot"),
        "{}",
        h.screen()
    );

    // 8 s in: the admin pinged and knocked 7 (stage 2/4, seenecho), 8000 not yet.
    play(&mut h, 8.0);
    assert!(
        has(
            &h,
            "xt 10.214.6.2: stage 2/4 (seenecho), 8 s left to knock 8000"
        ),
        "{:#?}",
        lines(&h)
    );
    assert!(!has(&h, "stage 3/4"), "{:#?}", lines(&h));

    // 14 s in: the admin is through (stage 3/4, seenbackend) with a live 3306 flow linked
    // under the progress row and under its seenbackend entry; the slow client is at 2/4.
    let mut h = harness(120, 40);
    h.ch('6');
    play(&mut h, 14.0);
    let l = lines(&h);
    assert!(has(&h, "xt 10.214.6.2: stage 3/4 (seenbackend)"), "{l:#?}");
    assert!(has(&h, "10.214.6.3: stage 2/4 (seenecho)"), "{l:#?}");
    let flow = "└ tcp 10.214.6.2:52177 → 10.214.6.1:3306 ESTABLISHED";
    let at = |needle: &str| l.iter().position(|x| x.contains(needle)).unwrap();
    let entry = l
        .iter()
        .enumerate()
        .position(|(i, x)| x.trim() == "10.214.6.2" && i > at("xt seenbackend"))
        .unwrap();
    assert!(l[entry + 1].contains(flow), "{l:#?}");
    assert!(
        l[at("xt 10.214.6.2: stage 3/4") + 1].contains(flow),
        "{l:#?}"
    );
    // On screen too, with the snapshot's time heading it.
    let s = h.screen();
    assert!(s.contains("Knock progress · snapshot"), "{s}");
    assert!(s.contains("10.214.6.2: stage 3/4 (seenbackend)"), "{s}");

    // 20 s in: the slow client's time ran out at stage 2 (the nft set already dropped it).
    let mut h = harness(120, 40);
    h.ch('6');
    play(&mut h, 20.0);
    assert!(
        has(&h, "xt 10.214.6.3: stage 2/4 (seenecho), too slow"),
        "{:#?}",
        lines(&h)
    );
    assert!(
        has(&h, "nft 10.214.6.3: stage 1/4 (seenping)"),
        "{:#?}",
        lines(&h)
    );

    // The end: its 8000 came too late and was refused; it is back at stage 1/4.
    let mut h = harness(120, 40);
    h.ch('6');
    play(&mut h, 60.0);
    assert!(
        has(&h, "xt 10.214.6.3: stage 1/4 (seenping)"),
        "{:#?}",
        lines(&h)
    );
    assert!(!has(&h, "10.214.6.3: stage 2/4"), "{:#?}", lines(&h));
}

#[test]
fn enter_on_an_admitted_flow_goes_to_it_on_the_flows_screen() {
    let mut h = harness(120, 40);
    h.ch('6');
    play(&mut h, 60.0);
    let l = lines(&h);
    let i = l
        .iter()
        .position(|x| x.contains("└ tcp 10.214.6.2:52177"))
        .expect("an admitted flow row");
    h.ch('g');
    for _ in 0..i {
        h.key(KeyCode::Down);
    }
    h.key(KeyCode::Enter);
    assert_eq!(h.app.tab(), "Flows");
    let k = h.app.selected_flow().expect("a selected flow");
    assert_eq!((k.orig.sport, k.orig.dport), (52177, 3306));
    assert!(
        h.screen()
            .contains("original 10.214.6.2:52177 → 10.214.6.1:3306"),
        "{}",
        h.screen()
    );
}

#[test]
fn a_damaged_snapshot_is_said_and_the_last_good_one_stays() {
    let mut h = harness(100, 30);
    h.ch('6');
    play(&mut h, 12.0);
    h.event(EngineEvent::RecentDamaged(
        "the recency snapshot at 13.000 s is damaged and skipped: EOF while parsing".into(),
    ));
    let st = h.app.status().expect("a status line").text.clone();
    assert!(st.contains("damaged and skipped"), "{st}");
    assert!(has(&h, "damaged and skipped"), "{:#?}", lines(&h));
    assert!(
        has(&h, "10.214.6.2: stage 3/4 (seenbackend)"),
        "{:#?}",
        lines(&h)
    );
}

#[test]
fn lists_act_through_the_one_confirmation_and_spare_the_admins_address() {
    // The admin's SSH session comes from 10.214.6.2 (the knocking client).
    let mut o = opts();
    o.ssh = ctscope::tui::SshSession::parse("10.214.6.2 50000 10.214.6.1 22");
    let mut h = Harness::new(Store::new(), o, 120, 40);
    h.ch('6');
    play(&mut h, 60.0);
    let l = lines(&h);
    let list = l.iter().position(|x| x.contains("xt seenping")).unwrap();
    let go = |h: &mut Harness, row: usize| {
        h.ch('g');
        for _ in 0..row {
            h.key(KeyCode::Down);
        }
    };
    // d on 10.214.6.3 in seenping: one delete, confirmed, sent as planned.
    let other = list
        + l[list..]
            .iter()
            .position(|x| x.trim() == "10.214.6.3")
            .unwrap();
    go(&mut h, other);
    h.ch('d');
    assert!(
        h.screen().contains("Remove 10.214.6.3 from xt seenping"),
        "{}",
        h.screen()
    );
    h.ch('y');
    let p = h.plans().pop().expect("a plan sent");
    assert_eq!(
        p.targets,
        [Target::ListDelete {
            list: ListRef::Xt("seenping".into()),
            addr: "10.214.6.3".parse().unwrap()
        }]
    );
    // d on the admin's own address: nothing until `i` takes it in.
    let mine = list
        + l[list..]
            .iter()
            .position(|x| x.trim() == "10.214.6.2")
            .unwrap();
    go(&mut h, mine);
    h.ch('d');
    assert!(
        h.screen()
            .contains("your SSH address 10.214.6.2 is EXCLUDED"),
        "{}",
        h.screen()
    );
    let n = h.plans().len();
    h.ch('y');
    assert_eq!(
        h.plans().len(),
        n,
        "nothing is sent for the admin's own address"
    );
    assert!(h
        .app
        .status()
        .unwrap()
        .text
        .contains("your SSH address stays"));
    h.ch('d');
    h.ch('i');
    assert!(h.screen().contains("is INCLUDED"), "{}", h.screen());
    h.ch('y');
    assert_eq!(
        h.plans().pop().unwrap().targets,
        [Target::ListDelete {
            list: ListRef::Xt("seenping".into()),
            addr: "10.214.6.2".parse().unwrap()
        }]
    );
    // F on the list: the admin's address held, so the others go one by one.
    go(&mut h, list);
    h.ch('F');
    assert!(h.screen().contains("Flush xt seenping"), "{}", h.screen());
    h.ch('y');
    assert_eq!(
        h.plans().pop().unwrap().targets,
        [Target::ListDelete {
            list: ListRef::Xt("seenping".into()),
            addr: "10.214.6.3".parse().unwrap()
        }]
    );
    // A heading is not a list.
    go(&mut h, 0);
    let n = h.plans().len();
    h.ch('d');
    assert_eq!(h.plans().len(), n);
    assert!(h.app.status().unwrap().text.contains("select an address"));
}

#[test]
fn replays_and_read_only_mode_refuse_list_actions() {
    let o = TuiOptions {
        recorded_start: Some(std::time::UNIX_EPOCH),
        ..opts()
    };
    let mut h = Harness::new(Store::new(), o, 120, 40);
    h.ch('6');
    play(&mut h, 60.0);
    let l = lines(&h);
    let list = l.iter().position(|x| x.contains("xt seenping")).unwrap();
    h.ch('g');
    for _ in 0..list {
        h.key(KeyCode::Down);
    }
    h.ch('F');
    assert!(h.plans().is_empty());
    assert!(
        h.app
            .status()
            .unwrap()
            .text
            .contains("a recording cannot be changed"),
        "{:?}",
        h.app.status()
    );
    let o = TuiOptions {
        read_only: true,
        ..opts()
    };
    let mut h = Harness::new(Store::new(), o, 120, 40);
    h.ch('6');
    play(&mut h, 60.0);
    h.ch('g').key(KeyCode::Down).ch('F');
    assert!(h.plans().is_empty());
    assert!(h.app.status().unwrap().text.contains("read-only"));
}

#[test]
fn a_replay_without_snapshots_says_so() {
    let o = TuiOptions {
        recorded_start: Some(std::time::UNIX_EPOCH),
        ..opts()
    };
    let mut h = Harness::new(Store::new(), o, 80, 24);
    h.ch('6');
    let s = h.screen();
    assert!(
        s.contains("no recency snapshot in this recording yet"),
        "{s}"
    );
}
