//! The audit's pure half (`audit::run`) over fuzzed rulesets, rendered as text and JSON:
//! the text report must hold no raw control character, whatever the ruleset said.
#![allow(dead_code)]

use std::sync::OnceLock;

use ctscope::audit::{self, AuditInput, Source};
use ctscope::risk::{Config, HelperTable, Listeners};

fn table() -> &'static HelperTable {
    static T: OnceLock<HelperTable> = OnceLock::new();
    T.get_or_init(|| HelperTable::embedded().expect("the built-in helper table loads"))
}

pub fn audit(nft_json: Source, nft_text: Option<String>, legacy: Vec<(String, Source)>) {
    let input = AuditInput {
        netns: None,
        nft_json,
        nft_text,
        iptables_nft: vec![],
        iptables_legacy: legacy,
        auto_helper: Ok(Some(false)),
        rp_filter: Ok(vec![("all".into(), 0), ("eth0".into(), 0)]),
        expectations: Ok(vec![]),
        flows: vec![],
        listeners: Some(Listeners::default()),
        local_addrs: None,
        params_unread: vec![],
        table: table().clone(),
        config: Config::default(),
    };
    let rep = audit::run(&input);
    let text = rep.render_text();
    if let Some(c) = text
        .chars()
        .find(|c| *c != '\n' && ctscope::escape::is_unsafe(*c))
    {
        panic!("raw {c:?} in the audit text report:\n{text}");
    }
    let _ = rep.to_json();
}
