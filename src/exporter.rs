//! `ctscope exporter`: the live engine and store behind a small HTTP server that answers
//! `/metrics` (Prometheus text format, `output::prom`) and `/healthz`.
//!
//! Threads, and who owns what:
//! - the engine thread (`engine::Engine`) dumps once, follows events, resyncs on ENOBUFS;
//! - a forwarder turns its events into `Msg::Engine` on the owner's one channel;
//! - the owner (the caller's thread, [`run`]) owns the store, applies events, ticks once a
//!   second, and answers scrape requests: every request waiting when it looks is answered
//!   by one computation, and a computation is reused while nothing changed;
//! - one HTTP thread runs hyper on a single-threaded tokio runtime: at most
//!   `MAX_CONNECTIONS` connections are served at once (the rest wait in the listen
//!   backlog), and `/metrics` is handed to the owner;
//! - an audit thread runs the audit every `audit_interval` and sends its finding counts.
//!
//! A scrape therefore never re-dumps, never holds the store longer than one counting
//! pass, and no number of parallel scrapes makes the owner compute more than once per
//! change. It must not print (the CLI does) or read the kernel itself beyond the closures
//! it is handed.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::{self, EngineEvent, EngineHandle};
use crate::model::store::FlowKey;
use crate::model::Record;
use crate::model::Store;
use crate::output::prom::{self, EventCounts, FlowCounts, Metrics};
use crate::risk::Assessor;

/// The default port: in the 9100–9999 range Prometheus exporters use. That range is fully
/// allocated on the Prometheus wiki, so any choice collides with some other exporter;
/// `--listen` changes it.
pub const DEFAULT_PORT: u16 = 9469;

/// Connections served at once; further clients wait in the kernel's listen backlog until
/// one ends. Rendering happens on the owner, so this bounds memory and descriptors, not
/// work.
const MAX_CONNECTIONS: usize = 256;

/// The listen backlog asked for (the kernel caps it at `net.core.somaxconn`): a burst of
/// a thousand scrapes waits there instead of having its SYNs dropped.
const BACKLOG: i32 = 4096;

/// A connection is closed after this long, whatever it does (a slow or stuck client
/// cannot hold a slot for ever).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// How long a worker waits for the owner's answer before replying `503`.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// The kernel's figures are re-read at most this often (a scrape storm reads them once).
const KERNEL_REFRESH: Duration = Duration::from_secs(1);

/// Why the exporter cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    #[error("bad --listen address '{0}': expected ADDR:PORT or ADDR, e.g. '127.0.0.1:9469' or '[::1]:9469'")]
    BadAddress(String),
    #[error("'{0}' is not a loopback address, and the metrics reveal the firewall's state{hint}", hint = crate::error::Hint(Some("add --allow-remote to serve other hosts (behind a firewall rule or a TLS proxy)")))]
    NotLoopback(SocketAddr),
    #[error("cannot listen on '{0}': the address is already in use{hint}", hint = crate::error::Hint(Some("another exporter (or another program) listens there; choose another port with --listen")))]
    InUse(SocketAddr),
    #[error("cannot listen on '{0}': {1}")]
    Bind(SocketAddr, io::Error),
    #[error("the HTTP server could not start on '{0}': {1}")]
    Server(SocketAddr, String),
}

/// Parse `--listen`: `ADDR:PORT`, `[V6ADDR]:PORT`, a bare address (the default port), or
/// `localhost[:PORT]`.
pub fn parse_listen(s: &str) -> Result<SocketAddr, ExporterError> {
    let bad = || ExporterError::BadAddress(s.to_string());
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_PORT));
    }
    if let Some(rest) = s.strip_prefix("localhost") {
        let port = match rest.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if rest.is_empty() => DEFAULT_PORT,
            None => return Err(bad()),
        };
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    Err(bad())
}

