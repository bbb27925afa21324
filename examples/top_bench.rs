//! `top` grouping at scale (not a test: it prints numbers; the README quotes them).
//!
//! `cargo run --release --example top_bench [FLOWS [SOURCES]]` (default 1,000,000 flows from
//! 20,000 sources) builds a store of synthetic TCP flows (40 destinations, 1% UNREPLIED, 30% DNATed, 20% with
//! byte counters), then
//! times one full pass (`Top::rebuild`) per grouping key and the per-event cost of
//! `Top::observe` (a NEW and a DESTROY, as the engine delivers them) followed by the store's
//! own `apply`, against `apply` alone.

use std::time::Instant;

use ctscope::model::flow::status;
use ctscope::model::top::{GroupBy, Sort, Top};
use ctscope::model::tuple::{proto, Family, Tuple};
use ctscope::model::{Counter, Flow, Store};
use ctscope::model::{Event, Record};

fn flow(i: u32, sources: u32) -> Flow {
    let mut t = Tuple {
        proto: proto::TCP,
        family: Family::Ipv4,
        sport: (i % 50_000) as u16 + 10_000,
        dport: [80, 443, 53, 22][(i % 4) as usize],
        ..Tuple::default()
    };
    let s = i % sources;
    t.src[..4].copy_from_slice(&[10, (s >> 8) as u8, s as u8, (s >> 16) as u8 + 1]);
    t.dst[..4].copy_from_slice(&[172, 16, (i % 40) as u8, (i / 50_000) as u8]);
    let mut f = Flow::new(t);
    f.state = 3;
    f.timeout = 432_000;
    f.status = status::CONFIRMED | status::ASSURED;
    if !i.is_multiple_of(100) {
        f.status |= status::SEEN_REPLY;
    }
    if i % 10 < 3 {
        let mut r = t.inverted();
        r.src[..4].copy_from_slice(&[10, 244, (i % 7) as u8, 2]);
        r.sport = 8080;
        f.set_reply(r);
        f.status |= status::DST_NAT;
    }
    if i.is_multiple_of(5) {
        f.extra_mut().counters = Some(
            [Counter {
                packets: 1,
                bytes: u64::from(i % 1500),
            }; 2],
        );
    }
    f
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let sources: u32 = std::env::args()
        .nth(2)
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let mut store = Store::new();
    store.reserve_flows(n as usize + 200_000);
    for i in 0..n {
        store.apply(Event::Dump, Record::Flow(flow(i, sources)), 0);
    }
    println!("flows: {}", store.flow_count());
    for (by, bytes) in GroupBy::ALL
        .into_iter()
        .map(|b| (b, true))
        .chain([(GroupBy::Src, false), (GroupBy::Zone, false)])
    {
        let mut top = Top::new(by);
        top.set_bytes(bytes);
        top.rebuild(&store, 0); // warm: the map reaches its size once
        let t0 = Instant::now();
        let passes = 5;
        for k in 0..passes {
            top.rebuild(&store, 1 + k);
        }
        let pass = t0.elapsed() / passes;
        let t1 = Instant::now();
        let rows = top.rows(Sort::Count, 20, 5);
        let sort = t1.elapsed();
        // The dashboard's spec pass: on two threads, ranked where it ran, then its 1,000
        // rows read.
        let t_split = Instant::now();
        let counted = Top::count_split(by, bytes, &store, 2, || false);
        let split = t_split.elapsed();
        // Rated for bytes/s against the previous pass (at 5) and ranked, both where the
        // pass ran; the install, on the thread that reads keys, walks no group.
        let t2 = Instant::now();
        let mut counted = counted.rated(top.since(7));
        counted.rank(1000);
        let rank = t2.elapsed();
        let t_install = Instant::now();
        top.install(counted, 7);
        let install = t_install.elapsed();
        let t3 = Instant::now();
        let _ = top.rows(Sort::Count, 1000, 7);
        let ranked_rows = t3.elapsed();
        let t4 = Instant::now();
        let _ = top.rows(Sort::Bytes, 1000, 7);
        let bytes_rows = t4.elapsed();
        println!(
            "by {:<8} {} pass {:>7.1} ms (two threads {:>6.1} ms)  groups {:>7}  \
             top-20 rows {:>6.2} ms  rate and rank 1,000 {:>6.2} ms, install {:>6.2} ms, then 1,000 \
             rows {:>5.2} ms, by bytes/s {:>6.2} ms  (largest {})",
            by.name(),
            if bytes { "bytes on " } else { "bytes off" },
            pass.as_secs_f64() * 1e3,
            split.as_secs_f64() * 1e3,
            top.groups(),
            sort.as_secs_f64() * 1e3,
            rank.as_secs_f64() * 1e3,
            install.as_secs_f64() * 1e3,
            ranked_rows.as_secs_f64() * 1e3,
            bytes_rows.as_secs_f64() * 1e3,
            rows.first().map_or(0, |r| r.flows)
        );
    }
    // Per event: NEW of a fresh flow, DESTROY of an old one, with and without Top.
    let events = 200_000u32;
    let run = |with_top: bool, store: &mut Store, base: u32| {
        let mut top = Top::new(GroupBy::Src);
        let t0 = Instant::now();
        for k in 0..events {
            let now = 10 + k / 20_000;
            let new = Record::Flow(flow(base + k, sources));
            let old = Record::Flow(flow(base - n + k, sources));
            if with_top {
                top.observe(store, Event::New, &new, now);
            }
            store.apply(Event::New, new, now);
            if with_top {
                top.observe(store, Event::Destroy, &old, now);
            }
            store.apply(Event::Destroy, old, now);
        }
        t0.elapsed().as_secs_f64() * 1e9 / f64::from(2 * events)
    };
    let bare = run(false, &mut store, n);
    let with = run(true, &mut store, n + events);
    println!(
        "per event: store apply {bare:.0} ns, with Top::observe {with:.0} ns (+{:.0} ns)",
        with - bare
    );
}
