//! ctscope: watch, explain and clean the Linux conntrack table.
//!
//! One data path, one way:
//! netlink socket or recording → `decode` → `model::Store` → views → `tui` or `output`.
//! `netlink` is the only module that touches sockets; `model` never touches ratatui.

pub mod abi;
pub mod actions;
pub mod audit;
pub mod cli;
pub mod decode;
pub mod engine;
pub mod error;
pub mod escape;
pub mod exporter;
pub mod filter;
pub mod model;
pub mod netlink;
pub mod output;
pub mod privilege;
pub mod recent;
pub mod risk;
pub mod ssh;
pub mod tui;

pub use error::{Error, Result};
