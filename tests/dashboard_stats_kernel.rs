//! The dashboard's kernel counters end to end on the real kernel, in a throwaway namespace
//! pair (10.213.43.0/24): a live engine answers `Command::Stats` with every CPU's
//! counters (the CPUs `conntrack -S` lists), three `conntrack -I` move `insert` by at
//! least three between two answers, and the dashboard's `KernelCounters` turns the two
//! answers into a rate of at least three per second over one second.

mod common;

use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use common::lab::{privileged, Lab};
use ctscope::engine::{Command, Engine, EngineEvent, Live, Options};
use ctscope::model::stats::Stats;
use ctscope::netlink::Namespace;
use ctscope::tui::counters::KernelCounters;

const SUBNET: u8 = 43;

/// The next `EngineEvent::Stats` answer (other events pass by).
fn answer(rx: &Receiver<EngineEvent>) -> Result<Box<Stats>, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(EngineEvent::Stats(r)) => return r,
            Ok(_) => {}
            Err(e) => panic!("no stats answer within 10 s: {e}"),
        }
    }
}

#[test]
fn the_engine_answers_stats_and_the_dashboard_makes_rates() {
    if !privileged("the_engine_answers_stats_and_the_dashboard_makes_rates") {
        return;
    }
    let lab = Lab::new("dstats", SUBNET);
    let ns = Namespace::parse(&lab.srv);
    let (rx, handle) =
        Engine::spawn(Box::new(Live::open(&ns, true).unwrap()), Options::default()).unwrap();
    handle.send(Command::Stats).unwrap();
    let first = answer(&rx).expect("the live engine reads the counters");
    let cpus = lab
        .sh_ok(&lab.srv, "conntrack -S")
        .lines()
        .filter(|l| l.starts_with("cpu="))
        .count();
    assert_eq!(
        first.cpus.len(),
        cpus,
        "one record per CPU conntrack -S lists"
    );
    // On this kernel `insert` counts ctnetlink inserts (see pressure_kernel.rs).
    let restore: String = (1..=3)
        .map(|p| format!("-I -p udp -s 10.9.0.1 -d 10.9.0.2 --sport {p} --dport 53 -t 300\n"))
        .collect();
    lab.restore(&lab.srv, &restore);
    handle.send(Command::Stats).unwrap();
    let second = answer(&rx).expect("the second reading");
    let grown = second.since(&first).insert;
    assert!(grown >= 3, "three -I ran but insert grew by {grown}");
    let mut k = KernelCounters::default();
    k.reading(10, Ok(first));
    k.reading(11, Ok(second));
    let rates = k.rates.expect("two readings a second apart");
    let insert = rates.iter().find(|(n, _)| *n == "insert").unwrap().1;
    assert!(insert >= 3.0, "{rates:?}");
    handle.stop();
}
