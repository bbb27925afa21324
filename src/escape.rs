//! Outside strings are data: the one sanitizer every terminal-bound string from outside
//! ctscope goes through (rule comments and rule text, helper, set and interface names,
//! labels, security contexts, process names, tool error output).
//!
//! A ruleset written inside a container, a userspace helper's name or a process's `comm`
//! is chosen by whoever controls that container or process. Printed raw, an `ESC [ 2 J`
//! clears the admin's screen, an OSC sequence retitles the terminal or writes the
//! clipboard, and a bidi override makes `accept` read as `tpecca`. This module escapes
//! such characters *visibly* (`\x1b`, `\u{202e}`), so the admin sees that something odd is
//! there rather than having it silently vanish.
//!
//! It owns only the escaping rule. It must not be applied to JSON: serde already escapes
//! control characters there, and scripts need the exact string.

use std::borrow::Cow;
use std::fmt;

/// Whether `c` must not reach a terminal as itself: C0 controls (tab and newline
/// included: one entry is one line), DEL, C1 controls (U+0080–U+009F, which some terminals
/// honour as 8-bit CSI/OSC), and the Unicode bidirectional controls (embeddings,
/// overrides, isolates and marks; Unicode TR9, CVE-2021-42574 "Trojan Source").
pub fn is_unsafe(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{061c}'
        | '\u{200e}' | '\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}')
}

/// `s` with every unsafe character escaped; borrowed (no allocation) when there is none,
/// which is the usual case.
///
/// ```
/// use ctscope::escape::escape;
/// assert_eq!(escape("ftp"), "ftp");
/// assert_eq!(escape("a\x1b[2Jb"), "a\\x1b[2Jb");
/// assert_eq!(escape("\u{202e}lla"), "\\u{202e}lla");
/// ```
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(Escaped(s).to_string())
}

/// A `Display` wrapper that escapes while formatting, for `format!` without a temporary.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A column (`{:<12}`) pads the escaped text as a whole, as it would a `str`.
        if f.width().is_some() || f.precision().is_some() {
            return f.pad(&escape(self.0));
        }
        let mut rest = self.0;
        while let Some(i) = rest.find(is_unsafe) {
            f.write_str(&rest[..i])?;
            let c = rest[i..].chars().next().unwrap_or('\0');
            match c {
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                c if (c as u32) < 0x80 => write!(f, "\\x{:02x}", c as u32)?,
                c => write!(f, "\\u{{{:x}}}", c as u32)?,
            }
            rest = &rest[i + c.len_utf8()..];
        }
        f.write_str(rest)
    }
}

/// Bytes that should be text but may not be UTF-8 (a helper name, a security context):
/// valid UTF-8 kept as is, each invalid byte spelled `\xNN`. Nothing is dropped, so an
/// entry with a strange name is still shown rather than lost.
pub fn lossless(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_visibly_and_keeps_the_rest() {
        assert!(matches!(
            escape("ct state related accept"),
            Cow::Borrowed(_)
        ));
        assert_eq!(escape("x\x1b]0;pwned\x07y"), "x\\x1b]0;pwned\\x07y");
        assert_eq!(escape("a\nb\tc\rd\x7f"), "a\\nb\\tc\\rd\\x7f");
        assert_eq!(escape("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(
            escape("\u{202e}\u{2066}\u{200f}x\u{061c}"),
            "\\u{202e}\\u{2066}\\u{200f}x\\u{61c}"
        );
        // Printable non-ASCII is data, not a threat.
        assert_eq!(escape("grüße ✓ 日本"), "grüße ✓ 日本");
        let out = escape("\x1b[2J\u{9b}2J\u{202e}");
        assert!(!out.chars().any(is_unsafe), "{out}");
    }

    #[test]
    fn display_matches_escape() {
        for s in ["", "plain", "\x00\x1f", "é\x1b", "\u{85}x"] {
            assert_eq!(Escaped(s).to_string(), escape(s));
        }
    }

    #[test]
    fn lossless_spells_invalid_bytes() {
        assert_eq!(lossless(b"ftp"), "ftp");
        assert_eq!(lossless(b"f\xfftp\xc3"), "f\\xfftp\\xc3");
        assert_eq!(lossless("é".as_bytes()), "é");
    }

    #[test]
    fn a_column_pads_the_escaped_text() {
        assert_eq!(format!("{:<8}|", Escaped("tcp/21")), "tcp/21  |");
        assert_eq!(format!("{:>6}|", Escaped("a\tb")), "  a\\tb|");
    }
}
