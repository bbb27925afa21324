//! Conntrack label names: the bit → name map of connlabel.conf, read the way conntrack(8)
//! reads it, so `labels=` and `--label` mean the same words in both tools.
//!
//! conntrack(8) (libnetfilter_conntrack's `__labelmap_new`, src/conntrack/labels.c) reads
//! only `/etc/xtables/connlabel.conf`; nft reads `/etc/connlabel.conf`. ctscope takes the
//! first that exists, or the file named by `CTSCOPE_CONNLABEL_CONF` (empty: no map). The
//! map is chosen once at the top of the program (`install`); library code asks `active()`
//! and, until something is installed, sees an empty map (bit numbers only), so tests never
//! depend on the machine's files. Names stay exactly as written: escaping them for a
//! terminal is the front end's job.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Environment variable naming the label map file ctscope reads instead of the defaults.
pub const ENV: &str = "CTSCOPE_CONNLABEL_CONF";

/// The files ctscope looks at, in order: conntrack(8)'s, then nft's.
pub const PATHS: [&str; 2] = ["/etc/xtables/connlabel.conf", "/etc/connlabel.conf"];

/// Label bits the kernel has (`XT_CONNLABEL_MAXBIT` + 1).
pub const BITS: usize = 128;

/// Bit numbers the file format accepts (libnetfilter_conntrack's `MAX_BITS`); bits at or
/// above `BITS` are valid lines that name nothing the kernel can set.
const FILE_BITS: u64 = 1024;

/// Names of label bits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelMap {
    names: Vec<Option<Box<str>>>,
    path: Option<PathBuf>,
}

impl LabelMap {
    /// Parse connlabel.conf text exactly as libnetfilter_conntrack does: `#` lines are
    /// comments; each other line is a number (decimal, `0x` hex or `0` octal, as strtoul
    /// with base 0) and a name; a bit named twice keeps its first name, a name used twice
    /// keeps its first bit, and a name with anything but letters, digits, space and `-` is
    /// skipped (so names are safe to print and to put in a filter).
    pub fn parse(text: &str) -> LabelMap {
        let mut names: Vec<Option<Box<str>>> = vec![None; BITS];
        let mut seen = vec![false; FILE_BITS as usize];
        let mut taken: Vec<Box<str>> = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') {
                continue;
            }
            let Some((bit, rest)) = strtoul(line) else {
                continue;
            };
            if bit >= FILE_BITS || seen[bit as usize] {
                continue;
            }
            let name = rest.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\x0b' | '\x0c'));
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b' ' || b == b'-')
                || taken.iter().any(|t| &**t == name)
            {
                continue;
            }
            seen[bit as usize] = true;
            taken.push(name.into());
            if let Some(slot) = names.get_mut(bit as usize) {
                *slot = Some(name.into());
            }
        }
        LabelMap { names, path: None }
    }

    /// Read and parse `path`.
    pub fn load(path: &Path) -> std::io::Result<LabelMap> {
        let text = std::fs::read_to_string(path)?;
        Ok(LabelMap {
            path: Some(path.to_owned()),
            ..LabelMap::parse(&text)
        })
    }

    /// The map this machine's conntrack(8) would use: `$CTSCOPE_CONNLABEL_CONF` when set
    /// (an empty value means none), else the first readable file of `PATHS`. None found is
    /// an empty map: labels then show as bit numbers, as the kernel holds them.
    pub fn system() -> LabelMap {
        if let Some(p) = std::env::var_os(ENV) {
            if p.is_empty() {
                return LabelMap::default();
            }
            return LabelMap::load(Path::new(&p)).unwrap_or_else(|_| LabelMap {
                path: Some(PathBuf::from(p)),
                ..LabelMap::default()
            });
        }
        PATHS
            .iter()
            .find_map(|p| LabelMap::load(Path::new(p)).ok())
            .unwrap_or_default()
    }

    /// The name of label `bit`, if the map has one.
    pub fn name(&self, bit: u8) -> Option<&str> {
        self.names.get(usize::from(bit))?.as_deref()
    }

    /// The bit named `name` (exact match, as conntrack(8) compares).
    pub fn bit(&self, name: &str) -> Option<u8> {
        self.names
            .iter()
            .position(|n| n.as_deref() == Some(name))
            .and_then(|i| u8::try_from(i).ok())
    }

    /// The file this map came from (also set when that file could not be read).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Whether no bit has a name.
    pub fn is_empty(&self) -> bool {
        self.names.iter().all(Option::is_none)
    }
}

/// `strtoul(s, &end, 0)` as connlabel.conf is read: leading blanks, an optional `+`, then
/// `0x` hex, `0` octal or decimal. `None` when no digit was read.
fn strtoul(s: &str) -> Option<(u64, &str)> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let t = t.strip_prefix('+').unwrap_or(t);
    let (radix, body) = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) if h.starts_with(|c: char| c.is_ascii_hexdigit()) => (16, h),
        _ if t.starts_with('0') => (8, t),
        _ => (10, t),
    };
    let len = body
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(body.len());
    if len == 0 {
        return None;
    }
    // Saturate like strtoul's ULONG_MAX: any such value is out of range anyway.
    let v = u64::from_str_radix(&body[..len], radix).unwrap_or(u64::MAX);
    Some((v, &body[len..]))
}

static ACTIVE: OnceLock<LabelMap> = OnceLock::new();

/// Choose the map for this process (the CLI does it once, from `LabelMap::system()`).
/// A second call keeps the first map.
pub fn install(map: LabelMap) {
    let _ = ACTIVE.set(map);
}

/// The installed map, or an empty one.
pub fn active() -> &'static LabelMap {
    static EMPTY: OnceLock<LabelMap> = OnceLock::new();
    ACTIVE
        .get()
        .unwrap_or_else(|| EMPTY.get_or_init(LabelMap::default))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_like_libnetfilter_conntrack() {
        let m = LabelMap::parse(
            "# comment\n0 zero\n3 blue\n0x5 red team\n010 octal\n7 bad;name\n9\n\
             3 again\n11 blue\n  12\tspaced-out \r\n127 last\n128 beyond\nx nothing\n",
        );
        assert_eq!(m.name(0), Some("zero"));
        assert_eq!(m.name(3), Some("blue"));
        assert_eq!(m.name(5), Some("red team"));
        assert_eq!(m.name(8), Some("octal"));
        assert_eq!(m.name(7), None);
        assert_eq!(m.name(9), None);
        assert_eq!(m.name(11), None, "a name used twice keeps its first bit");
        assert_eq!(m.name(12), Some("spaced-out"));
        assert_eq!(m.name(127), Some("last"));
        assert_eq!(m.bit("red team"), Some(5));
        assert_eq!(m.bit("Blue"), None, "names compare exactly");
        assert_eq!(m.bit("beyond"), None, "the kernel has no bit 128");
        assert!(!m.is_empty());
        assert!(LabelMap::parse("# nothing\n").is_empty());
    }

    #[test]
    fn strtoul_base_zero() {
        assert_eq!(strtoul(" 42 x"), Some((42, " x")));
        assert_eq!(strtoul("0x1f y"), Some((31, " y")));
        assert_eq!(strtoul("017"), Some((15, "")));
        assert_eq!(strtoul("0 z"), Some((0, " z")));
        assert_eq!(strtoul("z"), None);
        assert_eq!(
            strtoul("99999999999999999999999 n").map(|v| v.0),
            Some(u64::MAX)
        );
    }
}
