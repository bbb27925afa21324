//! `ctscope flush --stale [--helper NAME] [--dry-run]`: flush stale helper state through
//! the one action planner (`actions::Plan::stale`) and the one confirmation, and the
//! store context that lets `list`/`delete`/`flush --filter` evaluate `stale` terms.
//! What is stale is decided in `model::stale`; this file reads thresholds and sysctls.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;

use clap::Args;

use super::args::{ActArgs, FilterArgs, Global};
use super::commands::{catch_up, confirm_and_execute, context, load, namespace, Verb};
use crate::actions::Plan;
use crate::error::Error;
use crate::filter::{Filter, StoreContext};
use crate::model::stale::{Staleness, StateTimeouts, Thresholds};
use crate::model::Store;

/// `flush --stale` and its thresholds.
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct StaleArgs {
    /// Flush stale helper state: expectations whose master is gone or closing, near their
    /// timeout, or PERMANENT; idle RELATED flows whose master is gone; idle helper masters.
    #[arg(long, conflicts_with = "expect")]
    pub stale: bool,
    /// A flow with a helper is stale after this long idle [default: 1h].
    #[arg(long, value_name = "DURATION", value_parser = duration, requires = "stale")]
    pub master_idle: Option<Duration>,
    /// An orphaned RELATED flow is stale after this long idle [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = duration, requires = "stale")]
    pub related_idle: Option<Duration>,
    /// An expectation is stale once it used this percentage of its helper's timeout
    /// [default: 80].
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(1..=100), requires = "stale")]
    pub expect_used: Option<u8>,
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| e.to_string())
        .and_then(|d| {
            if d.as_secs() > u64::from(u32::MAX) {
                Err("too long".into())
            } else {
                Ok(d)
            }
        })
}

impl StaleArgs {
    pub fn thresholds(&self) -> Thresholds {
        let d = Thresholds::default();
        let secs = |v: Option<Duration>, def: u32| v.map_or(def, |d| d.as_secs() as u32);
        Thresholds {
            expect_used: self
                .expect_used
                .map_or(d.expect_used, |p| f64::from(p) / 100.0),
            related_idle: secs(self.related_idle, d.related_idle),
            master_idle: secs(self.master_idle, d.master_idle),
        }
    }
}

/// Whether `filter` has a `stale` term (it needs the store to judge).
pub fn needs_store(filter: &Filter) -> bool {
    filter.needs_context().0
}

/// The namespace's per-state timeouts (a recording: the kernel defaults).
pub fn timeouts(g: &Global) -> StateTimeouts {
    if g.replay.is_some() {
        return StateTimeouts::default();
    }
    let ns = namespace(g);
    StateTimeouts::read(&|path| crate::netlink::netns::read_sysctl(&ns, path))
}

/// The filter context of a loaded store: its staleness verdicts under `th`.
pub fn store_context<'a>(g: &Global, store: &'a Store, th: Thresholds) -> StoreContext<'a> {
    StoreContext {
        stale: Staleness::new(store, th, timeouts(g)),
        wall_ns: None,
    }
}

/// `ctscope flush --stale`.
pub fn flush(g: &Global, f: &FilterArgs, act: ActArgs, stale: StaleArgs) -> Result<ExitCode> {
    let helper = f.helper();
    if !(f.only_helper() || (f.flags.given.is_empty() && f.filter.is_none())) {
        return Err(Error::usage_hint(
            "flush --stale takes only --helper NAME (and its thresholds)",
            "to choose among stale entries, use 'ctscope delete --filter \"stale and …\"'",
        )
        .into());
    }
    let (mut store, now, mut source) = load(g, true)?;
    let lost = catch_up(g, source.as_mut(), &mut store, now)?;
    let judge = Staleness::new(&store, stale.thresholds(), timeouts(g));
    let mut plan = Plan::stale(&judge, now, helper, &context(g, act));
    plan.lives.lost |= lost;
    confirm_and_execute(plan, act, source, Verb::Flush)
}
