//! The keymap: ONE table that both dispatches keys and generates the help overlay.
//!
//! A new binding is one row here; the help screen and dispatch follow. This module must not
//! perform actions (see `app`) or draw (see `ui`).

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Where a binding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// The tables (flows, expectations, chains).
    Main,
    /// A confirmation dialog is open.
    Confirm,
    /// The filter bar is being edited (printable keys are typed into it).
    FilterBar,
}

impl Context {
    pub fn title(self) -> &'static str {
        match self {
            Context::Main => "Tables",
            Context::Confirm => "Confirmation",
            Context::FilterBar => "Filter bar",
        }
    }
}

/// Everything a key can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    Help,
    NextTab,
    PrevTab,
    /// Show the screen at this index of `screens::all()`.
    Show(usize),
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Detail,
    Pause,
    ReplayPause,
    ReplayStep,
    ReplayEnd,
    ReplaySpeed,
    Filter,
    Back,
    SortNext,
    SortPrev,
    SortReverse,
    JumpMaster,
    CycleTheme,
    Delete,
    DeleteRelated,
    FlushFiltered,
    FlushHelper,
    FlushStale,
    FlushAll,
    /// Group Top's rows by the next key.
    GroupBy,
    Confirm,
    Cancel,
    ToggleSsh,
    Apply,
}

/// One key: a code and the modifiers that must be held (Shift is implied by upper case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

const fn k(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        mods: KeyModifiers::NONE,
    }
}

const fn ctrl(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        mods: KeyModifiers::CONTROL,
    }
}

const fn code(c: KeyCode) -> Key {
    Key {
        code: c,
        mods: KeyModifiers::NONE,
    }
}

impl Key {
    /// Whether a terminal key event is this key. Shift is ignored for characters (the
    /// character already says it) and required to be absent otherwise only via `mods`.
    pub fn matches(&self, ev: &KeyEvent) -> bool {
        let relevant = KeyModifiers::CONTROL | KeyModifiers::ALT;
        self.code == ev.code && (ev.modifiers & relevant) == (self.mods & relevant)
    }

    /// How the help overlay spells this key.
    pub fn label(&self) -> String {
        let base = match self.code {
            KeyCode::Char(' ') => "space".to_owned(),
            KeyCode::Char(c) => c.to_string(),
            KeyCode::Enter => "Enter".into(),
            KeyCode::Esc => "Esc".into(),
            KeyCode::Tab => "Tab".into(),
            KeyCode::BackTab => "S-Tab".into(),
            KeyCode::Up => "↑".into(),
            KeyCode::Down => "↓".into(),
            KeyCode::PageUp => "PgUp".into(),
            KeyCode::PageDown => "PgDn".into(),
            KeyCode::Home => "Home".into(),
            KeyCode::End => "End".into(),
            KeyCode::Backspace => "Bksp".into(),
            KeyCode::Delete => "Del".into(),
            other => format!("{other:?}"),
        };
        if self.mods.contains(KeyModifiers::CONTROL) {
            format!("C-{base}")
        } else {
            base
        }
    }
}

/// One row of the keymap.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    pub ctx: Context,
    pub keys: &'static [Key],
    pub action: Action,
    pub help: &'static str,
    /// Removed in `--read-only` mode (deletes and flushes).
    pub destructive: bool,
}

const fn b(
    ctx: Context,
    keys: &'static [Key],
    action: Action,
    help: &'static str,
    destructive: bool,
) -> Binding {
    Binding {
        ctx,
        keys,
        action,
        help,
        destructive,
    }
}

use Context::{Confirm as C, FilterBar as F, Main as M};

