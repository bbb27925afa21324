//! `nft -j list ruleset` and `nft -a list ruleset` as the audit reads them (a ruleset in
//! a container is written by whoever runs it): input split at the first NUL into the
//! JSON and the text, parsed, then judged and rendered by `audit::run`.
#![no_main]

#[path = "audit_common.rs"]
mod audit_common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let (json, text) = match s.split_once('\0') {
        Some((j, t)) => (j.to_string(), Some(t.to_string())),
        None => (s.to_string(), None),
    };
    let _ = ctscope::audit::rules::parse_nft(&json, text.as_deref());
    audit_common::audit(Ok(json), text, Vec::new());
});
