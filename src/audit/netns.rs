//! Running a piece of work inside another network namespace, on a thread of its own.
//!
//! setns(CLONE_NEWNET) changes only the calling thread, so the work runs on a scoped
//! thread that enters the namespace and ends with it: the rest of the process is never
//! moved. Inside, `/proc/thread-self/net` and `/proc/sys/net` show that namespace, and
//! commands spawned from the thread (nft, iptables-save, conntrack) inherit it. This
//! module must not know what the work is.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

/// `NAME` (as `ip netns` names them, under /run/netns) or a path such as
/// `/proc/PID/ns/net`.
pub fn resolve(ns: &str) -> PathBuf {
    if ns.contains('/') {
        PathBuf::from(ns)
    } else {
        PathBuf::from("/run/netns").join(ns)
    }
}

/// Run `f` in namespace `ns` (or in the current one when `None`). The error names the
/// namespace and the reason it could not be entered.
pub fn run_in<T: Send>(ns: Option<&str>, f: impl FnOnce() -> T + Send) -> Result<T, String> {
    let Some(ns) = ns else {
        return Ok(f());
    };
    let path = resolve(ns);
    let file = File::open(&path).map_err(|e| {
        format!(
            "network namespace '{ns}': {e}\nhint: list them with 'ip netns list', or pass /proc/PID/ns/net"
        )
    })?;
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns on a valid open fd; it affects only this thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                let e = std::io::Error::last_os_error();
                return Err(format!(
                    "network namespace '{ns}': setns: {e}\nhint: entering a namespace needs CAP_SYS_ADMIN: run with sudo"
                ));
            }
            Ok(f())
        })
        .join()
        .map_err(|_| format!("network namespace '{ns}': the worker thread panicked"))?
    })
}
