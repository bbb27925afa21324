//! Helper names, interned to one byte so a flow record stays compact.
//!
//! The kernel names helpers with at most 16 bytes (`NF_CT_HELPER_NAME_LEN`); the set in
//! use on a machine is tiny (ftp, sip, irc, tftp, …, plus any userspace cthelper), so a
//! process-wide append-only table is cheaper than a string per flow. Interning happens only
//! when a message carries `CTA_HELP`, which is rare, so the lock is off the hot path.

use std::sync::{OnceLock, RwLock};

/// Count one flow (`flow`) or one expectation under helper `h` in `per`, a list of
/// `(helper, flows, expectations)` in the order helpers were first seen: the header's
/// helper list and its stale counts both tally this way.
pub fn tally(per: &mut Vec<(HelperId, usize, usize)>, h: HelperId, flow: bool) {
    let i = match per.iter().position(|p| p.0 == h) {
        Some(i) => i,
        None => {
            per.push((h, 0, 0));
            per.len() - 1
        }
    };
    if flow {
        per[i].1 += 1;
    } else {
        per[i].2 += 1;
    }
}

/// An interned helper name; `HelperId::NONE` means "no helper".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct HelperId(pub u8);

impl HelperId {
    pub const NONE: HelperId = HelperId(0);

    pub fn is_none(self) -> bool {
        self.0 == 0
    }

    /// The helper's kernel name, exact (for JSON, filters and requests to the kernel), or
    /// `None` for `HelperId::NONE`.
    pub fn name(self) -> Option<&'static str> {
        self.slot().map(|s| s.name)
    }

    /// The name as a terminal may show it (`escape::escape`): a userspace helper names
    /// itself, so its name is outside data. Interned with the name, so screens that show
    /// it on every row allocate nothing.
    pub fn shown(self) -> Option<&'static str> {
        self.slot().map(|s| s.shown)
    }

    fn slot(self) -> Option<Slot> {
        if self.is_none() {
            return None;
        }
        let t = table().read().unwrap_or_else(|e| e.into_inner());
        t.get(self.0 as usize - 1).copied()
    }
}

/// One interned name and its terminal-safe form (the same `&str` when nothing needs escaping).
#[derive(Clone, Copy)]
struct Slot {
    name: &'static str,
    shown: &'static str,
}

impl Slot {
    fn leak(name: &str) -> Slot {
        let name: &'static str = Box::leak(name.to_owned().into_boxed_str());
        let shown = match crate::escape::escape(name) {
            std::borrow::Cow::Borrowed(b) => b,
            std::borrow::Cow::Owned(o) => Box::leak(o.into_boxed_str()),
        };
        Slot { name, shown }
    }
}

fn table() -> &'static RwLock<Vec<Slot>> {
    static T: OnceLock<RwLock<Vec<Slot>>> = OnceLock::new();
    T.get_or_init(|| RwLock::new(Vec::new()))
}

/// Intern `name`, returning the same id for the same name for the life of the process.
///
/// Names are leaked on purpose: at most 255 distinct names can ever exist, each ≤ 16 bytes.
/// Past 255 distinct names (a hostile userspace helper factory) every new name maps to
/// the last slot, which is reported as `"?"`-like overflow rather than growing unbounded.
pub fn intern(name: &str) -> HelperId {
    if name.is_empty() {
        return HelperId::NONE;
    }
    {
        let t = table().read().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = t.iter().position(|n| n.name == name) {
            return HelperId(i as u8 + 1);
        }
    }
    let mut t = table().write().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = t.iter().position(|n| n.name == name) {
        return HelperId(i as u8 + 1);
    }
    if t.len() >= 254 {
        // One overflow slot, pushed once: the table must not grow with each new name.
        if t.len() == 254 {
            t.push(Slot::leak("(too many helpers)"));
        }
        return HelperId(255);
    }
    t.push(Slot::leak(name));
    HelperId(t.len() as u8)
}

/// Look a name up without interning it (for filters naming a helper never seen).
pub fn lookup(name: &str) -> Option<HelperId> {
    let t = table().read().unwrap_or_else(|e| e.into_inner());
    t.iter()
        .position(|n| n.name.eq_ignore_ascii_case(name))
        .map(|i| HelperId(i as u8 + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_name_same_id() {
        let a = intern("ftp");
        let b = intern("ftp");
        assert_eq!(a, b);
        assert_eq!(a.name(), Some("ftp"));
        assert_eq!(HelperId::NONE.name(), None);
        assert_eq!(lookup("FTP"), Some(a));
        let odd = intern("x\x1b]0;t\x07");
        assert_eq!(odd.name(), Some("x\x1b]0;t\x07"));
        assert_eq!(odd.shown(), Some("x\\x1b]0;t\\x07"));
        assert_eq!(a.shown(), Some("ftp"));
    }
}
