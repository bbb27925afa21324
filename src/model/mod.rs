//! The model: compact records for flows and expectations, and the store that links them.
//!
//! Everything here is plain data and pure logic. It must not touch sockets (see `netlink`),
//! parse bytes (see `decode`) or know about ratatui (see `tui`).

mod bits;
pub mod event;
pub mod expect;
pub mod flow;
pub mod helper;
mod index;
pub mod labels;
pub mod protocols;
pub mod recent;
pub mod stale;
pub mod stats;
pub mod store;
pub mod top;
pub mod tuple;

pub use event::{Event, Record};
pub use expect::{ExpectNat, Expectation};
pub use flow::{Counter, Extra, Flow};
pub use helper::HelperId;
pub use store::Store;
pub use tuple::{Family, Tuple};
