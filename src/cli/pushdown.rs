//! Where a one-shot command's selection becomes a kernel-side dump filter: `list`,
//! `delete`, `flush FILTER` and `top` (without `--interval`) ask the kernel for the part
//! of the table their filter can select (`filter::Required` → `netlink::dump::DumpFilter`),
//! then filter every entry in full as before. The dashboard, `watch`, `top --interval`,
//! the exporter and `list --prom` need the whole table and never come here.
//!
//! A filtered dump leaves out entries that other entries' output depends on; they are
//! fetched back, so nothing the user sees changes:
//! - the master of every RELATED flow kept (its reply tuple and helper judge the RELATED
//!   flow's freedom and findings), one `conntrack -G` each. Every load does this, filtered
//!   or not, since even a whole dump can miss an entry (`engine::fetch_missing_masters`);
//! - for `delete`/`flush`, every RELATED flow (one kernel-filtered dump by status
//!   `EXPECTED`, here), so the plan still counts the masters it would cut; then their
//!   masters as above.
//!
//! `CTSCOPE_KERNEL_FILTER=0` turns the pushdown off (benchmarks compare both);
//! `CTSCOPE_DEBUG_DUMP=1` prints one line per dump on stderr: what was asked, how many
//! messages came, whether the kernel said it filtered (`NLM_F_DUMP_FILTERED`), and a
//! fallback to the plain dump.

use crate::decode::{self, Message};
use crate::engine::Live;
use crate::error::Result;
use crate::filter::Filter;
use crate::model::flow::status;
use crate::model::Store;
use crate::netlink::dump::{DumpFilter, DumpOutcome};
use crate::netlink::Table;

/// What a one-shot command selects, for the dump that loads its store.
#[derive(Debug, Clone, Copy)]
pub enum Selection<'a> {
    /// The whole table (no pushdown).
    Whole,
    /// Flows matching the filter; `children`: the plan counts masters (delete, flush).
    Flows { filter: &'a Filter, children: bool },
    /// Expectations matching the filter (the flow table stays whole: it judges them).
    Expects(&'a Filter),
}

/// Whether `CTSCOPE_KERNEL_FILTER=0` turned the pushdown off.
fn enabled() -> bool {
    std::env::var("CTSCOPE_KERNEL_FILTER").map_or(true, |v| v != "0")
}

fn debug() -> bool {
    std::env::var_os("CTSCOPE_DEBUG_DUMP").is_some_and(|v| !v.is_empty() && v != "0")
}

/// The filters for the flow and expectation dumps of `sel` (defaults: the whole tables).
/// A `stale` term judges an entry by others: its command needs the whole table.
pub fn filters(sel: Selection<'_>) -> (DumpFilter, DumpFilter) {
    if !enabled() {
        return Default::default();
    }
    match sel {
        Selection::Whole => Default::default(),
        Selection::Flows { filter, .. } | Selection::Expects(filter)
            if filter.needs_context().0 =>
        {
            Default::default()
        }
        Selection::Flows { filter, .. } => (
            DumpFilter::for_flows(&filter.required()),
            DumpFilter::default(),
        ),
        Selection::Expects(filter) => (
            DumpFilter::default(),
            DumpFilter::for_expects(&filter.required()),
        ),
    }
}

/// After a load with `flows` pushed down: report (debug), clear the filters so later dumps
/// of this source are whole, and fetch back what the output depends on (module docs).
/// `masters` is what the load fetched itself (`LoadStats::masters`): every load asks for
/// the masters of the RELATED flows it holds (`engine::fetch_missing_masters`), and this
/// asks again for those of the children it adds.
pub fn finish(
    live: &mut Live,
    store: &mut Store,
    now: u32,
    sel: Selection<'_>,
    (flows, expects): (&DumpFilter, &DumpFilter),
    masters: crate::engine::MasterFetch,
) -> Result<()> {
    let (fo, eo) = live.last_dumps();
    if debug() {
        report("flows", flows, &fo);
        report("expectations", expects, &eo);
    }
    live.set_dump_filters(DumpFilter::default(), DumpFilter::default());
    let (mut got, mut missing) = (masters.fetched, masters.missing);
    // The kernel sent every flow (no filter, or it refused ours): no child is left out.
    let filtered = !flows.is_none() && fo.fallback.is_none();
    if let (true, Selection::Flows { children: true, .. }) = (filtered, sel) {
        let related = DumpFilter {
            family: flows.family,
            status: Some((status::EXPECTED, status::EXPECTED)),
            ..DumpFilter::default()
        };
        let conn = crate::engine::Source::conn(live)?;
        let out = conn.dump_filtered(Table::Flows, &related, &mut |m| apply(store, now, m))?;
        if debug() {
            report("RELATED flows", &related, &out);
        }
        let more = crate::engine::fetch_missing_masters(live, store, now)?;
        (got, missing) = (got + more.fetched, missing + more.missing);
    }
    if debug() && missing > 0 {
        eprintln!("ctscope: debug: masters of RELATED flows fetched: {got} of {missing}");
    }
    Ok(())
}

/// One dumped or fetched entry into the store, as the load applies it.
fn apply(store: &mut Store, now: u32, m: &[u8]) {
    if let Ok((Message::Record { event, record }, _)) = decode::message(m) {
        store.apply(event, record, now);
    }
}

fn report(what: &str, f: &DumpFilter, o: &DumpOutcome) {
    eprintln!(
        "ctscope: debug: dump {what}: kernel filter {}; {} messages; kernel filtered: {}{}",
        f.describe(),
        o.messages,
        if o.filtered { "yes" } else { "no" },
        match o.fallback {
            Some(e) => format!(
                "; refused ({}), dumped unfiltered",
                std::io::Error::from_raw_os_error(e)
            ),
            None => String::new(),
        }
    );
}
