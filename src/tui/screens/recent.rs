//! The Recent screen: recency state kept outside the conntrack table (xt_recent lists and
//! nft dynamic sets), each source's progress through the knock sequence rebuilt from the
//! rules, and the live flows a last stage let in, linked to the list entry that admitted
//! them. Owns its columns (`RecentCol`), its rows (a tree built from
//! `model::recent::RecentView`), selection, detail pane and drawing.
//!
//! ```text
//! Knock progress · snapshot 16:46:59Z                       Hits Seen  Left  Chg
//! xt 10.214.6.2: stage 3/4 (seenbackend), open: …
//!   └ tcp 10.214.6.2:52177 → 10.214.6.1:3306 ESTABLISHED       (Enter: the flow)
//! xt seenping · 2 entries
//!   10.214.6.3                                                 1    18s         new
//! nft inet knock seenping · 2 entries
//!   10.214.6.2                                                           37s
//! ```
//!
//! Everything comes from the app's `RecentState` (snapshots the engine delivers, live or
//! replayed): this module reads no procfs and runs no nft. When there is nothing to show
//! it says why (no snapshot yet, a recording without any, no lists in the kernel, nft
//! without stateful sets), never an empty table as if it were the truth. Ages and expiries
//! are those of the snapshot, whose time heads the screen. `d` and `F` on a list plan
//! their removal here (`plan`); the app opens the one confirmation and the engine runs it.
//!
//! This module must not change the store, the lists or reach the engine.

use std::any::Any;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::Frame;

use crate::actions::{self, Entry, Plan};
use crate::model::recent::{EntryRow, ListRow, RecentView};
use crate::model::store::FlowKey;
use crate::model::Store;
use crate::recent::act::{ListRef, ListScope};
use crate::recent::changes::Change;
use crate::recent::Lang;
use crate::tui::keymap::Action;
use crate::tui::popups::detail::{self, escaped, kv};
use crate::tui::text;
use crate::tui::view::{Column, Rows, TableView};
use crate::tui::widgets::table::{self, TextRow};
use crate::tui::widgets::thousands;

use super::{BuiltRows, Ctx, Drawn, Screen, Source};
use crate::tui::worker::Job;

/// Columns of the Recent screen: the tree, then an entry's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecentCol {
    Item,
    Hits,
    Seen,
    Left,
    Change,
}

impl RecentCol {
    pub const ALL: [RecentCol; 5] = [
        RecentCol::Item,
        RecentCol::Hits,
        RecentCol::Seen,
        RecentCol::Left,
        RecentCol::Change,
    ];
}

impl Column for RecentCol {
    fn title(self) -> &'static str {
        match self {
            RecentCol::Item => "progress · lists → entries → flows",
            RecentCol::Hits => "Hits",
            RecentCol::Seen => "Seen",
            RecentCol::Left => "Left",
            RecentCol::Change => "Chg",
        }
    }

    fn width(self) -> u16 {
        match self {
            RecentCol::Item => 30,
            RecentCol::Hits => 4,
            RecentCol::Seen => 6,
            RecentCol::Left => 6,
            RecentCol::Change => 4,
        }
    }

    fn flexible(self) -> bool {
        self == RecentCol::Item
    }

    fn priority(self) -> u8 {
        match self {
            RecentCol::Item => 0,
            RecentCol::Change => 1,
            RecentCol::Left => 2,
            RecentCol::Seen => 3,
            RecentCol::Hits => 4,
        }
    }
}

/// One line of the screen, by a key that survives a new snapshot (the selection follows
/// its entry): hashes of what the line is about, or the flow's own key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecentRow {
    /// A heading or an explanation (no snapshot, unreadable, nothing found), by position.
    Note(usize),
    /// A source's progress through one machine.
    Source(u64),
    /// An xt_recent list or nft set.
    List(u64),
    /// An address (or element) of a list.
    Entry(u64),
    /// A key the previous snapshot held and this one does not.
    Gone(u64),
    /// A live flow a last stage let in, under the source or entry that admitted it.
    Flow { key: FlowKey, under: u64 },
}

