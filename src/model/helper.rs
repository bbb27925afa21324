//! Helper names, interned to one byte so a flow record stays compact.
//!
//! The kernel names helpers with at most 16 bytes (`NF_CT_HELPER_NAME_LEN`); the set in
//! use on a machine is tiny (ftp, sip, irc, tftp, …, plus any userspace cthelper), so a
//! process-wide append-only table is cheaper than a string per flow. Interning happens only
//! when a message carries `CTA_HELP`, which is rare, so the lock is off the hot path.

use std::sync::{OnceLock, RwLock};

/// An interned helper name; `HelperId::NONE` means "no helper".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct HelperId(pub u8);

impl HelperId {
    pub const NONE: HelperId = HelperId(0);

    pub fn is_none(self) -> bool {
        self.0 == 0
    }

    /// The helper's kernel name, or `None` for `HelperId::NONE`.
    pub fn name(self) -> Option<&'static str> {
        if self.is_none() {
            return None;
        }
        let t = table().read().unwrap_or_else(|e| e.into_inner());
        t.get(self.0 as usize - 1).copied()
    }
}

fn table() -> &'static RwLock<Vec<&'static str>> {
    static T: OnceLock<RwLock<Vec<&'static str>>> = OnceLock::new();
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
        if let Some(i) = t.iter().position(|n| *n == name) {
            return HelperId(i as u8 + 1);
        }
    }
    let mut t = table().write().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = t.iter().position(|n| *n == name) {
        return HelperId(i as u8 + 1);
    }
    if t.len() >= 254 {
        t.push("(too many helpers)");
        return HelperId(255);
    }
    t.push(Box::leak(name.to_owned().into_boxed_str()));
    HelperId(t.len() as u8)
}

/// Look a name up without interning it (for filters naming a helper never seen).
pub fn lookup(name: &str) -> Option<HelperId> {
    let t = table().read().unwrap_or_else(|e| e.into_inner());
    t.iter()
        .position(|n| n.eq_ignore_ascii_case(name))
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
    }
}
