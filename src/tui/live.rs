//! The production wiring of the dashboard: the store plus the engine handle as the app's
//! model, confirmed requests turned into `actions::Plan`s and sent to the engine, the filter
//! module as the filter bar's compiler, and the engine's clock.
//!
//! Thin adapters only; the behaviour lives in `app` (UI) and in `actions`/`engine`. This
//! module must not render.

use std::collections::HashSet;
use std::sync::mpsc::Receiver;
use std::time::{Duration, SystemTime};

use crate::actions::{Context, Plan};
use crate::engine::{self, Command, EngineEvent, EngineHandle, ReplayControl};
use crate::filter::Filter;
use crate::model::store::{ExpectKey, FlowKey, Stats};
use crate::model::{Event, Record};
use crate::model::{Expectation, Flow, Store};

use super::model::{
    Applied, Clock, CommandSink, FilterFactory, FilterFault, Model, ReplayRequest, Request,
    RowFilter,
};
use super::TuiOptions;

/// The store with the engine that feeds it: the app's model in production.
pub struct LiveModel {
    pub store: Store,
    pub engine: EngineHandle,
    /// Records applied from the engine so far: a plan says up to where it saw them
    /// (`Plan::after`), and the engine shows it the rest.
    pub applied: u64,
}

impl Model for LiveModel {
    type Event = EngineEvent;

    fn apply(&mut self, event: EngineEvent, now: u32) -> Applied {
        if let EngineEvent::Records(batch) = &event {
            self.applied += batch.len() as u64;
        }
        <Store as Model>::apply(&mut self.store, event, now)
    }
    fn observe(&self, event: &EngineEvent, seen: &mut dyn FnMut(Event, &Record)) {
        super::model::observe_records(event, seen)
    }
    /// `engine::tick`: expire expectations, ask the engine to re-check flows whose timeout
    /// passed without a DESTROY (pre-existing flows under `nf_conntrack_events=2`).
    fn tick(&mut self, now: u32) -> bool {
        engine::tick(&mut self.store, &self.engine, now)
    }
    fn generation(&self) -> u64 {
        self.store.generation()
    }
    fn stats(&self) -> Stats {
        self.store.stats()
    }
    fn flow_count(&self) -> usize {
        self.store.flow_count()
    }
    fn expect_count(&self) -> usize {
        self.store.expect_count()
    }
    fn flow(&self, key: &FlowKey) -> Option<&Flow> {
        self.store.flow(key)
    }
    fn expectation(&self, key: &ExpectKey) -> Option<&Expectation> {
        self.store.expectation(key)
    }
    fn for_each_flow(&self, f: &mut dyn FnMut(&Flow)) {
        self.store.flows().for_each(f)
    }
    fn for_each_expectation(&self, f: &mut dyn FnMut(&Expectation)) {
        self.store.expectations().for_each(f)
    }
    fn master_of(&self, key: &FlowKey) -> Option<&Flow> {
        self.store.master_of(key)
    }
    fn expectation_of(&self, key: &FlowKey) -> Option<&Expectation> {
        self.store.expectation_of(key)
    }
    fn related_of(&self, master: &FlowKey) -> Vec<FlowKey> {
        self.store.related_of(master)
    }
    fn expectations_of(&self, master: &FlowKey) -> Vec<ExpectKey> {
        self.store.expectations_of(master)
    }
    fn store(&self) -> Option<&Store> {
        Some(&self.store)
    }
}

impl RowFilter for Filter {
    fn match_flow(&self, flow: &Flow, now: u32) -> bool {
        Filter::match_flow(self, flow, now)
    }
    fn match_expect(&self, e: &Expectation, now: u32) -> bool {
        Filter::match_expect(self, e, now)
    }
}

/// The filter bar's compiler: the filter module's language. Its error spans are byte
/// offsets; the bar counts characters.
pub fn filters() -> FilterFactory {
    Box::new(|text: &str| match Filter::parse(text) {
        Ok(f) => Ok(Box::new(f) as Box<dyn RowFilter>),
        Err(e) => {
            let chars = |b: usize| {
                text.get(..b.min(text.len()))
                    .map_or(b, |s| s.chars().count())
            };
            let pos = chars(e.pos);
            Err(FilterFault {
                pos,
                len: chars(e.pos + e.len).saturating_sub(pos),
                message: e.message,
            })
        }
    })
}

/// Turns confirmed requests into plans over the store and sends them to the engine.
/// The TUI already decided about the SSH flow (left out unless the user pressed `i`), so
/// plans are built with `include_ssh` set and exactly the keys the dialog showed.
pub struct PlanSink {
    pub ctx: Context,
}

impl PlanSink {
    fn ctx(&self) -> Context {
        Context {
            include_ssh: true,
            ..self.ctx.clone()
        }
    }