/// What a line shows, pointing into the screen's `RecentView`.
#[derive(Debug, Clone)]
enum Shown {
    Heading(String),
    Note {
        text: String,
        warn: bool,
    },
    /// Index into `progress`, and the machine's rule language (`xt`, `nft`).
    Source(usize, &'static str),
    List(usize),
    Entry(usize, usize),
    Gone(usize, String),
    Flow {
        key: FlowKey,
        line: String,
    },
}

fn hash(parts: &[&str]) -> u64 {
    let mut h = DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

fn lang_tag(l: Lang) -> &'static str {
    match l {
        Lang::Iptables => "xt",
        Lang::Nft => "nft",
    }
}

/// Why there is no snapshot to show.
fn no_snapshot(replay: bool, damaged: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(d) = damaged {
        out.push(d.to_owned());
    }
    out.push(if replay {
        "no recency snapshot in this recording yet: recordings made with --no-recent or before format version 2 hold none".into()
    } else {
        "waiting for the first recency snapshot (lists and sets are read every 1-10 s)"
            .into()
    });
    out
}

/// Build the lines: progress first, then each list with its entries, the flows they let
/// in and the keys gone since the previous look. Pure over the view.
fn build(
    view: Option<&RecentView>,
    langs: &[Lang],
    store: &Store,
    replay: bool,
    damaged: Option<&str>,
) -> Vec<(RecentRow, Shown)> {
    let mut out = Vec::new();
    let note = |out: &mut Vec<(RecentRow, Shown)>, text: String, warn: bool| {
        let i = out.len();
        out.push((RecentRow::Note(i), Shown::Note { text, warn }));
    };
    let Some(v) = view else {
        for n in no_snapshot(replay, damaged) {
            note(&mut out, n, true);
        }
        return out;
    };
    let taken = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_nanos(v.at),
    )
    .to_string();
    let clock = taken.get(11..).unwrap_or(&taken).to_owned();
    for u in &v.unreadable {
        note(&mut out, u.replace('\n', " "), true);
    }
    let i = out.len();
    out.push((
        RecentRow::Note(i),
        Shown::Heading(format!("Knock progress · snapshot {clock}")),
    ));
    if langs.is_empty() {
        note(
            &mut out,
            "no knock sequence in the ruleset (no rule moves a source from one list to the next)"
                .into(),
            false,
        );
    } else if v.progress.is_empty() {
        note(&mut out, "no source has knocked".into(), false);
    }
    for (si, s) in v.progress.iter().enumerate() {
        let id = hash(&[
            "source",
            &s.machine.to_string(),
            &s.progress.addr.to_string(),
        ]);
        let tag = langs.get(s.machine).map_or("?", |l| lang_tag(*l));
        out.push((RecentRow::Source(id), Shown::Source(si, tag)));
        for a in v
            .admitted
            .iter()
            .filter(|a| s.flows.contains(&a.key) && a.machine == s.machine)
        {
            out.push((
                RecentRow::Flow {
                    key: a.key,
                    under: id,
                },
                Shown::Flow {
                    key: a.key,
                    line: flow_line(store, &a.key),
                },
            ));
        }
    }
    if v.lists.iter().all(|l| l.lang != Lang::Iptables)
        && !v.unreadable.iter().any(|u| u.starts_with("xt_recent:"))
    {
        note(
            &mut out,
            "xt_recent: no lists in this namespace (no rule uses -m recent)".into(),
            false,
        );
    }
    if v.lists.iter().all(|l| l.lang != Lang::Nft)
        && !v.unreadable.iter().any(|u| u.starts_with("nft sets:"))
    {
        note(
            &mut out,
            "nft: no set with the dynamic or timeout flag".into(),
            false,
        );
    }
    for (li, l) in v.lists.iter().enumerate() {
        out.push((RecentRow::List(hash(&["list", &l.place])), Shown::List(li)));
        for (ei, e) in l.entries.iter().enumerate() {
            let id = hash(&["entry", &l.place, &e.key]);
            out.push((RecentRow::Entry(id), Shown::Entry(li, ei)));
            for a in &e.admitted {
                out.push((
                    RecentRow::Flow {
                        key: a.key,
                        under: id,
                    },
                    Shown::Flow {
                        key: a.key,
                        line: flow_line(store, &a.key),
                    },
                ));
            }
        }
        for g in &l.gone {
            out.push((
                RecentRow::Gone(hash(&["gone", &l.place, g])),
                Shown::Gone(li, g.clone()),
            ));
        }
    }
    out
}