/// The keymap. Order is the help overlay's order.
pub const KEYMAP: &[Binding] = &[
    b(M, &[k('q'), ctrl('c')], Action::Quit, "quit", false),
    b(M, &[k('?')], Action::Help, "this help", false),
    b(
        M,
        &[code(KeyCode::Tab)],
        Action::NextTab,
        "next screen",
        false,
    ),
    b(
        M,
        &[code(KeyCode::BackTab)],
        Action::PrevTab,
        "previous screen",
        false,
    ),
    b(M, &[k('1')], Action::Show(0), "flows", false),
    b(M, &[k('2')], Action::Show(1), "expectations", false),
    b(M, &[k('3')], Action::Show(2), "RELATED chains", false),
    b(
        M,
        &[k('4'), k('!')],
        Action::Show(3),
        "risk findings + fixes",
        false,
    ),
    b(
        M,
        &[k('5')],
        Action::Show(4),
        "top: who fills the table",
        false,
    ),
    b(M, &[k('6')], Action::Show(5), "recent lists, knocks", false),
    b(M, &[k('k'), code(KeyCode::Up)], Action::Up, "up", false),
    b(
        M,
        &[k('j'), code(KeyCode::Down)],
        Action::Down,
        "down",
        false,
    ),
    b(
        M,
        &[code(KeyCode::PageUp), ctrl('b')],
        Action::PageUp,
        "page up",
        false,
    ),
    b(
        M,
        &[code(KeyCode::PageDown), ctrl('f')],
        Action::PageDown,
        "page down",
        false,
    ),
    b(
        M,
        &[k('g'), code(KeyCode::Home)],
        Action::Top,
        "first row",
        false,
    ),
    b(
        M,
        &[k('G'), code(KeyCode::End)],
        Action::Bottom,
        "last row",
        false,
    ),
    b(
        M,
        &[code(KeyCode::Enter)],
        Action::Detail,
        "detail; on finding: go",
        false,
    ),
    b(
        M,
        &[k(' ')],
        Action::Pause,
        "pause view; store updates",
        false,
    ),
    b(
        M,
        &[k('p')],
        Action::ReplayPause,
        "replay: hold/run clock",
        false,
    ),
    b(
        M,
        &[k('.')],
        Action::ReplayStep,
        "replay: next frame",
        false,
    ),
    b(M, &[k('e')], Action::ReplayEnd, "replay: to the end", false),
    b(
        M,
        &[k('x')],
        Action::ReplaySpeed,
        "replay: 1x/10x/fast",
        false,
    ),
    b(M, &[k('/')], Action::Filter, "filter bar", false),
    b(
        M,
        &[code(KeyCode::Esc)],
        Action::Back,
        "close pane / clear filter",
        false,
    ),
    b(
        M,
        &[k('s'), k('>')],
        Action::SortNext,
        "sort by next column",
        false,
    ),
    b(
        M,
        &[k('S'), k('<')],
        Action::SortPrev,
        "sort by previous column",
        false,
    ),
    b(
        M,
        &[k('r')],
        Action::SortReverse,
        "reverse sort order",
        false,
    ),
    b(
        M,
        &[k('m')],
        Action::JumpMaster,
        "RELATED flow ⇄ its master",
        false,
    ),
    b(M, &[k('t')], Action::CycleTheme, "cycle theme", false),
    b(
        M,
        &[k('b')],
        Action::GroupBy,
        "top: group by next key",
        false,
    ),
    b(
        M,
        &[k('d'), code(KeyCode::Delete)],
        Action::Delete,
        "delete selected entry",
        true,
    ),
    b(
        M,
        &[k('D')],
        Action::DeleteRelated,
        "delete master's RELATED",
        true,
    ),
    b(
        M,
        &[k('F')],
        Action::FlushFiltered,
        "flush filter/group/list",
        true,
    ),
    b(
        M,
        &[k('H')],
        Action::FlushHelper,
        "flush helper's expectations",
        true,
    ),
    b(
        M,
        &[k('Z')],
        Action::FlushStale,
        "flush stale helper state",
        true,
    ),
    b(M, &[k('X')], Action::FlushAll, "flush everything", true),
    b(
        C,
        &[k('y'), code(KeyCode::Enter)],
        Action::Confirm,
        "proceed",
        true,
    ),
    b(
        C,
        &[k('n'), code(KeyCode::Esc)],
        Action::Cancel,
        "cancel",
        false,
    ),
    b(
        C,
        &[k('i')],
        Action::ToggleSsh,
        "include/exclude SSH flow",
        true,
    ),
    b(
        F,
        &[code(KeyCode::Enter)],
        Action::Apply,
        "apply; an error keeps old",
        false,
    ),
    b(
        F,
        &[code(KeyCode::Esc)],
        Action::Cancel,
        "close the bar",
        false,
    ),
];

/// The help row of the folded screen digits.
const SCREENS_HELP: &str = "screen by tab; ! findings";

/// The action bound to `ev` in `ctx`, honouring read-only mode.
pub fn lookup(ctx: Context, ev: &KeyEvent, read_only: bool) -> Option<Action> {
    KEYMAP
        .iter()
        .filter(|b| b.ctx == ctx && !(read_only && b.destructive))
        .find(|b| b.keys.iter().any(|k| k.matches(ev)))
        .map(|b| b.action)
}

/// Whether `ev` is bound in `ctx` to a destructive action that read-only mode removed, so
/// the app can say why nothing happened.
pub fn is_disabled(ctx: Context, ev: &KeyEvent, read_only: bool) -> bool {
    read_only
        && KEYMAP
            .iter()
            .any(|b| b.ctx == ctx && b.destructive && b.keys.iter().any(|k| k.matches(ev)))
}

impl Action {
    /// Whether this steers a replay's clock (listed in the help of a replay only).
    pub fn is_replay(self) -> bool {
        matches!(
            self,
            Action::ReplayPause | Action::ReplayStep | Action::ReplayEnd | Action::ReplaySpeed
        )
    }
}

