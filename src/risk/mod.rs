//! Helper risk: how much of each expectation (and of each RELATED flow it produced) could
//! have been chosen by whoever wrote the command, compared with the netfilter authors'
//! freedom table, and the findings that follow, each with its fix.
//!
//! - `table`: `assets/helpers.toml` and the live module options that pick its rows;
//! - `classify`: `Freedom` of an expectation from what the kernel holds;
//! - `sockets`: listening sockets and local addresses of a namespace (procfs);
//! - `finding`: the finding vocabulary shared with `audit`;
//! - `assess`: the rules, `Assessor` and the JSON values for the output module.
//!
//! This module never touches netlink or the terminal.
//!
//! Typical use (once per view refresh):
//! ```no_run
//! # use ctscope::risk::Assessor;
//! # fn f(store: &ctscope::model::Store, e: &ctscope::model::Expectation) {
//! let assessor = Assessor::system(None).expect("helper table");
//! let (freedom, findings) = assessor.expectation_json(store, e);
//! # }
//! ```

pub mod assess;
pub mod classify;
pub mod finding;
pub mod sockets;
pub mod table;

use std::path::Path;

pub use assess::{Assessment, Assessor, Config, DEFAULT_SENSITIVE_PORTS};
pub use classify::{classify, Freedom, MasterEnds};
pub use finding::{Finding, FindingKind};
pub use sockets::{Listener, Listeners};
pub use table::{Entry, HelperTable, Level, TableError};

impl Assessor {
    /// An assessor for the current namespace: the table (embedded, or `table_path`), live
    /// module options from `/sys`, listening sockets from `/proc/self/net` and the
    /// ephemeral range from `/proc/sys`. Socket reading failures leave that check off.
    pub fn system(table_path: Option<&Path>) -> Result<Assessor, TableError> {
        let table = HelperTable::load(table_path)?;
        let params = table.read_params(Path::new("/sys"));
        let listeners = Listeners::read(Path::new("/proc/self")).ok().map(|l| {
            let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
                .ok()
                .and_then(|t| sockets::parse_port_range(&t))
                .unwrap_or(sockets::DEFAULT_EPHEMERAL);
            l.with_ephemeral(range)
        });
        Ok(Assessor::new(
            table.with_params(params),
            Config::default(),
            listeners,
        ))
    }
}