/// An admitted flow as the other screens print it (`tcp 10.0.0.5:40000 → 10.0.0.1:3306
/// ESTABLISHED`).
fn flow_line(store: &Store, key: &FlowKey) -> String {
    let state = store.flow(key).and_then(|f| f.state_name()).unwrap_or("");
    format!(
        "{} {} {state}",
        text::proto_name(key.orig.proto),
        text::conn(&key.orig)
    )
    .trim_end()
    .to_owned()
}

/// Seconds as the columns show them: whole (`7s`, `1m 5s`).
fn secs(x: f64) -> String {
    text::dur_short(x.max(0.0).round().min(f64::from(u32::MAX)) as u32)
}

fn change_word(c: Option<Change>) -> &'static str {
    match c {
        Some(Change::New) => "new",
        Some(Change::Changed) => "hit",
        Some(Change::Gone) => "gone",
        None => "",
    }
}

/// What a build of the Recent screen hands back: its lines with their row keys, the
/// view they were made from, and the snapshot's generation.
struct Built {
    lines: Vec<(RecentRow, Shown)>,
    data: Option<RecentView>,
    generation: u64,
}

/// The Recent screen's state: the view of the last snapshot, its lines and selection.
#[derive(Default)]
pub struct Recent {
    pub view: TableView<RecentRow>,
    lines: Vec<Shown>,
    data: Option<RecentView>,
    /// `RecentState::generation` the lines were built from.
    built_recent: Option<u64>,
}

impl Recent {
    /// The view the lines were built from (tests read progress and links here).
    pub fn data(&self) -> Option<&RecentView> {
        self.data.as_ref()
    }

    /// The lines as plain text, in display order (tests).
    pub fn texts(&self) -> Vec<String> {
        self.lines.iter().map(|l| self.item(l)).collect()
    }

    fn selected_line(&self) -> Option<&Shown> {
        self.lines
            .get(self.view.sel)
            .filter(|_| !self.view.keys.is_empty())
    }

    fn list_of(&self, li: usize) -> Option<&ListRow> {
        self.data.as_ref()?.lists.get(li)
    }

    /// The list the selection is in (a list row, one of its entries or gone keys).
    fn selected_list(&self) -> Option<(&ListRow, Option<&EntryRow>)> {
        match self.selected_line()? {
            Shown::List(li) | Shown::Gone(li, _) => Some((self.list_of(*li)?, None)),
            Shown::Entry(li, ei) => {
                let l = self.list_of(*li)?;
                Some((l, l.entries.get(*ei)))
            }
            _ => None,
        }
    }

    fn item(&self, l: &Shown) -> String {
        let Some(v) = self.data.as_ref() else {
            return match l {
                Shown::Heading(s) | Shown::Note { text: s, .. } => escaped(s.clone()),
                _ => String::new(),
            };
        };
        match l {
            Shown::Heading(s) => s.clone(),
            Shown::Note { text, .. } => format!("  {}", escaped(text.clone())),
            Shown::Source(i, tag) => v.progress.get(*i).map_or_else(String::new, |s| {
                format!("{tag} {}", escaped(s.progress.text.clone()))
            }),
            Shown::List(li) => v.lists.get(*li).map_or_else(String::new, |l| {
                let n = l.entries.len();
                format!(
                    "{} · {} entr{}",
                    escaped(l.place.clone()),
                    thousands(n),
                    if n == 1 { "y" } else { "ies" }
                )
            }),
            Shown::Entry(li, ei) => v
                .lists
                .get(*li)
                .and_then(|l| l.entries.get(*ei))
                .map_or_else(String::new, |e| format!("  {}", escaped(e.key.clone()))),
            Shown::Gone(_, k) => format!("  {} (gone)", escaped(k.clone())),
            Shown::Flow { line, .. } => format!("    └ {line}"),
        }
    }
}

