//! One `IPCTNL_MSG_CT_NEW` message around arbitrary attributes (first byte: the family),
//! so every input reaches the flow decoder's attribute walk.
#![no_main]

#[path = "common.rs"]
mod common;

use ctscope::abi::{IPCTNL_MSG_CT_NEW, NFNL_SUBSYS_CTNETLINK, NLM_F_CREATE};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let m = common::wrap(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW, NLM_F_CREATE, data);
    common::exercise(&m);
});