    /// The plan for one confirmed request: exactly the entries it names, each in the life
    /// the store holds for it now. The dialog froze those entries when it opened and left
    /// out every one an event showed destroyed or re-created since, so this never widens
    /// what the user saw; `_now` is kept for sinks that plan by time.
    pub fn plan(&self, store: &Store, request: Request, _now: u32) -> Result<Plan, String> {
        let ctx = self.ctx();
        let flows_plan = |keys: Vec<FlowKey>, what: &str| {
            let set: HashSet<FlowKey> = keys.into_iter().collect();
            Plan::flows(store, &|f| set.contains(&FlowKey::of(f)), what, &ctx)
        };
        let expects_plan = |keys: Vec<ExpectKey>, what: &str| {
            let set: HashSet<ExpectKey> = keys.into_iter().collect();
            Plan::expectations(store, &|e| set.contains(&ExpectKey::of(e)), what)
        };
        Ok(match request {
            Request::DeleteFlows(keys) => flows_plan(keys, "the selected flow(s)"),
            Request::DeleteExpects(keys) => expects_plan(keys, "the selected expectation(s)"),
            Request::FlushFlows { filter, flows } => {
                let what = match &filter {
                    Some(t) => format!("flows matching '{t}' (as shown)"),
                    None => "every flow shown".into(),
                };
                flows_plan(flows, &what)
            }
            Request::FlushHelperExpects(name) => Plan::flush_helper(store, &name),
            Request::Replay(_) => return Err("a replay control removes nothing".into()),
            Request::FlushAll { flows, expects } => {
                let mut plan = flows_plan(flows, "every flow and expectation shown");
                let e = expects_plan(expects, "");
                plan.expects = e.expects;
                plan.sample.extend(e.sample);
                plan.targets.extend(e.targets);
                plan.lives.extend(e.lives);
                plan
            }
        })
    }
}

impl CommandSink<LiveModel> for PlanSink {
    fn send(&mut self, model: &LiveModel, request: Request) -> Result<(), String> {
        if let Request::Replay(r) = request {
            let c = match r {
                ReplayRequest::TogglePause => ReplayControl::TogglePause,
                ReplayRequest::Step => ReplayControl::Step,
                ReplayRequest::End => ReplayControl::End,
                ReplayRequest::Speed(s) => ReplayControl::Speed(s.engine()),
            };
            return model
                .engine
                .send(Command::Replay(c))
                .map_err(|e| e.to_string());
        }
        let mut plan = self.plan(&model.store, request, model.engine.now())?;
        plan.after = Some(model.applied);
        if plan.is_empty() {
            return Err("nothing to remove any more".into());
        }
        model
            .engine
            .send(Command::Execute(Box::new(plan)))
            .map_err(|e| e.to_string())
    }
}

/// The engine's clock (seconds since the source started) with the wall time of its start.
pub struct EngineClock {
    clock: engine::Clock,
    epoch: SystemTime,
}

impl EngineClock {
    /// A live source: store second zero is "now minus the time elapsed so far".
    pub fn new(clock: engine::Clock) -> EngineClock {
        let epoch = SystemTime::now() - Duration::from_nanos(clock.now_ns());
        EngineClock { clock, epoch }
    }

    /// A replay: store second zero is when the recording started
    /// (`Replay::recorded_start`), so absolute times are those of the recorded session,
    /// not of today.
    pub fn recorded(clock: engine::Clock, start: SystemTime) -> EngineClock {
        EngineClock {
            clock,
            epoch: start,
        }
    }
}

impl Clock for EngineClock {
    fn now(&self) -> u32 {
        self.clock.now()
    }
    fn epoch(&self) -> SystemTime {
        self.epoch
    }
}

/// Run the dashboard over a live (or replayed) engine: the one call `cli` needs.
///
/// `store` should already hold the initial load (e.g. from `engine::load`) or be empty;
/// `events`/`engine` come from `Engine::spawn`; `ctx` from `actions::Context::detect`;
/// `assessor` is the helper-risk assessor built once for the namespace shown (for a
/// replay, without this machine's sockets). A replay's `opts.recorded_start` becomes the
/// clock's epoch.
pub fn run_live(
    opts: TuiOptions,
    store: Store,
    events: Receiver<EngineEvent>,
    engine: EngineHandle,
    ctx: Context,
    assessor: Option<crate::risk::Assessor>,
) -> anyhow::Result<()> {
    let clock = Box::new(match opts.recorded_start {
        Some(start) => EngineClock::recorded(engine.clock(), start),
        None => EngineClock::new(engine.clock()),
    });
    let model = LiveModel {
        store,
        engine,
        applied: 0,
    };
    super::run(
        opts,
        model,
        events,
        Box::new(PlanSink { ctx }),
        filters(),
        clock,
        assessor.map(|a| Box::new(a) as Box<dyn super::risk::Assess>),
    )
}

