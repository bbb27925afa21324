//! ctscope: watch, explain and clean the Linux conntrack table.
//!
//! One data path, one way:
//! netlink socket or recording → `decode` → `model::Store` → views → `tui` or `output`.
//! `netlink` is the only module that touches sockets; `model` never touches ratatui.

pub mod decode;
pub mod model;
pub mod netlink;
