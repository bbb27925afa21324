//! `iptables-save` / `ip6tables-save` text as the audit reads it (quotes, escapes,
//! comments, odd flags), parsed for both families, then judged and rendered.
#![no_main]

#[path = "audit_common.rs"]
mod audit_common;

use ctscope::audit::rules::{parse_iptables_save, Origin};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    for family in ["ip", "ip6"] {
        let _ = parse_iptables_save(&text, Origin::IptablesLegacy, family, None);
    }
    audit_common::audit(
        Err("fuzz: no nft".into()),
        None,
        vec![("ip".into(), Ok(text.clone())), ("ip6".into(), Ok(text))],
    );
});
