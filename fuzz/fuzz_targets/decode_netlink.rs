//! Whole netlink datagrams as the kernel's socket hands them over: any number of messages
//! of any type (flows, expectations, errors, done, other subsystems), decoded and rendered.
#![no_main]

#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    common::exercise(data);
});
