//! What some filter terms need beyond the entry itself: the store's verdict on staleness
//! (`stale`), the wall clock (`age`) and the event being shown (`event`, in `watch`).
//! Front ends pass a [`Context`]; the plain `Filter::match_flow` uses [`NoContext`], under
//! which `stale` and `event` match nothing ([`crate::filter::Filter::needs_context`] lets
//! a front end refuse such a filter instead of showing an empty answer as the truth).
//! This file owns the trait and the store-side implementation; it judges nothing itself.

use crate::model::stale::Staleness;
use crate::model::{Expectation, Flow};

/// The kind of event a `watch` line shows (a sweep line by the change it made).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    New,
    Update,
    Destroy,
}

impl EventKind {
    pub fn bit(self) -> u8 {
        match self {
            EventKind::New => 1,
            EventKind::Update => 2,
            EventKind::Destroy => 4,
        }
    }

    /// From a watch line's `event` and sweep `change` (`add`, `update`, `remove`).
    pub fn of_line(event: &str, change: Option<&str>) -> Option<EventKind> {
        match (event, change) {
            ("new", _) | ("sweep", Some("add")) => Some(EventKind::New),
            ("update", _) | ("sweep", Some("update")) => Some(EventKind::Update),
            ("destroy", _) | ("sweep", Some("remove")) => Some(EventKind::Destroy),
            _ => None,
        }
    }
}

/// Facts a term may ask for. Every method has a default: no staleness verdict, the
/// system clock, no event.
pub trait Context {
    /// Stale reasons of a flow as a `model::stale::Reasons` bit set; `None`: not known here.
    fn flow_stale(&self, _f: &Flow, _now: u32) -> Option<u8> {
        None
    }
    /// Stale reasons of an expectation; `None`: not known here.
    fn expect_stale(&self, _e: &Expectation, _now: u32) -> Option<u8> {
        None
    }
    /// Wall-clock time in ns since the epoch (for `age`, against `CTA_TIMESTAMP_START`).
    /// A replay passes the recording's time.
    fn wall_ns(&self) -> Option<u64> {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_nanos() as u64)
    }
    /// The event being shown, in `watch`.
    fn event(&self) -> Option<EventKind> {
        None
    }
}

/// No facts beyond the entry (and the system clock).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoContext;

impl Context for NoContext {}

/// One event being shown, over an inner context.
pub struct WithEvent<'a>(pub &'a dyn Context, pub EventKind);

impl Context for WithEvent<'_> {
    fn flow_stale(&self, f: &Flow, now: u32) -> Option<u8> {
        self.0.flow_stale(f, now)
    }
    fn expect_stale(&self, e: &Expectation, now: u32) -> Option<u8> {
        self.0.expect_stale(e, now)
    }
    fn wall_ns(&self) -> Option<u64> {
        self.0.wall_ns()
    }
    fn event(&self) -> Option<EventKind> {
        Some(self.1)
    }
}

/// The store's staleness verdicts (`model::stale`) for `stale` terms; the wall clock is
/// `wall_ns` when given (a replay), else the system's.
pub struct StoreContext<'a> {
    pub stale: Staleness<'a>,
    pub wall_ns: Option<u64>,
}

impl Context for StoreContext<'_> {
    fn flow_stale(&self, f: &Flow, now: u32) -> Option<u8> {
        Some(self.stale.flow(f, now).0)
    }
    fn expect_stale(&self, e: &Expectation, now: u32) -> Option<u8> {
        Some(self.stale.expectation(e, now).0)
    }
    fn wall_ns(&self) -> Option<u64> {
        self.wall_ns.or_else(|| NoContext.wall_ns())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::Filter;
    use crate::model::flow::status;
    use crate::model::tuple::{proto, Tuple};

    fn flow() -> Flow {
        let mut f = Flow::new(Tuple {
            proto: proto::TCP,
            sport: 1,
            dport: 2,
            ..Tuple::default()
        });
        f.status = status::SEEN_REPLY;
        f
    }

    struct Fixed;
    impl Context for Fixed {
        fn flow_stale(&self, _f: &Flow, _now: u32) -> Option<u8> {
            Some(crate::model::stale::Reason::OrphanIdle.bit())
        }
        fn wall_ns(&self) -> Option<u64> {
            Some(1_000 * 1_000_000_000)
        }
    }

    #[test]
    fn stale_terms_ask_the_context() {
        let f = flow();
        let any = Filter::parse("stale").unwrap();
        let orphan = Filter::parse("stale=orphan_idle,master_gone").unwrap();
        let gone = Filter::parse("stale=master-gone").unwrap();
        assert!(any.match_flow_in(&f, 0, &Fixed));
        assert!(orphan.match_flow_in(&f, 0, &Fixed));
        assert!(!gone.match_flow_in(&f, 0, &Fixed));
        assert!(!any.match_flow(&f, 0), "no context: no verdict, no match");
        assert_eq!(any.needs_context(), (true, false));
        let e = Filter::parse("stale=later").unwrap_err();
        assert!(
            e.message.contains("unknown stale reason 'later'"),
            "{}",
            e.message
        );
    }

    #[test]
    fn age_reads_the_start_timestamp() {
        let mut f = flow();
        let no_ts = Filter::parse("age>5m").unwrap();
        assert!(
            !no_ts.match_flow_in(&f, 0, &Fixed),
            "no timestamp: never matches"
        );
        // Started 400 s before the context's wall clock.
        f.extra_mut().timestamp = Some((600 * 1_000_000_000, 0));
        assert!(Filter::parse("age>5m")
            .unwrap()
            .match_flow_in(&f, 0, &Fixed));
        assert!(!Filter::parse("age>1h")
            .unwrap()
            .match_flow_in(&f, 0, &Fixed));
        assert!(Filter::parse("age=6m-7m")
            .unwrap()
            .match_flow_in(&f, 0, &Fixed));
        assert!(Filter::parse("age<=400")
            .unwrap()
            .match_flow_in(&f, 0, &Fixed));
        assert!(Filter::parse("age>x").is_err());
    }

    #[test]
    fn secmark_defaults_to_zero() {
        let mut f = flow();
        assert!(Filter::parse("secmark=0").unwrap().match_flow(&f, 0));
        f.extra_mut().secmark = 7;
        assert!(Filter::parse("secmark=7").unwrap().match_flow(&f, 0));
        assert!(!Filter::parse("secmark=0").unwrap().match_flow(&f, 0));
    }

    #[test]
    fn event_terms_need_the_event() {
        let f = flow();
        let destroy = Filter::parse("event=destroy or port=99").unwrap();
        assert_eq!(destroy.needs_context(), (false, true));
        assert!(destroy.match_flow_in(&f, 0, &WithEvent(&NoContext, EventKind::Destroy)));
        assert!(!destroy.match_flow_in(&f, 0, &WithEvent(&NoContext, EventKind::New)));
        assert!(!destroy.match_flow(&f, 0));
        assert!(Filter::parse("event=new,update").unwrap().match_flow_in(
            &f,
            0,
            &WithEvent(&NoContext, EventKind::Update)
        ));
        assert_eq!(
            EventKind::of_line("sweep", Some("remove")),
            Some(EventKind::Destroy)
        );
    }
}
