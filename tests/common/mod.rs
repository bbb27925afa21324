//! Shared test support: the network-namespace lab used by every kernel test.
#![allow(dead_code)]
pub mod lab;