impl Screen for Recent {
    fn titles(&self) -> (&'static str, &'static str) {
        ("Recent", "Recent")
    }

    fn rows(&self) -> &dyn Rows {
        &self.view
    }

    fn rows_mut(&mut self) -> &mut dyn Rows {
        &mut self.view
    }

    /// Entries of every list and set (or `-` before the first snapshot): a count the
    /// header can take every frame without walking the knock machines.
    fn tab_count(&self, cx: &Ctx) -> String {
        let Some(s) = cx.recent.snapshot() else {
            return "-".into();
        };
        let xt = s
            .lists
            .as_ref()
            .map_or(0, |ls| ls.iter().map(|l| l.entries.len()).sum());
        let nft = s
            .sets
            .as_ref()
            .map_or(0, |ss| ss.iter().map(|x| x.elements.len()).sum::<usize>());
        thousands(xt + nft)
    }

    fn sort_label(&self) -> String {
        "by list".into()
    }

    fn sort(&mut self, _a: Action) -> Result<(), &'static str> {
        Err("the Recent screen keeps the kernel's order: progress, then each list")
    }

    /// The lines join the last snapshot with the store (a knock's admitted flows), so the
    /// whole build is the scan.
    fn job(&self, src: &Source) -> Job<BuiltRows> {
        let (recent, replay) = (Arc::clone(&src.recent), src.replay);
        Job::new(
            move |store: &Store| {
                let v = recent.view(store);
                let langs: Vec<Lang> = recent
                    .snapshot()
                    .map(|s| s.machines.iter().map(|m| m.lang).collect())
                    .unwrap_or_default();
                let l = build(v.as_ref(), &langs, store, replay, recent.damaged());
                Built {
                    lines: l,
                    data: v,
                    generation: recent.generation(),
                }
            },
            |built| Box::new(built) as BuiltRows,
        )
    }

    fn accept(&mut self, rows: BuiltRows, gen: u64) {
        let Ok(built) = rows.downcast::<Built>() else {
            return;
        };
        let Built {
            lines,
            data,
            generation,
        } = *built;
        let keys: Vec<RecentRow> = lines.iter().map(|(k, _)| *k).collect();
        let n = keys.len();
        self.view.accept(keys, n, gen);
        self.lines = lines.into_iter().map(|(_, x)| x).collect();
        self.data = data;
        self.built_recent = Some(generation);
    }

    fn reads_recent(&self) -> bool {
        true
    }

    fn selected(&self) -> Option<Entry> {
        match self.view.selected()? {
            RecentRow::Flow { key, .. } => Some(Entry::Flow(key)),
            _ => None,
        }
    }

    fn select(&mut self, e: Entry) -> bool {
        let Entry::Flow(k) = e else { return false };
        match self
            .view
            .keys
            .iter()
            .position(|r| matches!(r, RecentRow::Flow { key, .. } if *key == k))
        {
            Some(i) => {
                self.view.select(i);
                true
            }
            None => false,
        }
    }

    /// Enter on an admitted flow goes to it on the flows screen; elsewhere it opens the
    /// detail pane.
    fn has_detail(&self) -> bool {
        !matches!(self.view.selected(), Some(RecentRow::Flow { .. }))
    }

    fn goto(&self) -> Option<Entry> {
        self.selected()
    }

    fn plan(
        &self,
        a: Action,
        cx: &Ctx,
        ctx: &actions::Context,
    ) -> Option<Result<(String, Plan), &'static str>> {
        if !matches!(a, Action::Delete | Action::FlushFiltered) {
            return None;
        }
        // `d` on an admitted flow deletes the flow, like anywhere else.
        if a == Action::Delete && matches!(self.view.selected(), Some(RecentRow::Flow { .. })) {
            return None;
        }
        let Some((l, e)) = self.selected_list() else {
            return Some(Err(if a == Action::Delete {
                "select an address of a list to remove it (d), or a list to flush it (F)"
            } else {
                "select a list (or one of its addresses) to flush it"
            }));
        };
        let snap = cx.recent.snapshot()?;
        let Some(list) = ListRef::of(snap, l) else {
            return Some(Err("that list is gone from the latest snapshot"));
        };
        let held: Vec<IpAddr> = l.entries.iter().filter_map(|e| e.addr).collect();
        let addr = match (a, e) {
            (Action::Delete, Some(e)) => match e.addr {
                Some(x) => Some(x),
                None => return Some(Err("this element is not an address: remove it with nft")),
            },
            (Action::Delete, None) => {
                return Some(Err(
                    "select an address of the list to remove it (F flushes the list)",
                ))
            }
            _ => None,
        };
        let scope = ListScope::new(list, addr, held, cx.store, ctx);
        let title = match addr {
            Some(x) => format!("Remove {x} from {}", escaped(l.place.clone())),
            None => format!("Flush {}", escaped(l.place.clone())),
        };
        Some(Ok((title, Plan::list(scope, false))))
    }

    fn detail(&self, cx: &Ctx) -> Option<(&'static str, Vec<Line<'static>>)> {
        let t = cx.theme;
        let v = self.data.as_ref();
        Some(match self.selected_line() {
            Some(Shown::Flow { key, .. }) => match cx.store.flow(key) {
                Some(fl) => ("Flow", detail::flow(cx, key, fl)),
                None => ("Flow", vec![Line::from("(gone)")]),
            },
            Some(Shown::Source(i, _)) => {
                let Some((s, v)) = v.and_then(|v| v.progress.get(*i).map(|s| (s, v))) else {
                    return Some(("Source", vec![]));
                };
                let p = &s.progress;
                let mut out = vec![
                    kv(t, "source", p.addr.to_string()),
                    kv(t, "stage", format!("{} of {} ({})", p.stage, p.of, p.list)),
                    kv(t, "next", p.next.clone()),
                    kv(
                        t,
                        "time",
                        match (p.seconds_left, p.expired) {
                            (_, true) => "the limit ran out: stuck at this stage".into(),
                            (Some(l), _) => format!("{} left (at the snapshot)", secs(l)),
                            (None, _) => "no time limit".into(),
                        },
                    ),
                ];
                for a in v.admitted.iter().filter(|a| s.flows.contains(&a.key)) {
                    out.push(kv(t, "admitted", a.flow.clone()));
                }
                ("Knock progress", out)
            }
            Some(Shown::Entry(li, ei)) => {
                let Some((l, e)) = v
                    .and_then(|v| v.lists.get(*li))
                    .and_then(|l| l.entries.get(*ei).map(|e| (l, e)))
                else {
                    return Some(("Entry", vec![]));
                };
                let at = v.map_or(0, |v| v.at);
                let mut out = vec![
                    kv(t, "list", l.place.clone()),
                    kv(t, "entry", e.key.clone()),
                ];
                if let Some(h) = e.hits {
                    out.push(kv(t, "hits", h.to_string()));
                }
                if let Some(age) = e.age_s {
                    let when = std::time::UNIX_EPOCH
                        + std::time::Duration::from_nanos(at)
                            .saturating_sub(std::time::Duration::from_secs_f64(age.max(0.0)));
                    out.push(kv(
                        t,
                        "last seen",
                        format!(
                            "{} before the snapshot ({})",
                            secs(age),
                            humantime::format_rfc3339_seconds(when)
                        ),
                    ));
                }
                if let Some(x) = e.expires_s {
                    out.push(kv(
                        t,
                        "expires",
                        format!("in {} (at the snapshot)", secs(x)),
                    ));
                }
                if let Some(c) = e.change {
                    out.push(kv(
                        t,
                        "change",
                        format!("{} since the previous look", change_word(Some(c))),
                    ));
                }
                for a in &e.admitted {
                    out.push(kv(t, "admitted", a.flow.clone()));
                }
                if !cx.replay {
                    out.push(kv(
                        t,
                        "act",
                        "d removes this address, F flushes the list".into(),
                    ));
                }
                ("List entry", out)
            }
            Some(Shown::List(li)) | Some(Shown::Gone(li, _)) => {
                let Some(l) = v.and_then(|v| v.lists.get(*li)) else {
                    return Some(("List", vec![]));
                };
                let mut out = vec![
                    kv(t, "list", l.place.clone()),
                    kv(t, "entries", thousands(l.entries.len())),
                ];
                if !l.gone.is_empty() {
                    out.push(kv(t, "gone", l.gone.join(", ")));
                }
                ("List", out)
            }
            Some(Shown::Heading(s)) | Some(Shown::Note { text: s, .. }) => {
                ("Recent", vec![Line::from(escaped(s.clone()))])
            }
            None => ("Recent", vec![]),
        })
    }

    fn draw(&mut self, f: &mut Frame, cx: &Ctx, area: Rect) -> Drawn {
        let range = self.view.window(table::body_height(area));
        let t = cx.theme;
        let mut rows = Vec::new();
        for l in &self.lines[range.clone()] {
            let item = self.item(l);
            let (mut hits, mut seen, mut left, mut chg) =
                (String::new(), String::new(), String::new(), String::new());
            let style = match l {
                Shown::Heading(_) => t.header_cell,
                Shown::Note { warn: true, .. } => t.warn,
                Shown::Note { .. } => t.dim,
                Shown::Source(i, _) => {
                    let p = self.data.as_ref().and_then(|v| v.progress.get(*i));
                    match p {
                        Some(s) if s.progress.open => t.ok,
                        Some(s) if s.progress.expired => t.dim,
                        _ => Style::new(),
                    }
                }
                Shown::List(_) => Style::new().bold(),
                Shown::Entry(li, ei) => {
                    if let Some(e) = self.list_of(*li).and_then(|x| x.entries.get(*ei)) {
                        hits = e.hits.map(|h| h.to_string()).unwrap_or_default();
                        seen = e.age_s.map(secs).unwrap_or_default();
                        left = e.expires_s.map(secs).unwrap_or_default();
                        chg = change_word(e.change).to_owned();
                    }
                    Style::new()
                }
                Shown::Gone(..) => {
                    chg = "gone".into();
                    t.dim
                }
                Shown::Flow { .. } => t.related,
            };
            let cells = RecentCol::ALL
                .iter()
                .map(|c| match c {
                    RecentCol::Item => (item.clone(), Style::new()),
                    RecentCol::Hits => (hits.clone(), Style::new()),
                    RecentCol::Seen => (seen.clone(), Style::new()),
                    RecentCol::Left => (left.clone(), Style::new()),
                    RecentCol::Change => (chg.clone(), t.warn),
                })
                .collect();
            rows.push(TextRow { cells, style });
        }
        let heads: Vec<String> = RecentCol::ALL
            .iter()
            .map(|c| c.title().to_owned())
            .collect();
        let (_, drawn) = table::tail(
            f,
            t,
            area,
            &self.view,
            range.start,
            "no recency state",
            &RecentCol::ALL,
            &heads,
            rows,
        );
        drawn
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recent::{clock::Clock, machine, procfs, Snapshot};
    use crate::tui::screens::testing::Fixture;
    use std::time::{Duration, UNIX_EPOCH};

    const RULES: &str = "*filter\n:INPUT DROP [0:0]\n:ADD_ECHO - [0:0]\n\
        -A INPUT -p icmp -m icmp --icmp-type 8 -m recent --set --name seenping --rsource -j ACCEPT\n\
        -A INPUT -p tcp -m tcp --dport 7 -m recent --rcheck --name seenping --rsource -j ADD_ECHO\n\
        -A INPUT -p tcp -m tcp --dport 3306 -m recent --rcheck --seconds 10 --name seenecho --rsource -j ACCEPT\n\
        -A ADD_ECHO -m recent --set --name seenecho --rsource -j ACCEPT\nCOMMIT\n";

    fn snap(at: u64, seenping: &str, rules: &str) -> Snapshot {
        Snapshot {
            clock: Clock::fixed(250, 10_000, UNIX_EPOCH + Duration::from_secs(at)),
            lists: Ok(vec![procfs::parse("seenping", seenping)]),
            sets: Ok(Vec::new()),
            machines: machine::build(&machine::parse_iptables(rules, "ip")),
            unreadable: Vec::new(),
        }
    }

    fn entry(addr: &str, last: u64) -> String {
        format!("src={addr} ttl: 64 last_seen: {last} oldest_pkt: 1 {last}\n")
    }

    /// A new snapshot adds an address above the selected one: the selection stays on
    /// its entry, which is marked as hit again.
    #[test]
    fn selection_stays_on_its_entry_across_snapshots() {
        let mut fx = Fixture::new();
        fx.recent
            .apply(snap(100, &entry("10.0.0.9", 9000), RULES), 1);
        let mut s = Recent::default();
        fx.prepare(&mut s);
        let i = s
            .texts()
            .iter()
            .position(|t| t.trim() == "10.0.0.9")
            .unwrap();
        s.view.select(i);
        let before = s.view.selected();
        let two = format!("{}{}", entry("10.0.0.2", 9900), entry("10.0.0.9", 9950));
        fx.recent.apply(snap(101, &two, RULES), 2);
        fx.prepare(&mut s);
        assert_eq!(s.view.selected(), before);
        assert_eq!(s.texts()[s.view.sel].trim(), "10.0.0.9");
        let e = &s.data().unwrap().lists[0].entries;
        assert_eq!(
            e.iter().map(|e| e.change).collect::<Vec<_>>(),
            [Some(Change::New), Some(Change::Changed)]
        );
    }

    /// Nothing to show is said, never drawn as an empty table.
    #[test]
    fn empty_states_say_why() {
        let mut fx = Fixture::new();
        let mut s = Recent::default();
        fx.prepare(&mut s);
        assert!(
            s.texts()[0].contains("waiting for the first recency snapshot"),
            "{:?}",
            s.texts()
        );
        let mut none = snap(100, "", "*filter\nCOMMIT\n");
        none.lists = Ok(Vec::new());
        fx.recent.apply(none, 1);
        fx.prepare(&mut s);
        let t = s.texts().join("\n");
        assert!(t.contains("no knock sequence in the ruleset"), "{t}");
        assert!(t.contains("xt_recent: no lists in this namespace"), "{t}");
        assert!(
            t.contains("nft: no set with the dynamic or timeout flag"),
            "{t}"
        );
        let mut gone = snap(101, "", RULES);
        gone.lists = Err(
            "this kernel shows no xt_recent lists (/proc/net/xt_recent is absent)\nhint: modprobe"
                .into(),
        );
        gone.sets = Err("'nft' failed: permission denied".into());
        fx.recent.apply(gone, 2);
        fx.prepare(&mut s);
        let t = s.texts().join("\n");
        assert!(
            t.contains("xt_recent: this kernel shows no xt_recent lists")
                && t.contains("hint: modprobe"),
            "{t}"
        );
        assert!(
            t.contains("nft sets: 'nft' failed: permission denied"),
            "{t}"
        );
        assert!(t.contains("no source has knocked"), "{t}");
        assert!(!t.contains("xt_recent: no lists in this namespace"), "{t}");
    }
}