/// Bind `addr`, refusing a non-loopback address unless `allow_remote`.
pub fn bind(addr: SocketAddr, allow_remote: bool) -> Result<TcpListener, ExporterError> {
    if !addr.ip().is_loopback() && !allow_remote {
        return Err(ExporterError::NotLoopback(addr));
    }
    let listener = TcpListener::bind(addr).map_err(|e| match e.kind() {
        io::ErrorKind::AddrInUse => ExporterError::InUse(addr),
        _ => ExporterError::Bind(addr, e),
    })?;
    // A second listen() on a listening socket only changes its backlog (std asks for 128).
    // SAFETY: listen on a descriptor this listener owns.
    unsafe {
        use std::os::fd::AsRawFd;
        libc::listen(listener.as_raw_fd(), BACKLOG);
    }
    listener
        .set_nonblocking(true)
        .map_err(|e| ExporterError::Server(addr, e.to_string()))?;
    Ok(listener)
}

/// What the kernel says besides the table: limits and the per-CPU counters.
#[derive(Debug, Clone, Default)]
pub struct KernelFigures {
    pub flows_max: Option<u64>,
    pub expect_max: Option<u64>,
    pub conntrack_stat: Option<Vec<(&'static str, u64)>>,
}

/// Reads [`KernelFigures`] (the CLI supplies it: it knows the namespace).
pub type KernelReader = Box<dyn FnMut() -> KernelFigures + Send>;
/// Runs one audit and counts its findings by kind; `None` when it could not run.
pub type AuditRunner = Box<dyn FnMut() -> Option<BTreeMap<&'static str, u64>> + Send>;

/// What the owner's one channel carries.
enum Msg {
    Engine(EngineEvent),
    EngineGone,
    Scrape(tokio::sync::oneshot::Sender<Bytes>),
    Audit(Option<BTreeMap<&'static str, u64>>),
    /// The HTTP thread ended (its runtime could not start).
    HttpGone(String),
}

/// Exporter settings.
pub struct Config {
    /// Re-run the audit this often (`None`: never).
    pub audit_interval: Option<Duration>,
    /// Stop when this becomes true (signals).
    pub stop: Arc<AtomicBool>,
}

/// State the HTTP workers read without asking the owner.
#[derive(Default)]
struct Health {
    /// The first dump is complete.
    ready: AtomicBool,
    /// The engine or the owner has stopped.
    stopped: AtomicBool,
}

/// The owner's counters and its cached rendering.
struct Owner {
    store: Store,
    assessor: Option<Assessor>,
    events: EventCounts,
    overruns: u64,
    resyncs: u64,
    dumps_seen: u64,
    audit: Option<BTreeMap<&'static str, u64>>,
    kernel: KernelReader,
    kernel_figures: KernelFigures,
    kernel_at: Option<Instant>,
    /// Label sets shown so far: they stay, at 0, when their entries go.
    seen: prom::Seen,
    /// Flows by family/proto/state, kept up to date event by event while `live_valid`.
    counts: FlowCounts,
    /// The RELATED flows' keys, kept with `counts`.
    related: HashSet<FlowKey>,
    /// Whether `counts` and `related` match the store. A dump (initial, resync or
    /// background) and re-check answers change it in bulk; the owner recounts in one pass
    /// over the slab as the dump ends, and events keep it from there.
    live_valid: bool,
    /// The last rendering and what it was computed from.
    cached: Option<(Bytes, u64)>,
    /// Bumped by everything that changes the rendering except the store's generation.
    version: u64,
    /// Computations done (for tests and the README's figures).
    pub computed: u64,
}

impl Owner {
    fn on_engine(&mut self, ev: EngineEvent, now: u32) -> Result<(), String> {
        match ev {
            EngineEvent::Records(batch) => {
                for (event, record) in batch {
                    self.events.note(event, matches!(record, Record::Expect(_)));
                    self.apply_counted(event, record, now);
                }
                self.version += 1;
                return Ok(());
            }
            EngineEvent::Rechecked(_) | EngineEvent::DumpBegin { .. } => self.live_valid = false,
            EngineEvent::Overrun => {
                self.overruns += 1;
                self.version += 1;
            }
            EngineEvent::Resync(_) => {
                self.resyncs += 1;
                self.version += 1;
            }
            EngineEvent::DumpEnd { .. } => {
                self.dumps_seen += 1;
                self.live_valid = false;
            }
            EngineEvent::DecodeErrors(_) | EngineEvent::ActionDone(_) => {}
            EngineEvent::Fatal(msg) => return Err(msg),
            _ => {}
        }
        // A finished dump or a re-check answer changed the store in bulk: recount here, once,
        // on the owner thread, so no scrape pays for the pass over the slab.
        let bulk = matches!(ev, EngineEvent::DumpEnd { .. } | EngineEvent::Rechecked(_));
        engine::apply(&mut self.store, ev, now);
        if bulk {
            self.recount();
        }
        Ok(())
    }

