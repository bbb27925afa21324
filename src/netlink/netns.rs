//! Network namespaces: open sockets inside the namespace named by `--netns NAME`
//! (`/run/netns/NAME`, as `ip netns exec` names them) or `--netns /proc/PID/ns/net`.
//!
//! `setns(2)` with `CLONE_NEWNET` changes only the calling thread, and a socket keeps the
//! namespace it was created in, so the work runs in a short-lived dedicated thread and the
//! socket is handed back; the rest of the process never changes namespace. This module
//! owns that dance and nothing else (no requests, no decoding).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Where to open sockets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Namespace {
    /// The namespace ctscope runs in.
    #[default]
    Current,
    /// A namespace file: `/run/netns/NAME` or `/proc/PID/ns/net`.
    Path { name: String, path: PathBuf },
}

impl Namespace {
    /// Interpret a `--netns` argument: anything with a `/` is a path, anything else the
    /// name of a namespace created by `ip netns add`.
    pub fn parse(arg: &str) -> Namespace {
        if arg.contains('/') {
            Namespace::Path {
                name: arg.to_owned(),
                path: PathBuf::from(arg),
            }
        } else {
            Namespace::Path {
                name: arg.to_owned(),
                path: Path::new("/run/netns").join(arg),
            }
        }
    }

    /// The name shown to the user (`-` for the current namespace).
    pub fn name(&self) -> &str {
        match self {
            Namespace::Current => "-",
            Namespace::Path { name, .. } => name,
        }
    }

    fn error(&self, reason: String) -> Error {
        self.error_hint(
            reason,
            "list them with 'ip netns list', or pass /proc/PID/ns/net",
        )
    }

    fn error_hint(&self, reason: String, hint: &'static str) -> Error {
        Error::Netns {
            name: self.name().to_owned(),
            reason,
            hint,
        }
    }
}

/// Run `f` with the calling thread inside `ns` and return its result. For
/// `Namespace::Current`, `f` runs directly.
pub fn run_in<T, F>(ns: &Namespace, f: F) -> Result<T>
where
    T: Send,
    F: FnOnce() -> Result<T> + Send,
{
    let path = match ns {
        Namespace::Current => return f(),
        Namespace::Path { path, .. } => path,
    };
    let file = File::open(path).map_err(|e| {
        let reason = match e.kind() {
            io::ErrorKind::NotFound => format!("'{}' does not exist", path.display()),
            io::ErrorKind::PermissionDenied => {
                return ns.error_hint(
                    format!("cannot open '{}': permission denied", path.display()),
                    crate::privilege::NETNS_OPEN_HINT,
                );
            }
            _ => format!("cannot open '{}': {e}", path.display()),
        };
        ns.error(reason)
    })?;
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new()
            .name("ctscope-netns".into())
            .spawn_scoped(s, move || {
                // SAFETY: plain syscall on an fd we own for the duration of the call.
                let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                if r != 0 {
                    let e = io::Error::last_os_error();
                    return Err(match e.raw_os_error() {
                        Some(libc::EINVAL) => {
                            ns.error(format!("'{}' is not a network namespace", path.display()))
                        }
                        Some(libc::EPERM) => ns.error_hint(
                            "entering it (setns) is not permitted without CAP_SYS_ADMIN".into(),
                            crate::privilege::SYS_ADMIN_HINT,
                        ),
                        _ => ns.error(format!("setns failed: {e}")),
                    });
                }
                f()
            })
            .map_err(|e| ns.error(format!("cannot start a thread: {e}")))?;
        handle
            .join()
            .unwrap_or_else(|_| Err(ns.error("the namespace thread panicked".into())))
    })
}

/// Read a sysctl as seen from inside `ns` (`/proc/sys` shows the reading thread's
/// namespace), e.g. `net/netfilter/nf_conntrack_tcp_loose`. `None` if it cannot be read.
pub fn read_sysctl(ns: &Namespace, name: &str) -> Option<String> {
    let path = Path::new("/proc/sys").join(name);
    run_in(ns, move || {
        std::fs::read_to_string(&path)
            .map(|s| s.trim().to_owned())
            .map_err(|e| Error::Other(e.to_string()))
    })
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_names_and_paths() {
        assert_eq!(
            Namespace::parse("lab"),
            Namespace::Path {
                name: "lab".into(),
                path: "/run/netns/lab".into()
            }
        );
        assert_eq!(
            Namespace::parse("/proc/1/ns/net"),
            Namespace::Path {
                name: "/proc/1/ns/net".into(),
                path: "/proc/1/ns/net".into()
            }
        );
    }

    #[test]
    fn missing_namespace_is_a_clear_error() {
        let ns = Namespace::parse("ctscope-nl-does-not-exist");
        let e = run_in(&ns, || Ok(())).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, Error::Netns { .. }), "{text}");
        assert!(
            text.contains("/run/netns/ctscope-nl-does-not-exist"),
            "{text}"
        );
        assert!(text.contains("does not exist"), "{text}");
    }
}