/// Read `/proc/sys/net/netfilter/nf_conntrack_max` of the current namespace (the header's
/// gauge); `None` when it cannot be read.
pub fn conntrack_max_here() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_max")
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_errors_become_char_spans() {
        let f = filters();
        let Err(e) = f("é=1 and dprt=21") else {
            panic!("must fail")
        };
        assert!(e.len > 0);
        let chars: Vec<char> = "é=1 and dprt=21".chars().collect();
        assert!(e.pos + e.len <= chars.len(), "{e:?}");
        assert!(f("proto=tcp and dport=21").is_ok());
    }

    #[test]
    fn a_replay_dates_store_seconds_from_the_recording_start() {
        use std::sync::atomic::AtomicU64;
        use std::sync::Arc;
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_763_701_200);
        let t = Arc::new(AtomicU64::new(90 * 1_000_000_000));
        let c = EngineClock::recorded(engine::Clock::Virtual(t), start);
        assert_eq!(c.now(), 90);
        assert_eq!(c.epoch(), start);
        assert_eq!(c.wall(90), start + Duration::from_secs(90));
        // Live: the epoch is "now minus elapsed", i.e. close to today.
        let live = EngineClock::new(engine::Clock::Wall(std::time::Instant::now()));
        assert!(live.epoch() > start);
    }

    /// The whole path of a replay key below the app: the sink turns the request into a
    /// `Command::Replay` and the engine's replay obeys it. A recording whose last frame is
    /// an hour in ends at once after `End`, and a held replay delivers nothing.
    #[test]
    fn replay_requests_reach_the_engines_replay_clock() {
        use crate::engine::record::{Kind, Reader, Writer};
        use crate::engine::{Engine, Options, Replay, Speed, EXPECTS, FLOWS};
        use std::sync::mpsc::RecvTimeoutError;
        let mut w = Writer::new(Vec::new(), "mem".into(), 0).unwrap();
        w.frame(0, Kind::DumpBegin, &[FLOWS | EXPECTS]).unwrap();
        w.frame(0, Kind::DumpEnd, &[FLOWS | EXPECTS]).unwrap();
        w.frame(3_600_000_000_000, Kind::Overrun, &[]).unwrap();
        let bytes = w.into_inner().unwrap();
        let reader = Reader::new(std::io::Cursor::new(bytes), "mem".into()).unwrap();
        let replay = Replay::new(reader, Speed::RealTime(1.0));
        let (events, engine) = Engine::spawn(Box::new(replay), Options::default()).unwrap();
        let clock = engine.clock();
        let model = LiveModel {
            store: Store::new(),
            engine,
            applied: 0,
        };
        let mut sink = PlanSink {
            ctx: Context::default(),
        };
        // Deadlines only bound a failure; a passing run never waits for them.
        let until_closed = |events: &Receiver<EngineEvent>| {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                match events.recv_timeout(left) {
                    Ok(_) => {}
                    Err(RecvTimeoutError::Disconnected) => return true,
                    Err(RecvTimeoutError::Timeout) => return false,
                }
            }
        };
        sink.send(&model, Request::Replay(ReplayRequest::TogglePause))
            .unwrap();
        sink.send(
            &model,
            Request::Replay(ReplayRequest::Speed(super::super::ReplaySpeed::Fast)),
        )
        .unwrap();
        // Held, even at full pace: the hour-later frame is not played.
        assert!(matches!(
            events.recv_timeout(Duration::from_millis(100)),
            Ok(_) | Err(RecvTimeoutError::Timeout)
        ));
        assert!(clock.now() < 3600, "held at {}", clock.now());
        sink.send(&model, Request::Replay(ReplayRequest::End))
            .unwrap();
        assert!(until_closed(&events), "the replay did not end after End");
        assert_eq!(clock.now(), 3600);
    }

    #[test]
    fn plan_for_flush_all_is_the_frozen_entries_only() {
        use crate::model::tuple::{proto, Tuple};
        use crate::model::Event;
        let mut store = Store::new();
        let mk = |sport| {
            let mut f = Flow::new(Tuple {
                proto: proto::UDP,
                sport,
                dport: 53,
                ..Tuple::default()
            });
            f.id = u32::from(sport);
            f
        };
        store.apply(Event::New, Record::Flow(mk(1)), 0);
        store.apply(Event::New, Record::Flow(mk(2)), 0);
        let shown = vec![FlowKey::of(&mk(1))];
        let sink = PlanSink {
            ctx: Context::default(),
        };
        let plan = sink
            .plan(
                &store,
                Request::FlushAll {
                    flows: shown,
                    expects: vec![],
                },
                0,
            )
            .unwrap();
        // The flow created after the dialog opened (sport 2) is not in the plan.
        assert_eq!(plan.targets.len(), 1);
        assert_eq!(plan.flows, 1);
    }
}
