//! One `IPCTNL_MSG_EXP_NEW` message around arbitrary attributes (first byte: the family),
//! so every input reaches the expectation decoder (tuples, masks, NAT, helper names).
#![no_main]

#[path = "common.rs"]
mod common;

use ctscope::abi::{IPCTNL_MSG_EXP_NEW, NFNL_SUBSYS_CTNETLINK_EXP, NLM_F_CREATE};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let m = common::wrap(
        NFNL_SUBSYS_CTNETLINK_EXP,
        IPCTNL_MSG_EXP_NEW,
        NLM_F_CREATE,
        data,
    );
    common::exercise(&m);
});
