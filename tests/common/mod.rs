//! Shared test support: the network-namespace lab used by every kernel test, and a
//! private tmux server for tests that drive the binary in a real terminal, and a varied
//! table to load with `conntrack -R`.
#![allow(dead_code)]
pub mod lab;
pub mod tmux;
pub mod varied;