    /// Count the store's flows by family/proto/state and collect the RELATED ones: one
    /// pass over the slab, after which events keep both up to date.
    fn recount(&mut self) {
        let mut related = Vec::new();
        prom::count_flows(&self.store, &mut self.counts, &mut related);
        self.related = related.into_iter().collect();
        self.live_valid = true;
    }

    /// Apply one kernel record, keeping `counts` and `related` in step: the flow's old
    /// life leaves its cell, its new life (if any) enters one. Two lookups per event.
    fn apply_counted(&mut self, event: crate::model::Event, record: Record, now: u32) {
        let key = match &record {
            Record::Flow(f) if self.live_valid => FlowKey::of(f),
            _ => {
                self.store.apply(event, record, now);
                return;
            }
        };
        if let Some(old) = self.store.flow(&key) {
            self.counts.remove(old);
        }
        self.store.apply(event, record, now);
        match self.store.flow(&key) {
            Some(new) => {
                self.counts.add(new);
                if new.is_related() {
                    self.related.insert(key);
                } else {
                    self.related.remove(&key);
                }
            }
            None => {
                self.related.remove(&key);
            }
        }
    }

    /// The current rendering: reused while neither the store nor a counter moved and the
    /// kernel's figures are fresh; otherwise computed once for every waiting scrape.
    fn rendering(&mut self) -> Bytes {
        let stale_kernel = self
            .kernel_at
            .is_none_or(|at| at.elapsed() >= KERNEL_REFRESH);
        if stale_kernel {
            let fresh = (self.kernel)();
            self.kernel_at = Some(Instant::now());
            // Counters move all the time; only a change makes a new rendering.
            if fresh.flows_max != self.kernel_figures.flows_max
                || fresh.expect_max != self.kernel_figures.expect_max
                || fresh.conntrack_stat != self.kernel_figures.conntrack_stat
            {
                self.kernel_figures = fresh;
                self.version += 1;
            }
        }
        let key = self.store.generation() ^ self.version.rotate_left(32);
        if let Some((text, k)) = &self.cached {
            if *k == key {
                return text.clone();
            }
        }
        if let Some(a) = self.assessor.as_mut() {
            // Listening sockets, re-read when older than a second (the listener check).
            a.refresh();
        }
        if !self.live_valid {
            // Only while a dump is still streaming (or before the first): the recount after
            // a dump is done as it ends (`on_engine`).
            self.recount();
        }
        let mut m = Metrics {
            flows: Some(self.counts.clone()),
            ..Metrics::default()
        };
        m.assess(&self.store, self.assessor.as_ref(), self.related.iter());
        m.keep_zeros(&mut self.seen);
        m.flows_max = self.kernel_figures.flows_max;
        m.expect_max = self.kernel_figures.expect_max;
        m.conntrack_stat = self.kernel_figures.conntrack_stat.clone();
        m.events = Some(self.events);
        m.overruns = Some(self.overruns);
        m.resyncs = Some(self.resyncs);
        m.audit = self.audit.clone();
        let mut text = String::with_capacity(8192);
        prom::render(&m, &mut text);
        self.computed += 1;
        let text = Bytes::from(text);
        self.cached = Some((text.clone(), key));
        text
    }
}

#[allow(clippy::too_many_arguments)]
/// Serve `server` until `cfg.stop` is set or the engine stops. The caller spawned the
/// engine (`events`, `handle`) on the live table; `store` is empty or pre-sized.
pub fn run(
    listener: TcpListener,
    events: Receiver<EngineEvent>,
    handle: EngineHandle,
    store: Store,
    assessor: Option<Assessor>,
    kernel: KernelReader,
    audit: Option<AuditRunner>,
    cfg: Config,
) -> Result<(), String> {
    let (tx, rx) = mpsc::channel::<Msg>();
    let health = Arc::new(Health::default());

    // Forwarder: the engine's events onto the owner's channel.
    {
        let tx = tx.clone();
        std::thread::Builder::new()
            .name("exporter-forward".into())
            .spawn(move || {
                for ev in events {
                    if tx.send(Msg::Engine(ev)).is_err() {
                        return;
                    }
                }
                let _ = tx.send(Msg::EngineGone);
            })
            .map_err(|e| e.to_string())?;
    }
    {
        let (tx, health) = (tx.clone(), Arc::clone(&health));
        std::thread::Builder::new()
            .name("exporter-http".into())
            .spawn(move || {
                if let Err(e) = serve(listener, tx.clone(), health) {
                    let _ = tx.send(Msg::HttpGone(e.to_string()));
                }
            })
            .map_err(|e| e.to_string())?;
    }
    if let (Some(mut runner), Some(every)) = (audit, cfg.audit_interval) {
        let (tx, stop) = (tx.clone(), Arc::clone(&cfg.stop));
        std::thread::Builder::new()
            .name("exporter-audit".into())
            .spawn(move || loop {
                if tx.send(Msg::Audit(runner())).is_err() {
                    return;
                }
                let until = Instant::now() + every;
                while Instant::now() < until {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(200).min(every));
                }
            })
            .map_err(|e| e.to_string())?;
    }
    drop(tx);

