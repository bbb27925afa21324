//! Library error type. User-facing text is short, quotes values in 'single quotes' and ends
//! with a `hint:` where one helps. `anyhow` is used only at the top (`cli`).

use std::io;

/// Errors from the engine, netlink requests, recordings and namespaces.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A kernel refusal of a netlink request (`NLMSG_ERROR` with a negative errno).
    #[error("{op}: {}{}", errno_text(*errno), errno_hint(*errno))]
    Netlink { op: &'static str, errno: i32 },
    /// A socket-level failure (socket, bind, setsockopt, send, recv).
    #[error("{op}: {source}{}", io_hint(source))]
    Io {
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// `--netns` could not be entered; `hint` names the fix for this particular failure.
    #[error("network namespace '{name}': {reason}\n{hint}")]
    Netns {
        name: String,
        reason: String,
        hint: &'static str,
    },
    #[error("recording '{path}': {reason}")]
    Recording { path: String, reason: String },
    #[error(transparent)]
    Decode(#[from] crate::decode::DecodeError),
    #[error("{0}")]
    Other(String),
}

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
}

fn errno_text(errno: i32) -> String {
    io::Error::from_raw_os_error(errno).to_string()
}

fn errno_hint(errno: i32) -> String {
    if errno == libc::EPERM || errno == libc::EACCES {
        format!("\n{}", crate::privilege::NET_ADMIN_HINT)
    } else {
        String::new()
    }
}

fn io_hint(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::PermissionDenied {
        format!("\n{}", crate::privilege::NET_ADMIN_HINT)
    } else {
        String::new()
    }
}
