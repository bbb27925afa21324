//! How long the view builder (`tui::worker`) takes to build a flows view, split into the
//! scan (store read-locked: filter, copy out sort value and key) and the finish (no lock:
//! sort, keep the keys). Not a test: it prints numbers for the integrator and the README.
//!
//! `cargo run --release --example view_build [N] [RUNS]` (default 1,000,000 flows, 5 runs):
//! a synthetic table shaped like bench/gen_entries.py's (70% tcp in four states, udp, icmp,
//! IPv6, zones, marks, every 20th NATed, every 50th with counters), stored in a scattered
//! order as a dump's hash order would be. For each sort column (and one filtered view) it
//! prints the median CPU time (this thread's, so other load on the machine does not
//! count) of the scan and the finish: first sorting `(value, key)` pairs whole, as
//! `tui::view` does today, then with `worker::sort_rows`. Then the wall time of the flows
//! screen's build on one thread and on two (`Lanes`). Last, the wall time from a spec
//! request on a running `Worker` to its result (the "sort or filter change" figure).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ctscope::filter::Filter;
use ctscope::model::store::FlowKey;
use ctscope::model::tuple::proto;
use ctscope::model::{Counter, Family, Flow, Store, Tuple};
use ctscope::model::{Event, Record};
use ctscope::tui::risk::RiskCache;
use ctscope::tui::screens::flows::{self, FlowCol};
use ctscope::tui::screens::{Facts, Spec};
use ctscope::tui::worker::{sort_rows, Job, Lanes, StoreWriter, Urgency, Worker};

/// A sort value as the flows screen makes them: numbers, or static names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum SortVal {
    N(u64),
    S(&'static str),
}

#[derive(Debug, Clone, Copy)]
enum Col {
    /// By original tuple and zone only (the default sort).
    Conn,
    /// Seconds left: many ties, broken by tuple.
    Left,
    /// Protocol state names.
    State,
}

fn flow(i: u32, n: u32) -> Flow {
    // Scatter: stored order unrelated to tuple order, as a dump's hash order is.
    let j = (u64::from(i) * 2_654_435_761 % u64::from(n.max(1))) as u32;
    let kind = j % 20;
    let mut t = Tuple {
        family: Family::Ipv4,
        proto: match kind {
            0..=13 => proto::TCP,
            14..=16 => proto::UDP,
            17 => proto::ICMP,
            _ => proto::TCP,
        },
        sport: 1024 + (j % 60000) as u16,
        dport: [80, 443, 22, 3306][j as usize % 4],
        ..Tuple::default()
    };
    if kind >= 18 {
        t.family = Family::Ipv6;
        t.src[0] = 0xfd;
        t.src[12..16].copy_from_slice(&j.to_be_bytes());
        t.dst[0] = 0xfd;
        t.dst[15] = 1;
    } else {
        t.src[..4].copy_from_slice(&[10, (j >> 16) as u8, (j >> 8) as u8, j as u8]);
        t.dst[..4].copy_from_slice(&[192, 0, 2, 1 + (j % 200) as u8]);
    }
    let mut f = Flow::new(t);
    f.id = j + 1;
    f.state = if t.proto == proto::TCP {
        [3, 3, 3, 1, 7, 4][j as usize % 6]
    } else {
        f.state
    };
    f.timeout = 1 + j % 3600;
    f.mark = j % 5;
    f.zone = if j.is_multiple_of(7) {
        (j % 3) as u16
    } else {
        0
    };
    f.status = 0b1110;
    if j.is_multiple_of(20) {
        let mut r = t.inverted();
        r.src[3] ^= 0x55;
        f.set_reply(r);
    }
    if j.is_multiple_of(50) {
        f.extra_mut().counters = Some([Counter::default(); 2]);
    }
    f
}

fn sort_val(col: Col, f: &Flow) -> SortVal {
    match col {
        Col::Conn => SortVal::N(0),
        Col::Left => SortVal::N(u64::from(f.remaining(0))),
        Col::State => SortVal::S(f.state_name().unwrap_or("")),
    }
}

type Pairs = Vec<(SortVal, FlowKey)>;

fn scan(store: &Store, filter: &Filter, col: Col) -> Pairs {
    let mut pairs = Vec::with_capacity(store.flow_count());
    for f in store.flows() {
        if filter.match_flow(f, 0) {
            pairs.push((sort_val(col, f), FlowKey::of(f)));
        }
    }
    pairs
}

fn finish(mut pairs: Pairs) -> Vec<FlowKey> {
    pairs.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| (a.1.orig, a.1.zone).cmp(&(b.1.orig, b.1.zone)))
    });
    pairs.into_iter().map(|(_, k)| k).collect()
}

/// The same build with `worker::sort_rows`: values as numbers (names ranked), 16-byte
/// pairs sorted, runs of equal words settled by the full key.
fn rank(col: Col, f: &Flow) -> u64 {
    match sort_val(col, f) {
        SortVal::N(n) => n,
        // The names a flow can have, ranked once (alphabetical, "" first).
        SortVal::S(name) => {
            static SORTED: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
            let sorted = SORTED.get_or_init(|| {
                let mut v = ctscope::model::flow::TCP_STATES.to_vec();
                v.sort_unstable();
                v
            });
            sorted
                .iter()
                .position(|n| *n == name)
                .map_or(0, |p| p as u64 + 1)
        }
    }
}

