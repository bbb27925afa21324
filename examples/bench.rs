//! Benchmark probes for bench/engine.sh (not a test: it prints numbers).
//!
//! - `bench dump NS`: bare netlink dump that only counts messages (the floor).
//! - `bench load NS`: dump → decode → store, the real `list` path; prints time, CPU,
//!   resident bytes per stored flow (RSS after minus RSS before, over the flow count) and
//!   how many stored flows are NATed; the CPU is also split by thread (`recv_thread`: the
//!   receiving thread, in whose recv calls the kernel builds the dump; `decode_thread`:
//!   the rest, the decoding thread), named so that `field cpu` in bench/ still finds the
//!   total.
//! - `bench decode NS [RUNS]`: dump the table into memory once, then time, on one thread
//!   and without the kernel, decoding alone and decoding into a store (the load's second
//!   thread), RUNS times each; prints thread CPU per flow (best run), so changes to the
//!   decoder or the store can be compared without the noise of a shared machine.
//! - `bench events NS SECS`: follow events into a store until SECS pass with no event;
//!   prints events received and CPU per event.
//! - `bench scrape NS [RUNS]`: load the table once, then compute the exporter's `/metrics`
//!   text RUNS times from the store: with a full recount (one pass over the slab: what the
//!   first scrape after a dump costs) and as between dumps (counts kept by events: assess
//!   and render); prints CPU per scrape (median, max) and the heap allocations of a
//!   recount scrape, beside the same over a tenth of the table (equal: none per flow).

use std::time::{Duration, Instant};

use ctscope::engine::{self, Engine, EngineEvent, Live, Options, Source};
use ctscope::model::Store;
use ctscope::netlink::{Conn, Namespace, Table};

