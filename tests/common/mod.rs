//! Shared test support: the network-namespace lab used by every kernel test, and a
//! private tmux server for tests that drive the binary in a real terminal.
#![allow(dead_code)]
pub mod lab;
pub mod tmux;
