//! The library's one error type, and the one spelling of a `hint:`.
//!
//! User-facing text is one line with values in 'single quotes'; where advice helps, the
//! message is followed by [`Hint`], which every message in the crate renders the same way
//! (`\nhint: …`; [`inline`] is the same words for one-line places such as a finding's
//! detail). `anyhow` is used only at the top (`cli`), which maps [`Error::is_usage`] to
//! exit status 2. Domain errors that carry more than a line (`decode::DecodeError`, the
//! filter's spans, `recent::RecentError`) stay typed and are wrapped here.

use std::fmt;
use std::io;

/// Errors from the engine, netlink requests, recordings, namespaces, configuration and
/// the commands audit and recent run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A kernel refusal of a netlink request (`NLMSG_ERROR` with a negative errno).
    #[error("{op}: {}{}", errno_text(*errno), Hint(errno_hint(*errno)))]
    Netlink { op: &'static str, errno: i32 },
    /// A socket-level failure (socket, bind, setsockopt, send, recv).
    #[error("{op}: {source}{}", Hint(io_hint(source)))]
    Io {
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// `--netns` could not be entered; `hint` names the fix for this particular failure.
    #[error("network namespace '{name}': {reason}{}", Hint(Some(hint)))]
    Netns {
        name: String,
        reason: String,
        hint: &'static str,
    },
    /// A recording could not be read or written.
    #[error("recording '{path}': {reason}{}", Hint(*hint))]
    Recording {
        path: String,
        reason: String,
        hint: Option<&'static str>,
    },
    /// An action (delete, flush) refused because the source is a recording: `what` says
    /// what it needed. A refused action, not a typing error: the CLI exits 1.
    #[error("{what}, not a recording{}", Hint(Some(REPLAY_HINT)))]
    Replay { what: String },
    /// What the user typed cannot be done as asked: the CLI exits 2.
    #[error("{message}{}", Hint(hint.as_deref()))]
    Usage {
        message: String,
        hint: Option<String>,
    },
    /// A configuration input (a file, an environment variable, an option's value) is bad.
    #[error("{what}: {reason}{}", Hint(*hint))]
    Config {
        what: String,
        reason: String,
        hint: Option<&'static str>,
    },
    /// A command or system file that audit (or recent) reads could not be read.
    #[error("'{step}' failed: {reason}{}", Hint(hint.as_deref()))]
    Audit {
        step: String,
        reason: String,
        hint: Option<String>,
    },
    #[error(transparent)]
    Decode(#[from] crate::decode::DecodeError),
    #[error(transparent)]
    Recent(#[from] crate::recent::RecentError),
    #[error("{0}")]
    Other(String),
}

/// The advice for anything a recording cannot do.
const REPLAY_HINT: &str = "drop --replay to act on the live kernel";

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether this is a missing privilege (EPERM/EACCES), so callers can word the message.
    pub fn is_permission(&self) -> bool {
        match self {
            Error::Netlink { errno, .. } => *errno == libc::EPERM || *errno == libc::EACCES,
            Error::Io { source, .. } => source.kind() == io::ErrorKind::PermissionDenied,
            _ => false,
        }
    }

    /// Whether the user asked for something that cannot be done as given (exit status 2):
    /// a usage error (a live-only command given `--replay` included) or a bad
    /// configuration value.
    pub fn is_usage(&self) -> bool {
        matches!(self, Error::Usage { .. } | Error::Config { .. })
    }

    /// A command that only reads the live kernel, given `--replay`: a usage error.
    /// `what` says what the command reads.
    pub fn live_only(what: impl Into<String>) -> Error {
        Error::usage_hint(format!("{}, not a recording", what.into()), REPLAY_HINT)
    }

    /// A usage error without advice.
    pub fn usage(message: impl Into<String>) -> Error {
        Error::Usage {
            message: message.into(),
            hint: None,
        }
    }

    /// A usage error followed by a hint.
    pub fn usage_hint(message: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::Usage {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }
}

/// Advice after a message: nothing, or a new line starting `hint: `. The one renderer of
/// hints for every message in the crate, so they read and grep alike.
#[derive(Debug, Clone, Copy)]
pub struct Hint<'a>(pub Option<&'a str>);

impl fmt::Display for Hint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(h) => write!(f, "\nhint: {h}"),
            None => Ok(()),
        }
    }
}

/// `message` and its hint as one line, for places that hold a single line (a finding's
/// detail, a status line): the same words as [`Hint`], joined by `; `.
pub fn inline(message: &str, hint: &str) -> String {
    format!("{message}; hint: {hint}")
}

fn errno_text(errno: i32) -> String {
    io::Error::from_raw_os_error(errno).to_string()
}

fn errno_hint(errno: i32) -> Option<&'static str> {
    (errno == libc::EPERM || errno == libc::EACCES).then_some(crate::privilege::NET_ADMIN_HINT)
}

fn io_hint(e: &io::Error) -> Option<&'static str> {
    (e.kind() == io::ErrorKind::PermissionDenied).then_some(crate::privilege::NET_ADMIN_HINT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_hint_spelling_everywhere() {
        let e = Error::usage_hint("unknown helper 'x'", "kernel helpers are ftp, sip");
        assert_eq!(
            e.to_string(),
            "unknown helper 'x'\nhint: kernel helpers are ftp, sip"
        );
        assert!(e.is_usage());
        let e = Error::Netlink {
            op: "dump",
            errno: libc::EPERM,
        };
        let text = e.to_string();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("hint: this step needs CAP_NET_ADMIN"));
        assert_eq!(
            Error::Netlink {
                op: "dump",
                errno: libc::ENOENT
            }
            .to_string()
            .lines()
            .count(),
            1
        );
        assert_eq!(inline("a", "b"), "a; hint: b");
        let hint = "\nhint: drop --replay to act on the live kernel";
        let r = Error::live_only("'stats' reads the live kernel's counters");
        assert!(r.is_usage() && r.to_string().ends_with(hint));
        let r = Error::Replay {
            what: "delete and flush act on the live table".into(),
        };
        assert!(!r.is_usage() && r.to_string().ends_with(hint));
    }
}