/// Counts heap allocations, so `scrape` can show that none is made per flow.
struct Counting;
static ALLOCS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        unsafe { std::alloc::System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        unsafe { std::alloc::System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: std::alloc::Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        unsafe { std::alloc::System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// CPU time of the calling thread (a scrape runs on one thread).
fn thread_cpu() -> Duration {
    // SAFETY: clock_gettime fills the timespec we pass.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// One scrape's work from `store`: count, assess, render. Returns (thread CPU, allocations).
fn scrape_once(
    store: &Store,
    assessor: &ctscope::risk::Assessor,
    counts: &mut ctscope::output::prom::FlowCounts,
    text: &mut String,
) -> (Duration, u64) {
    use ctscope::output::prom::{render, Metrics};
    let a0 = ALLOCS.load(std::sync::atomic::Ordering::Relaxed);
    let c0 = thread_cpu();
    let mut m = Metrics::default();
    m.count_store(store, Some(assessor), std::mem::take(counts));
    text.clear();
    render(&m, text);
    *counts = m.flows.take().unwrap_or_default();
    let used = thread_cpu() - c0;
    (used, ALLOCS.load(std::sync::atomic::Ordering::Relaxed) - a0)
}

fn cpu() -> Duration {
    // SAFETY: getrusage fills the struct we pass; RUSAGE_SELF covers all threads.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ns = Namespace::parse(args.get(2).map(String::as_str).unwrap_or("-"));
    match args.get(1).map(String::as_str) {
        Some("dump") => {
            let mut conn = Conn::open(&ns).expect("open");
            let (t0, c0) = (Instant::now(), cpu());
            let mut n = 0usize;
            conn.dump(Table::Flows, &mut |_| n += 1).expect("dump");
            println!(
                "bare-dump entries={n} wall={:.3}s cpu={:.3}s",
                t0.elapsed().as_secs_f64(),
                (cpu() - c0).as_secs_f64()
            );
        }
        Some("load") => {
            let mut src = Live::open(&ns, false).expect("open");
            let before = rss();
            let (t0, c0, r0) = (Instant::now(), cpu(), thread_cpu());
            let mut store = Store::new();
            engine::load(&mut src, &mut store, 0).expect("load");
            let wall = t0.elapsed().as_secs_f64();
            let used = (cpu() - c0).as_secs_f64();
            // This thread receives (the kernel builds the dump inside its recv calls);
            // the rest of the CPU is the decoding thread's.
            let recv = (thread_cpu() - r0).as_secs_f64();
            let n = store.flow_count();
            let after = rss();
            let nat = store.flows().filter(|f| f.is_nat()).count();
            println!(
                "store-load entries={n} nat={nat} wall={wall:.3}s cpu={used:.3}s recv_thread={recv:.3}s decode_thread={:.3}s rss_per_flow={:.1}B structural_per_flow={:.1}B",
                used - recv,
                (after.saturating_sub(before)) as f64 / n.max(1) as f64,
                store.memory().total() as f64 / n.max(1) as f64
            );
            std::hint::black_box(&store);
        }
        Some("decode") => {
            let runs: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5);
            let mut conn = Conn::open(&ns).expect("open");
            // Concatenated as `engine::load` hands them to its decoding thread.
            let mut buf = Vec::new();
            conn.dump(Table::Flows, &mut |m| {
                buf.extend_from_slice(m);
                buf.resize(buf.len().next_multiple_of(4), 0);
            })
            .expect("dump");
            let mut decode_ns = f64::MAX;
            let mut store_ns = f64::MAX;
            let mut n = 0usize;
            for _ in 0..runs {
                let c0 = thread_cpu();
                let mut k = 0usize;
                let mut batch = Vec::with_capacity(32);
                let mut rest = &buf[..];
                while !rest.is_empty() {
                    let (m, used) =
                        ctscope::decode::message_into(rest, &mut batch).expect("decode");
                    std::hint::black_box(&m);
                    rest = &rest[used..];
                    k += 1;
                    if batch.len() == 32 {
                        std::hint::black_box(&batch);
                        batch.clear();
                    }
                }
                decode_ns = decode_ns.min((thread_cpu() - c0).as_secs_f64() * 1e9);
                n = k;
                let mut store = Store::new();
                store.reserve_flows(n + n / 16);
                let c0 = thread_cpu();
                store.begin_resync_tables(true, false);
                // As `engine::load`'s decoding thread does it.
                let mut batch = Vec::with_capacity(32);
                let mut rest = &buf[..];
                while !rest.is_empty() {
                    let (m, used) =
                        ctscope::decode::message_into(rest, &mut batch).expect("decode");
                    rest = &rest[used..];
                    if let Some(ctscope::decode::Message::Record { event, record }) = m {
                        store.apply_flows(&mut batch, 0);
                        store.apply(event, record, 0);
                    } else if batch.len() == 32 {
                        store.apply_flows(&mut batch, 0);
                    }
                }
                store.apply_flows(&mut batch, 0);
                store.end_resync(true, false);
                store_ns = store_ns.min((thread_cpu() - c0).as_secs_f64() * 1e9);
                assert_eq!(store.flow_count(), n, "every dumped flow is stored");
                drop(store);
            }
            let per = |ns: f64| ns / n.max(1) as f64;
            println!(
                "decode entries={n} bytes={} decode_ns_per_flow={:.1} decode_store_ns_per_flow={:.1} store_ns_per_flow={:.1}",
                buf.len(),
                per(decode_ns),
                per(store_ns),
                per(store_ns - decode_ns)
            );
        }
        Some("events") => {
            let idle: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3);
            let src = Live::open_with(&ns, true, 64 << 20).expect("open");
            let rcvbuf = src.rcvbuf();
            let (rx, handle) =
                Engine::spawn(Box::new(src) as Box<dyn Source>, Options::default()).expect("spawn");
            let mut store = Store::new();
            let (mut events, mut overruns, mut started) = (0u64, 0u64, None);
            let mut c0 = cpu();
            println!("ready rcvbuf={rcvbuf:?}");
            let waited = Instant::now();
            loop {
                match rx.recv_timeout(Duration::from_secs(idle)) {
                    Ok(EngineEvent::Records(b)) => {
                        let n = b
                            .iter()
                            .filter(|(e, _)| *e != ctscope::model::Event::Dump)
                            .count();
                        if n > 0 && started.is_none() {
                            started = Some(Instant::now());
                            c0 = cpu();
                        }
                        events += n as u64;
                        engine::apply(&mut store, EngineEvent::Records(b), 0);
                    }
                    Ok(EngineEvent::Overrun) => overruns += 1,
                    Ok(ev) => {
                        engine::apply(&mut store, ev, 0);
                    }
                    Err(_) if started.is_some() => break,
                    // No event at all for 10 idle periods: say so rather than wait forever
                    // (at nf_conntrack_events=2, entries loaded before any listener send
                    // no DESTROY).
                    Err(_) if waited.elapsed() > Duration::from_secs(10 * idle) => {
                        println!("no events within {}s", 10 * idle);
                        break;
                    }
                    Err(_) => {}
                }
            }
            let used = cpu() - c0;
            println!(
                "events received={events} overruns={overruns} cpu={:.3}s cpu_per_event={:.2}us",
                used.as_secs_f64(),
                used.as_secs_f64() * 1e6 / events.max(1) as f64
            );
            handle.stop();
        }
        Some("scrape") => {
            let runs: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(20);
            let mut src = Live::open(&ns, false).expect("open");
            let mut store = Store::new();
            engine::load(&mut src, &mut store, 0).expect("load");
            let n = store.flow_count();
            let assessor = ctscope::risk::Assessor::system(None).expect("helper table");
            let (mut counts, mut text) = (Default::default(), String::with_capacity(16384));
            scrape_once(&store, &assessor, &mut counts, &mut text); // warm: first counts box
            let mut cpus: Vec<f64> = (0..runs)
                .map(|_| {
                    scrape_once(&store, &assessor, &mut counts, &mut text)
                        .0
                        .as_secs_f64()
                })
                .collect();
            cpus.sort_by(f64::total_cmp);
            let (_, allocs) = scrape_once(&store, &assessor, &mut counts, &mut text);
            // What the exporter does per scrape between dumps: its counts are kept event
            // by event, so a scrape assesses the RELATED flows and expectations and renders.
            let (mut kept, mut related) = (Default::default(), Vec::new());
            ctscope::output::prom::count_flows(&store, &mut kept, &mut related);
            let mut steady: Vec<f64> = (0..runs)
                .map(|_| {
                    let c0 = thread_cpu();
                    let mut m = ctscope::output::prom::Metrics {
                        flows: Some(kept.clone()),
                        ..Default::default()
                    };
                    m.assess(&store, Some(&assessor), related.iter());
                    text.clear();
                    ctscope::output::prom::render(&m, &mut text);
                    (thread_cpu() - c0).as_secs_f64()
                })
                .collect();
            steady.sort_by(f64::total_cmp);
            // The same scrape over a store holding a tenth of the flows.
            let mut small = Store::new();
            for f in store.flows().take(n / 10) {
                small.apply(
                    ctscope::model::Event::Dump,
                    ctscope::model::Record::Flow(f.clone()),
                    0,
                );
            }
            for e in store.expectations() {
                small.apply(
                    ctscope::model::Event::Dump,
                    ctscope::model::Record::Expect(e.clone()),
                    0,
                );
            }
            scrape_once(&small, &assessor, &mut counts, &mut text);
            let (_, allocs_small) = scrape_once(&small, &assessor, &mut counts, &mut text);
            println!(
                "scrape entries={n} runs={runs} cpu_median_ms={:.3} cpu_max_ms={:.3} steady_median_ms={:.3} steady_max_ms={:.3} allocs={allocs} allocs_at_tenth={allocs_small} bytes={}",
                cpus[cpus.len() / 2] * 1e3,
                cpus[cpus.len() - 1] * 1e3,
                steady[steady.len() / 2] * 1e3,
                steady[steady.len() - 1] * 1e3,
                text.len()
            );
        }
        _ => eprintln!("usage: bench dump|load|decode|events|scrape NS [IDLE_SECS|RUNS]"),
    }
}