/// The help overlay's lines: `(context title, [(keys, help)])`, generated from `KEYMAP`.
/// The replay keys are listed for a replay only; a replay lists no deletes or flushes in
/// their place (it refuses them all, and the help must fit 80x24).
pub fn help_sections(
    read_only: bool,
    replay: bool,
) -> Vec<(&'static str, Vec<(String, &'static str)>)> {
    let mut out: Vec<(&'static str, Vec<(String, &'static str)>)> = Vec::new();
    for ctx in [Context::Main, Context::Confirm, Context::FilterBar] {
        let mut rows: Vec<(String, &'static str)> = Vec::new();
        let mut screens: Option<usize> = None;
        for b in KEYMAP
            .iter()
            .filter(|b| b.ctx == ctx && !((read_only || replay) && b.destructive))
            .filter(|b| replay || !b.action.is_replay())
        {
            // The digits that show screens fold into one row ("1-5 !"): the tab line names
            // each screen with its digit, and the help must fit 80x24 as screens are added.
            if let Action::Show(i) = b.action {
                let extra: Vec<String> = b
                    .keys
                    .iter()
                    .filter(|k| !matches!(k.code, KeyCode::Char(c) if c.is_ascii_digit()))
                    .map(Key::label)
                    .collect();
                let at = *screens.get_or_insert_with(|| {
                    rows.push((String::new(), SCREENS_HELP));
                    rows.len() - 1
                });
                let mut keys = format!("1-{}", i + 1);
                for x in &extra {
                    keys.push(' ');
                    keys.push_str(x);
                }
                let prev_extra = rows[at].0.split_once(' ').map(|(_, x)| x.to_owned());
                if extra.is_empty() {
                    if let Some(x) = prev_extra {
                        keys = format!("{keys} {x}");
                    }
                }
                rows[at].0 = keys;
                continue;
            }
            let keys: Vec<String> = b.keys.iter().map(Key::label).collect();
            rows.push((keys.join(" "), b.help));
        }
        if !rows.is_empty() {
            out.push((ctx.title(), rows));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(c: KeyCode, m: KeyModifiers) -> KeyEvent {
        KeyEvent::new(c, m)
    }

    #[test]
    fn no_key_is_bound_twice_in_one_context() {
        for (i, a) in KEYMAP.iter().enumerate() {
            for bnd in &KEYMAP[i + 1..] {
                if a.ctx != bnd.ctx {
                    continue;
                }
                for ka in a.keys {
                    assert!(!bnd.keys.contains(ka), "{ka:?} bound twice");
                }
            }
        }
    }

    #[test]
    fn read_only_removes_destructive_keys() {
        let d = ev(KeyCode::Char('d'), KeyModifiers::NONE);
        assert_eq!(lookup(Context::Main, &d, false), Some(Action::Delete));
        assert_eq!(lookup(Context::Main, &d, true), None);
        assert!(is_disabled(Context::Main, &d, true));
        let shifted = ev(KeyCode::Char('G'), KeyModifiers::SHIFT);
        assert_eq!(lookup(Context::Main, &shifted, true), Some(Action::Bottom));
        let cc = ev(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(lookup(Context::Main, &cc, true), Some(Action::Quit));
        let help = help_sections(true, false);
        assert!(help
            .iter()
            .all(|(_, rows)| rows.iter().all(|(_, h)| !h.contains("flush"))));
    }

    #[test]
    fn the_screen_digits_fold_into_one_help_row() {
        let rows: Vec<(String, &str)> = help_sections(false, false)
            .into_iter()
            .flat_map(|(_, rows)| rows)
            .collect();
        let screens: Vec<_> = rows.iter().filter(|(_, h)| *h == SCREENS_HELP).collect();
        let shows = KEYMAP
            .iter()
            .filter(|b| matches!(b.action, Action::Show(_)))
            .count();
        assert_eq!(screens.len(), 1, "{rows:?}");
        assert_eq!(screens[0].0, format!("1-{shows} !"));
    }

    #[test]
    fn the_replay_keys_are_listed_for_a_replay_only() {
        let listed = |replay| {
            help_sections(false, replay)
                .into_iter()
                .flat_map(|(_, rows)| rows)
                .map(|(_, h)| h)
                .collect::<Vec<_>>()
        };
        let live = listed(false);
        let replay = listed(true);
        assert!(live.iter().all(|h| !h.starts_with("replay:")), "{live:?}");
        assert_eq!(
            replay.iter().filter(|h| h.starts_with("replay:")).count(),
            4
        );
        // A replay refuses every delete and flush: they give the replay keys their room.
        assert!(replay.iter().all(|h| !h.contains("flush")), "{replay:?}");
        assert!(live.iter().any(|h| h.contains("flush")), "{live:?}");
    }
}