    let mut owner = Owner {
        store,
        assessor,
        events: EventCounts::default(),
        overruns: 0,
        resyncs: 0,
        dumps_seen: 0,
        audit: None,
        kernel,
        kernel_figures: KernelFigures::default(),
        kernel_at: None,
        seen: prom::Seen::default(),
        counts: FlowCounts::default(),
        related: HashSet::new(),
        live_valid: false,
        cached: None,
        version: 0,
        computed: 0,
    };
    let result = owner_loop(&mut owner, &rx, &handle, &health, &cfg);
    health.stopped.store(true, Ordering::SeqCst);
    handle.stop();
    result
}

fn owner_loop(
    owner: &mut Owner,
    rx: &Receiver<Msg>,
    handle: &EngineHandle,
    health: &Health,
    cfg: &Config,
) -> Result<(), String> {
    // Housekeeping (expired expectations dropped, flows past their timeout re-checked)
    // walks every flow: once a second (the dashboard's pace) that was most of the quiet
    // exporter's CPU at a million flows (bench/exporter.sh). Scrapes come every 15 s or
    // more, so every 5 s is fresh enough.
    const TICK: Duration = Duration::from_secs(5);
    let mut next_tick = Instant::now() + TICK;
    let mut waiting: Vec<tokio::sync::oneshot::Sender<Bytes>> = Vec::new();
    loop {
        if cfg.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let wait = next_tick.saturating_duration_since(Instant::now());
        let first = match rx.recv_timeout(wait) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        };
        // What already waits, bounded so a flood of events cannot starve the scrapes.
        let more = std::iter::from_fn(|| rx.try_recv().ok()).take(1024);
        for m in first.into_iter().chain(more) {
            match m {
                Msg::Engine(ev) => {
                    owner.on_engine(ev, handle.now())?;
                    if owner.dumps_seen > 0 {
                        health.ready.store(true, Ordering::SeqCst);
                    }
                }
                Msg::EngineGone => return Err("the engine stopped".into()),
                Msg::HttpGone(e) => {
                    return Err(format!(
                        "the HTTP server stopped accepting connections: {e}"
                    ))
                }
                Msg::Scrape(reply) => waiting.push(reply),
                Msg::Audit(counts) => {
                    if counts.is_some() {
                        owner.audit = counts;
                        owner.version += 1;
                    }
                }
            }
        }
        if !waiting.is_empty() {
            let text = owner.rendering();
            for w in waiting.drain(..) {
                let _ = w.send(text.clone());
            }
        }
        if Instant::now() >= next_tick {
            let now = handle.now();
            if engine::tick(&mut owner.store, handle, now) {
                owner.version += 1;
            }
            next_tick = Instant::now() + TICK;
        }
    }
}