fn fast_scan(store: &Store, filter: &Filter, col: Col) -> Vec<(u64, FlowKey)> {
    store
        .flows()
        .filter(|f| filter.match_flow(f, 0))
        .map(|f| (rank(col, f), FlowKey::of(f)))
        .collect()
}

fn fast_finish(rows: Vec<(u64, FlowKey)>) -> Vec<FlowKey> {
    sort_rows(rows, flows::src_prefix, |a, b| {
        (a.orig, a.zone).cmp(&(b.orig, b.zone))
    })
}

/// CPU time of this thread: the machine may be shared, wall time would count the others.
fn cpu() -> Duration {
    // SAFETY: clock_gettime fills the timespec we pass.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u32 = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let runs: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let mut store = Store::new();
    store.reserve_flows(n as usize);
    let t = Instant::now();
    for i in 0..n {
        store.apply(Event::Dump, Record::Flow(flow(i, n)), 0);
    }
    println!(
        "store: {} flows in {:.0} ms ({:.0} B/flow structural)",
        store.flow_count(),
        t.elapsed().as_secs_f64() * 1000.0,
        store.memory().total() as f64 / f64::from(n.max(1))
    );
    let all = Filter::all();
    let tcp = Filter::parse("proto=tcp and dport=443").expect("filter");
    let cases: [(&str, &Filter, Col); 4] = [
        ("conn (tuple)", &all, Col::Conn),
        ("left (ties)", &all, Col::Left),
        ("state (names)", &all, Col::State),
        ("left, filter tcp dport 443", &tcp, Col::Left),
    ];
    println!(
        "{:<30} {:>8} {:>10} {:>11} {:>9}",
        "view (CPU ms, median)", "rows", "scan ms", "finish ms", "total ms"
    );
    for (name, filter, col) in cases {
        let (mut s, mut f, mut rows) = (Vec::new(), Vec::new(), 0);
        for _ in 0..runs {
            let t0 = cpu();
            let pairs = scan(&store, filter, col);
            let t1 = cpu();
            let keys = finish(pairs);
            let t2 = cpu();
            rows = keys.len();
            std::hint::black_box(keys);
            s.push(t1 - t0);
            f.push(t2 - t1);
        }
        let (s, f) = (median(s), median(f));
        println!("{name:<30} {rows:>8} {s:>10.1} {f:>11.1} {:>9.1}", s + f);
    }
    for (name, filter, col) in cases {
        let (mut s, mut f) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let t0 = cpu();
            let rows = fast_scan(&store, filter, col);
            let t1 = cpu();
            let keys = fast_finish(rows);
            let t2 = cpu();
            std::hint::black_box(keys);
            s.push(t1 - t0);
            f.push(t2 - t1);
        }
        let (s, f) = (median(s), median(f));
        println!(
            "sort_rows {name:<20} {:>8} {s:>10.1} {f:>11.1} {:>9.1}",
            "",
            s + f
        );
    }
    // Peak bytes a build holds beside the store: the (value, key) pairs, then the keys.
    let pair = std::mem::size_of::<(SortVal, FlowKey)>();
    let key = std::mem::size_of::<FlowKey>();
    println!(
        "build peak: {pair} B/row of pairs, then {key} B/row of keys (the shown view holds {key} B/row)"
    );

    // The flows screen's own build (`screens::flows::build`) by wall time, on one lane
    // (a paced data build) and on two (a spec build on two cores: scan and sort split,
    // halves merged).
    let risk = RiskCache::default();
    for lanes in [Lanes::ONE, Lanes::TWO] {
        let mut wall = Vec::new();
        for _ in 0..runs {
            let spec = Spec {
                filter: None,
                risk: &risk,
                sort: FlowCol::Conn,
                desc: false,
                now: 0,
                facts: Facts::default(),
                lanes,
            };
            let t0 = Instant::now();
            std::hint::black_box(flows::build(&store, &spec));
            wall.push(t0.elapsed());
        }
        println!(
            "flows screen build by conn, {} lane(s): wall {:.1} ms (median of {runs})",
            lanes.get(),
            median(wall)
        );
    }

    // The same build through the worker (with sort_rows): a spec request until its
    // result is in hand.
    let writer = StoreWriter::new(store);
    let mut worker: Worker<u8, Vec<FlowKey>> =
        Worker::spawn(writer.shared(), || {}).expect("spawn");
    let mut lat = Vec::new();
    for i in 0..runs {
        let col = [Col::Left, Col::State, Col::Conn][i % 3];
        let filter = Arc::new(Filter::all());
        let t0 = Instant::now();
        worker.request(
            0,
            Urgency::Spec,
            Job::new(move |s: &Store| fast_scan(s, &filter, col), fast_finish),
        );
        let b = worker
            .recv_timeout(Duration::from_secs(30))
            .expect("a build");
        lat.push(t0.elapsed());
        std::hint::black_box(b);
    }
    println!(
        "worker: spec request to result, median of {runs}: {:.1} ms",
        median(lat)
    );
    worker.stop();
}
