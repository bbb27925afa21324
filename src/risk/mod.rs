//! Helper risk: how much of each expectation (and of each RELATED flow it produced) could
//! have been chosen by whoever wrote the command, compared with the netfilter authors'
//! freedom table, and the findings that follow, each with its fix.
//!
//! - `table`: `assets/helpers.toml` and the live module options that pick its rows;
//! - `classify`: `Freedom` of an expectation, or of a RELATED flow, from what the kernel holds;
//! - `sockets`: sockets, their owning processes and local addresses of a namespace (procfs);
//! - `finding`: the finding vocabulary shared with `audit`;
//! - `assess`: the rules, `Assessor` and the JSON values for the output module.
//!
//! This module never touches netlink or the terminal.
//!
//! Typical use (once per view refresh):
//! ```no_run
//! # use ctscope::risk::Assessor;
//! # fn f(store: &ctscope::model::Store, e: &ctscope::model::Expectation) {
//! // once per view refresh, in the namespace shown (`None`: the current one)
//! let assessor = Assessor::system_in(None, None).expect("helper table");
//! let (freedom, findings) = assessor.expectation_json(store, e);
//! # }
//! ```

pub mod assess;
pub mod classify;
pub mod finding;
pub mod sockets;
pub mod table;

use std::path::Path;

use crate::error::Error;

pub use assess::{
    Assessment, Assessor, Config, ListenerCheck, RiskFrom, RiskJson, SocketSource,
    DEFAULT_SENSITIVE_PORTS, SENSITIVE_PORTS_ENV,
};
pub use classify::{classify, classify_flow, Freedom, MasterEnds};
pub use finding::{Finding, FindingKind};
pub use sockets::{Conn, Listener, Listeners, Owner};
pub use table::{Entry, HelperTable, Level};

impl Assessor {
    /// An assessor for the current namespace: the table (embedded, or `table_path`), live
    /// module options from `/sys`, listening sockets from procfs and the ephemeral range
    /// from `/proc/sys`. Socket reading failures leave that check off.
    pub fn system(table_path: Option<&Path>) -> Result<Assessor, Error> {
        Assessor::system_with(table_path, || Ok(current_listeners()))
    }

    /// `system` with the sockets `listeners` reads (read once: a socket snapshot reads
    /// `/proc/net/tcp`, whose every chunk walks the kernel's whole established hash).
    fn system_with(
        table_path: Option<&Path>,
        listeners: impl FnOnce() -> Result<Option<Listeners>, Error>,
    ) -> Result<Assessor, Error> {
        let table = HelperTable::load(table_path)?;
        let params = table.read_params(Path::new("/sys"));
        // A bad CTSCOPE_SENSITIVE_PORTS falls back to the defaults here; `ctscope audit`
        // reports it as a usage error.
        Ok(Assessor::new(
            table.with_params(params),
            Config::from_env().unwrap_or_default(),
            listeners()?,
        ))
    }

    /// Like `system`, for the namespace the table being shown lives in (`--netns NAME` or
    /// `/proc/PID/ns/net`): sockets and the port range are read from a thread that entered
    /// it. Module options are global (`/sys/module`), so they are read as for `system`.
    /// `refresh` re-reads the sockets from the same namespace.
    pub fn system_in(table_path: Option<&Path>, netns: Option<&str>) -> Result<Assessor, Error> {
        // Only the shown namespace's sockets are read (this one's would be thrown away).
        let a = Assessor::system_with(table_path, || match netns {
            Some(ns) => {
                let ns = crate::netlink::Namespace::parse(ns);
                crate::netlink::netns::run_in(&ns, || Ok(current_listeners()))
            }
            None => Ok(current_listeners()),
        })?;
        Ok(a.with_socket_source(SocketSource(netns.map(str::to_string))))
    }
}

/// Sockets of namespace `netns` (`None`: the current one), read from a thread inside it;
/// `None` when they cannot be read.
pub fn listeners_in(netns: Option<&str>) -> Option<Listeners> {
    match netns {
        None => current_listeners(),
        Some(ns) => {
            let ns = crate::netlink::Namespace::parse(ns);
            crate::netlink::netns::run_in(&ns, || Ok(current_listeners()))
                .ok()
                .flatten()
        }
    }
}

/// Sockets of the calling thread's namespace (`/proc/thread-self`, so a thread that
/// entered another namespace reads that one), with its ephemeral port range; owners are
/// looked up under the machine's `/proc` (socket inodes are unique across namespaces).
pub fn current_listeners() -> Option<Listeners> {
    Listeners::read(Path::new("/proc/thread-self"))
        .ok()
        .map(|l| {
            let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
                .ok()
                .and_then(|t| sockets::parse_port_range(&t))
                .unwrap_or(sockets::DEFAULT_EPHEMERAL);
            l.with_ephemeral(range).with_owner_root("/proc")
        })
}