/// The HTTP thread: accept while fewer than `MAX_CONNECTIONS` are open, serve each with
/// hyper's HTTP/1 server. Returns only if the runtime cannot start.
fn serve(listener: TcpListener, tx: Sender<Msg>, health: Arc<Health>) -> io::Result<()> {
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioIo, TokioTimer};

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        loop {
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                return Ok(());
            };
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                // EMFILE, ECONNABORTED, …: this connection is lost, the server is not.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let (tx, health) = (tx.clone(), Arc::clone(&health));
            tokio::spawn(async move {
                let _slot = slot;
                let svc = service_fn(move |req| {
                    let (tx, health) = (tx.clone(), Arc::clone(&health));
                    async move { Ok::<_, std::convert::Infallible>(answer(&req, &tx, &health).await) }
                });
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(TokioIo::new(stream), svc);
                // A client that hangs up, mid-request or mid-response, ends only this.
                let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
            });
        }
    })
}

fn reply(status: u16, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    r
}

/// The answer to one request.
async fn answer<B>(
    req: &hyper::Request<B>,
    tx: &Sender<Msg>,
    health: &Health,
) -> Response<Full<Bytes>> {
    const TEXT: &str = "text/plain; charset=utf-8";
    let msg = |status, s: &'static str| reply(status, TEXT, Bytes::from_static(s.as_bytes()));
    let get = matches!(*req.method(), hyper::Method::GET | hyper::Method::HEAD);
    if !get {
        return msg(405, "only GET and HEAD\n");
    }
    if health.stopped.load(Ordering::SeqCst) {
        return msg(503, "stopping\n");
    }
    match req.uri().path() {
        "/metrics" => {
            let (otx, orx) = tokio::sync::oneshot::channel();
            if tx.send(Msg::Scrape(otx)).is_err() {
                return msg(503, "stopping\n");
            }
            match tokio::time::timeout(SCRAPE_TIMEOUT, orx).await {
                Ok(Ok(body)) => reply(200, "text/plain; version=0.0.4; charset=utf-8", body),
                _ => msg(503, "the store did not answer in time\n"),
            }
        }
        "/healthz" if health.ready.load(Ordering::SeqCst) => msg(200, "ok\n"),
        "/healthz" => msg(503, "dumping the table\n"),
        "/" => msg(
            200,
            "ctscope exporter: /metrics (Prometheus text format), /healthz\n",
        ),
        _ => msg(404, "not found: try /metrics\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> Owner {
        Owner {
            store: Store::new(),
            assessor: None,
            events: EventCounts::default(),
            overruns: 0,
            resyncs: 0,
            dumps_seen: 0,
            audit: None,
            kernel: Box::new(|| KernelFigures {
                flows_max: Some(65536),
                ..KernelFigures::default()
            }),
            kernel_figures: KernelFigures::default(),
            kernel_at: None,
            seen: prom::Seen::default(),
            counts: FlowCounts::default(),
            related: HashSet::new(),
            live_valid: false,
            cached: None,
            version: 0,
            computed: 0,
        }
    }

    #[test]
    fn a_rendering_is_reused_until_the_store_or_a_counter_moves() {
        use crate::model::Event;
        let mut o = owner();
        let first = o.rendering();
        assert_eq!(o.rendering(), first);
        assert_eq!(o.computed, 1, "nothing changed: no second computation");
        assert!(std::str::from_utf8(&first)
            .unwrap()
            .contains("ctscope_flows_max 65536\n"));
        let mut f = crate::model::Flow::new(crate::model::Tuple {
            proto: crate::model::tuple::proto::UDP,
            sport: 53,
            ..Default::default()
        });
        f.timeout = 30;
        o.on_engine(EngineEvent::Records(vec![(Event::New, Record::Flow(f))]), 0)
            .unwrap();
        let second = o.rendering();
        assert_eq!(o.computed, 2);
        let text = std::str::from_utf8(&second).unwrap();
        assert!(text.contains("ctscope_flows{family=\"ipv4\",proto=\"udp\",state=\"none\"} 1\n"));
        assert!(text.contains("ctscope_events_total{kind=\"flow\",event=\"new\"} 1\n"));
        o.on_engine(EngineEvent::Overrun, 0).unwrap();
        assert!(std::str::from_utf8(&o.rendering())
            .unwrap()
            .contains("ctscope_event_overruns_total 1\n"));
        assert_eq!(o.computed, 3);
        // Events keep the counts; they equal a full recount of the store.
        let tcp = |sport: u16, state: u8, related: bool| {
            let mut f = crate::model::Flow::new(crate::model::Tuple {
                proto: crate::model::tuple::proto::TCP,
                sport,
                dport: 80,
                ..Default::default()
            });
            f.state = state;
            f.timeout = 100;
            if related {
                f.status |= crate::model::flow::status::EXPECTED;
            }
            Record::Flow(f)
        };
        assert!(o.live_valid);
        let batch = vec![
            (Event::New, tcp(1000, 1, false)),
            (Event::New, tcp(1001, 3, true)),
            (Event::Update, tcp(1000, 3, false)),
            (Event::Update, tcp(1001, 7, true)),
            (Event::Destroy, tcp(1000, 7, false)),
            (Event::New, tcp(1002, 3, false)),
        ];
        o.on_engine(EngineEvent::Records(batch), 0).unwrap();
        let (mut full, mut related) = (FlowCounts::default(), Vec::new());
        prom::count_flows(&o.store, &mut full, &mut related);
        assert!(
            full == o.counts,
            "incremental counts drifted from the store"
        );
        assert_eq!(related.len(), 1);
        assert_eq!(o.related.len(), 1);
        assert!(o.related.contains(&related[0]));
        let fatal = o.on_engine(EngineEvent::Fatal("socket gone".into()), 0);
        assert_eq!(fatal, Err("socket gone".to_string()));
    }

    #[test]
    fn listen_addresses_parse_or_say_what_is_expected() {
        let p = |s| parse_listen(s).map(|a| a.to_string());
        assert_eq!(p("127.0.0.1:9000").unwrap(), "127.0.0.1:9000");
        assert_eq!(p("[::1]:9000").unwrap(), "[::1]:9000");
        assert_eq!(p("127.0.0.1").unwrap(), format!("127.0.0.1:{DEFAULT_PORT}"));
        assert_eq!(p("localhost:81").unwrap(), "127.0.0.1:81");
        for bad in ["", "127.0.0.1:99999", "nohost:80", "localhostx", "1.2.3:80"] {
            let e = parse_listen(bad).unwrap_err().to_string();
            assert!(e.starts_with("bad --listen address"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_remote_address_needs_the_flag_and_a_port_in_use_is_named() {
        let e = bind("0.0.0.0:0".parse().unwrap(), false).err().unwrap();
        assert!(e.to_string().contains("--allow-remote"), "{e}");
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        let e = bind(addr, false).err().unwrap().to_string();
        assert!(
            e.contains("already in use") && e.contains(&addr.to_string()),
            "{e}"
        );
        assert!(!e.contains('\n') || e.lines().nth(1).unwrap().starts_with("hint:"));
    }
}
