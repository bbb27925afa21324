//! `audit::run` over rulesets captured from this kernel (tests/fixtures/audit/README.md
//! names the commands): an unrestricted RELATED rule is a finding with its exact text, and
//! helper-narrowed rulesets are clean, in both iptables-nft and native nftables syntax.
//! Also: automatic assignment, rp_filter, unreadable inputs, and live expectations.

use ctscope::audit::{self, AuditInput};
use ctscope::model::helper::intern;
use ctscope::model::tuple::{octets, proto, Family};
use ctscope::model::{Expectation, Flow, Tuple};
use ctscope::risk::{Config, FindingKind, HelperTable, Listener, Listeners};

fn fixture(name: &str) -> String {
    let p = format!("{}/tests/fixtures/audit/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// Inputs for one captured ruleset, with rp_filter on and nothing live.
fn input(case: &str, save: bool) -> AuditInput {
    AuditInput {
        netns: Some("fixture".into()),
        nft_json: Ok(fixture(&format!("{case}.nft.json"))),
        nft_text: Some(fixture(&format!("{case}.nft.txt"))),
        iptables_nft: vec![
            (
                "ip".into(),
                Ok(if save {
                    fixture(&format!("{case}.save"))
                } else {
                    String::new()
                }),
            ),
            ("ip6".into(), Ok(String::new())),
        ],
        iptables_legacy: vec![],
        auto_helper: Ok(None),
        rp_filter: Ok(vec![
            ("all".into(), 0),
            ("ct0".into(), 1),
            ("default".into(), 0),
            ("lo".into(), 0),
        ]),
        expectations: Ok(vec![]),
        flows: vec![],
        listeners: Some(Listeners::default()),
        local_addrs: None,
        params_unread: vec![],
        table: HelperTable::embedded().unwrap(),
        config: Config::default(),
    }
}

fn kinds(r: &audit::Report) -> Vec<FindingKind> {
    r.findings.iter().map(|f| f.kind).collect()
}

#[test]
fn iptables_nft_unrestricted_related_is_reported_with_its_text() {
    let r = audit::run(&input("ipt_open", true));
    assert_eq!(kinds(&r), vec![FindingKind::UnrestrictedRelated]);
    let f = &r.findings[0];
    assert!(
        f.detail
            .contains("`-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`"),
        "{}",
        f.detail
    );
    assert!(f.detail.starts_with("iptables-nft ip filter chain FORWARD"));
    // The fix names the helper in use, in the authors' terms, in the rule's own chain
    // and language, and nothing in another language.
    assert!(
        f.fix
            .contains("`iptables -A FORWARD -m conntrack --ctstate RELATED -m helper --helper ftp -d $FTP_SERVER -p tcp --dport 1024: -j ACCEPT`"),
        "{}",
        f.fix
    );
    assert!(
        !f.fix.contains("nft") && !f.fix.contains("ct state"),
        "{}",
        f.fix
    );
    let ftp = r.helpers.iter().find(|h| h.name == "ftp").unwrap();
    assert_eq!(
        ftp.assigned_by,
        vec![
            "iptables -t raw -A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp".to_string()
        ]
    );
    assert_eq!(r.language, "iptables");
    assert_eq!(r.exit_code(), 1);
    assert!(r.complete);
    assert!(r
        .render_text()
        .contains("[!] iptables-nft ip filter FORWARD"));
}

#[test]
fn iptables_nft_helper_narrowed_ruleset_is_clean() {
    let mut i = input("ipt_narrow", true);
    // rp_filter off everywhere: the rpfilter rule in raw covers it.
    i.rp_filter = Ok(vec![("all".into(), 0), ("ct0".into(), 0)]);
    let r = audit::run(&i);
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    assert_eq!(r.exit_code(), 0);
    assert_eq!(r.related_rules.len(), 2);
    assert!(r.related_rules.iter().all(|x| x.restricted));
    assert_eq!(r.related_rules[0].narrowed_by, vec!["ftp".to_string()]);
    assert!(r.related_rules[1].icmp_only);
    assert_eq!(
        r.antispoof_rules,
        vec!["iptables -t raw -A PREROUTING -m rpfilter --invert -j DROP".to_string()]
    );
    // iptables' rpfilter rule covers IPv4 only.
    assert!(!r.ipv6_antispoof);
}

#[test]
fn native_nft_unrestricted_related_is_reported_with_its_text() {
    let r = audit::run(&input("nft_open", false));
    assert_eq!(kinds(&r), vec![FindingKind::UnrestrictedRelated]);
    assert!(r.findings[0]
        .detail
        .contains("nftables inet fw chain forward: `ct state established,related accept`"));
    // An nft ruleset gets nft fixes, in the rule's own table and chain.
    let fix = &r.findings[0].fix;
    assert!(
        fix.contains("`nft add rule inet fw forward ct state related ct helper \"ftp\" ip daddr $FTP_SERVER tcp dport 1024-65535 accept`"),
        "{fix}"
    );
    assert!(
        fix.contains("`nft add rule inet fw forward ct state established accept`"),
        "{fix}"
    );
    assert!(!fix.contains("iptables"), "{fix}");
    assert_eq!(r.language, "nftables");
    let ftp = r.helpers.iter().find(|h| h.name == "ftp").unwrap();
    assert_eq!(
        ftp.assigned_by,
        vec!["nft add rule inet fw pre tcp dport 21 ct helper set \"ftp-std\"".to_string()]
    );
    assert_eq!(r.exit_code(), 1);
}

#[test]
fn native_nft_helper_narrowed_ruleset_is_clean() {
    let mut i = input("nft_narrow", false);
    i.rp_filter = Ok(vec![("all".into(), 0), ("ct0".into(), 0)]);
    let r = audit::run(&i);
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    assert_eq!(r.related_rules.len(), 1);
    assert_eq!(r.related_rules[0].narrowed_by, vec!["ftp".to_string()]);
    assert_eq!(r.exit_code(), 0);
    // `fib saddr . iif oif missing drop` in an inet table covers IPv6 too.
    assert!(r.ipv6_antispoof);
    let j = r.to_json();
    assert_eq!(j["exit"], 0);
    assert_eq!(j["related_rules"][0]["origin"], "nftables");
}

#[test]
fn rp_filter_off_without_antispoofing_is_reported_per_interface() {
    let mut i = input("nft_open", false);
    i.rp_filter = Ok(vec![
        ("all".into(), 0),
        ("ct0".into(), 0),
        ("ct1".into(), 2),
        ("lo".into(), 0),
    ]);
    let r = audit::run(&i);
    let rp: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::NoReversePathFilter)
        .collect();
    assert_eq!(rp.len(), 1, "{rp:#?}");
    assert!(rp[0].detail.starts_with("interface ct0:"));
    // nft syntax, in the admin's prerouting chain, for both families at once.
    assert!(
        rp[0]
            .fix
            .contains("`nft add rule inet fw pre fib saddr . iif oif missing drop`"),
        "{}",
        rp[0].fix
    );
    assert!(!rp[0].fix.contains("iptables"), "{}", rp[0].fix);
    // all=1 makes every interface strict.
    i.rp_filter = Ok(vec![("all".into(), 1), ("ct0".into(), 0)]);
    let r = audit::run(&i);
    assert!(!kinds(&r).contains(&FindingKind::NoReversePathFilter));
    assert_eq!(r.rp_filter[0].effective, 1);
}

#[test]
fn automatic_assignment_and_widened_options_are_findings() {
    let mut i = input("nft_narrow", false);
    i.auto_helper = Ok(Some(true));
    let mut p = ctscope::risk::table::Params::new();
    p.insert(("nf_conntrack_ftp".into(), "loose".into()), "1".into());
    p.insert(("nf_conntrack_ftp".into(), "ports".into()), "21".into());
    i.table = HelperTable::embedded().unwrap().with_params(p);
    let r = audit::run(&i);
    let k = kinds(&r);
    assert!(k.contains(&FindingKind::AutomaticHelperAssignment));
    assert!(k.contains(&FindingKind::ThirdPartyAddress));
    assert!(r.helpers.iter().any(|h| h.name == "ftp" && h.automatic));
    assert_eq!(r.automatic_assignment, "on");
    let loose = r
        .module_options
        .iter()
        .find(|o| o.param == "loose")
        .unwrap();
    assert!(loose.widened);
}

#[test]
fn what_could_not_be_read_is_said_and_exits_2() {
    let mut i = input("nft_narrow", false);
    i.nft_json = Err("'nft' is not installed".into());
    i.expectations = Err("'conntrack -L expect' failed: Operation not permitted".into());
    i.listeners = None;
    let r = audit::run(&i);
    assert!(r.findings.is_empty());
    assert!(!r.complete);
    assert_eq!(r.exit_code(), 2);
    let what: Vec<_> = r.unreadable.iter().map(|u| u.what.as_str()).collect();
    assert!(what.contains(&"nftables"));
    assert!(what.contains(&"expectations"));
    assert!(what.contains(&"ruleset"));
    assert!(what.contains(&"listening sockets"));
    assert!(r.render_text().contains("Could not read"));
    assert!(r
        .render_text()
        .starts_with("ctscope audit (network namespace 'fixture')\nINCOMPLETE"));
    // Findings made elsewhere do not hide that the audit could not look.
    let mut i = input("nft_open", false);
    i.expectations = Err("dump flows: Operation not permitted".into());
    let r = audit::run(&i);
    assert!(!r.findings.is_empty());
    assert_eq!(r.exit_code(), 2);

    // iptables-nft tables whose save output is missing: said plainly.
    let mut i = input("ipt_open", true);
    i.iptables_nft = vec![(
        "ip".into(),
        Err("'iptables-nft-save' is not installed".into()),
    )];
    let r = audit::run(&i);
    let u = r
        .unreadable
        .iter()
        .find(|u| u.what == "iptables-nft")
        .unwrap();
    assert!(
        u.why.contains("ip filter") && u.why.contains("not installed"),
        "{}",
        u.why
    );
}

fn v4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Tuple {
    let mut t = Tuple {
        family: Family::Ipv4,
        proto: proto::TCP,
        sport,
        dport,
        ..Tuple::default()
    };
    t.src = octets(std::net::IpAddr::from(src));
    t.dst = octets(std::net::IpAddr::from(dst));
    t
}

#[test]
fn live_expectations_carry_freedom_and_findings() {
    let master = v4([10, 213, 5, 2], 40000, [10, 213, 5, 1], 21);
    let mut e = Expectation::new(
        v4([10, 213, 5, 1], 0, [10, 213, 5, 2], 3306),
        v4([255; 4], 0, [255; 4], 0xffff),
        master,
    );
    e.helper = intern("ftp");
    let mut f = Flow::new(master);
    f.helper = intern("ftp");
    let mut i = input("nft_narrow", false);
    i.expectations = Ok(vec![e]);
    i.flows = vec![f];
    i.listeners = Some(Listeners {
        sockets: vec![Listener {
            proto: proto::TCP,
            addr: "10.213.5.2".parse().unwrap(),
            port: 3306,
            inode: 0,
        }],
        ..Listeners::default()
    });
    let r = audit::run(&i);
    assert_eq!(r.expectations.len(), 1);
    let x = &r.expectations[0];
    assert_eq!(x.tuple, "10.213.5.1:any -> 10.213.5.2:3306");
    assert_eq!(x.row.as_deref(), Some("ftp data (loose=0)"));
    let j = serde_json::to_value(x).unwrap();
    assert_eq!(
        j["freedom"],
        serde_json::json!({"src":"fixed","sport":"full","dst":"fixed","dport":"in_cmd"})
    );
    assert_eq!(
        kinds(&r),
        vec![FindingKind::SensitivePort, FindingKind::ListeningSocket]
    );
    let ftp = r.helpers.iter().find(|h| h.name == "ftp").unwrap();
    assert_eq!((ftp.flows, ftp.expectations), (1, 1));
    assert_eq!(r.exit_code(), 1);
}

#[test]
fn a_helper_on_a_port_it_does_not_serve_is_reported_once() {
    let mut i = input("nft_narrow", false);
    let mut flows = Vec::new();
    for sport in [40000, 40001] {
        let mut f = Flow::new(v4([10, 213, 5, 2], sport, [10, 213, 5, 1], 3306));
        f.helper = intern("ftp");
        flows.push(f);
    }
    // A RELATED flow carrying a helper on a dynamic port is normal (expectation helpers).
    let mut rel = Flow::new(v4([10, 213, 5, 2], 40002, [10, 213, 5, 1], 45000));
    rel.helper = intern("ftp");
    rel.status = ctscope::model::flow::status::EXPECTED;
    flows.push(rel);
    // The normal control port is fine.
    let mut ok = Flow::new(v4([10, 213, 5, 2], 40003, [10, 213, 5, 1], 21));
    ok.helper = intern("ftp");
    flows.push(ok);
    i.flows = flows;
    let r = audit::run(&i);
    assert_eq!(
        kinds(&r),
        vec![FindingKind::UnusualHelperPort],
        "{:#?}",
        r.findings
    );
    assert!(r.findings[0].detail.contains("tcp port 3306"));
    // nft: a ct helper object, then the assignment in the admin's prerouting chain.
    assert!(
        r.findings[0].fix.contains(
            "`nft add ct helper inet fw ftp-tcp '{ type \"ftp\" protocol tcp; }'; nft add rule inet fw pre tcp dport 3306 ip daddr $SERVER ct helper set \"ftp-tcp\"`"
        ),
        "{}",
        r.findings[0].fix
    );
    // The same flows under an iptables ruleset get the CT target.
    let mut i = input("ipt_narrow", true);
    i.flows = r_flows();
    let r = audit::run(&i);
    assert!(r.findings[0].fix.contains(
        "`iptables -t raw -A PREROUTING -p tcp --dport 3306 -d $SERVER -j CT --helper ftp`"
    ));
}

#[test]
fn live_related_flows_are_judged_from_the_flow_and_name_the_listener() {
    // The forged PORT was consumed: only the master and the RELATED flow are live.
    let master = v4([10, 213, 5, 2], 40000, [10, 213, 5, 1], 21);
    let mut m = Flow::new(master);
    m.helper = intern("ftp");
    let mut rel = Flow::new(v4([10, 213, 5, 1], 47000, [10, 213, 5, 2], 3306));
    rel.status = ctscope::model::flow::status::EXPECTED;
    rel.extra_mut().master = Some(master);
    let mut i = input("nft_narrow", false);
    i.expectations = Ok(vec![]);
    i.flows = vec![m, rel];
    let mut owners = ctscope::risk::sockets::OwnerMap::new();
    let owner = |pid, name: &str| {
        vec![ctscope::risk::Owner {
            pid,
            name: name.into(),
        }]
    };
    owners.insert(1, owner(812, "mariadbd"));
    owners.insert(2, owner(77, "curl"));
    i.listeners = Some(
        Listeners {
            sockets: vec![Listener {
                proto: proto::TCP,
                addr: "0.0.0.0".parse().unwrap(),
                port: 3306,
                inode: 1,
            }],
            conns: vec![ctscope::risk::Conn {
                proto: proto::TCP,
                local: "10.213.5.2".parse().unwrap(),
                lport: 40000,
                remote: "10.213.5.1".parse().unwrap(),
                rport: 21,
                inode: 2,
            }],
            local: vec!["10.213.5.2".parse().unwrap()],
            ..Listeners::default()
        }
        .with_owners(owners),
    );
    let r = audit::run(&i);
    assert_eq!(r.related_flows.len(), 1);
    let x = &r.related_flows[0];
    assert_eq!(x.tuple, "10.213.5.1:47000 -> 10.213.5.2:3306");
    assert_eq!(x.risk_from, "flow");
    assert_eq!(x.row.as_deref(), Some("ftp data (loose=0)"));
    assert_eq!(
        kinds(&r),
        vec![FindingKind::SensitivePort, FindingKind::ListeningSocket]
    );
    assert!(r.findings.iter().any(|f| f
        .detail
        .contains("RELATED reaches 'mariadbd' (pid 812) listening on :3306")));
    let text = r.render_text();
    assert!(text.contains("Live RELATED flows"), "{text}");
    assert!(text.contains("(from the flow)"), "{text}");
    assert_eq!(r.exit_code(), 1);
}

fn r_flows() -> Vec<Flow> {
    let mut f = Flow::new(v4([10, 213, 5, 2], 40000, [10, 213, 5, 1], 3306));
    f.helper = intern("ftp");
    vec![f]
}

fn v6(src: &str, sport: u16, dst: &str, dport: u16) -> Tuple {
    let mut t = Tuple {
        family: Family::Ipv6,
        proto: proto::TCP,
        sport,
        dport,
        ..Tuple::default()
    };
    t.src = octets(src.parse().unwrap());
    t.dst = octets(dst.parse().unwrap());
    t
}

/// A forged EPRT toward a database: the expectation's fix is written for IPv6
/// (`ip6tables`), and for the chain its RELATED packet takes: INPUT when the destination is
/// this host's own address, FORWARD when the host routes it.
#[test]
fn expectation_fixes_follow_family_and_the_chain_that_matches() {
    let master = v6("fd00:213:5::2", 40000, "fd00:213:5::1", 21);
    let e = |dst: &str| {
        let mut e = Expectation::new(
            v6("fd00:213:5::1", 0, dst, 3306),
            v6(
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                0,
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                0xffff,
            ),
            master,
        );
        e.helper = intern("ftp");
        e
    };
    let fixes = |local: &str, ruleset: &str, save: bool| {
        let mut i = input(ruleset, save);
        let mut f = Flow::new(master);
        f.helper = intern("ftp");
        i.flows = vec![f];
        i.expectations = Ok(vec![e("fd00:213:5::2")]);
        i.local_addrs = Some(vec![local.parse().unwrap()]);
        let r = audit::run(&i);
        let x = &r.expectations[0];
        assert!(!x.findings.is_empty(), "{r:#?}");
        x.findings
            .iter()
            .map(|f| f.fix.clone())
            .collect::<Vec<_>>()
            .join("\n")
    };
    // This host is the client the expectation points at: INPUT, ip6tables.
    let f = fixes("fd00:213:5::2", "ipt_narrow", true);
    assert!(
        f.contains(
            "`ip6tables -I INPUT -p tcp --dport 3306 -m conntrack --ctstate RELATED -j DROP`"
        ),
        "{f}"
    );
    assert!(!f.contains("`iptables "), "{f}");
    // A router between the two: FORWARD.
    let f = fixes("fd00:213:9::1", "ipt_narrow", true);
    assert!(
        f.contains(
            "`ip6tables -I FORWARD -p tcp --dport 3306 -m conntrack --ctstate RELATED -j DROP`"
        ),
        "{f}"
    );
    assert!(!f.contains(" INPUT "), "{f}");
    // An nft ruleset: nft, ip6 addresses, the admin's forward chain.
    let f = fixes("fd00:213:9::1", "nft_narrow", false);
    assert!(
        f.contains("`nft insert rule inet fw forward tcp dport 3306 ct state related drop`"),
        "{f}"
    );
    assert!(f.contains("ip6 daddr"), "{f}");
    assert!(!f.contains("iptables"), "{f}");
}

/// iptables and ip6tables rules with the same text are two rules of two tools, and each
/// fix is written for its own family.
#[test]
fn ip_and_ip6_twins_are_told_apart() {
    let mut i = input("ipt_open", true);
    let save = fixture("ipt_open.save");
    i.iptables_nft = vec![("ip".into(), Ok(save.clone())), ("ip6".into(), Ok(save))];
    // nft -j shows the xt tables for both families.
    let j = fixture("ipt_open.nft.json").replace("\"family\": \"ip\"", "\"family\": \"ip6\"");
    let mut both: serde_json::Value = serde_json::from_str(&fixture("ipt_open.nft.json")).unwrap();
    let v6: serde_json::Value = serde_json::from_str(&j).unwrap();
    both["nftables"]
        .as_array_mut()
        .unwrap()
        .extend(v6["nftables"].as_array().unwrap().iter().cloned());
    i.nft_json = Ok(both.to_string());
    let r = audit::run(&i);
    let tools: Vec<&str> = r.related_rules.iter().map(|x| x.tool).collect();
    assert_eq!(tools, ["iptables-nft", "ip6tables-nft"], "{r:#?}");
    let text = r.render_text();
    assert!(
        text.contains("[!] iptables-nft ip filter FORWARD"),
        "{text}"
    );
    assert!(
        text.contains("[!] ip6tables-nft ip6 filter FORWARD"),
        "{text}"
    );
    let ftp = r.helpers.iter().find(|h| h.name == "ftp").unwrap();
    assert_eq!(
        ftp.assigned_by,
        [
            "iptables -t raw -A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp",
            "ip6tables -t raw -A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp"
        ]
    );
    let fixes: Vec<&str> = r
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::UnrestrictedRelated)
        .map(|f| f.fix.as_str())
        .collect();
    assert_eq!(fixes.len(), 2);
    assert!(fixes[0].contains("`iptables -A FORWARD"), "{}", fixes[0]);
    assert!(!fixes[0].contains("ip6tables"), "{}", fixes[0]);
    assert!(fixes[1].contains("`ip6tables -A FORWARD"), "{}", fixes[1]);
    assert!(!fixes[1].contains("`iptables "), "{}", fixes[1]);
    assert_ne!(r.findings[0].detail, r.findings[1].detail);
}

/// A module parameter that could not be read is unknown, never `[ok]`; a module that is
/// not loaded is said to be so.
#[test]
fn an_unreadable_module_parameter_is_unknown_not_ok() {
    let mut i = input("nft_narrow", false);
    i.params_unread = vec![(
        "nf_conntrack_ftp".into(),
        "loose".into(),
        "Permission denied (os error 13)".into(),
    )];
    i.table = HelperTable::embedded().unwrap();
    let r = audit::run(&i);
    let o = r
        .module_options
        .iter()
        .find(|o| o.module == "nf_conntrack_ftp" && o.param == "loose")
        .unwrap();
    assert_eq!(o.state, audit::ParamState::Unknown);
    assert!(!o.widened);
    let text = r.render_text();
    assert!(
        text.contains("[?] nf_conntrack_ftp loose=unknown (could not be read)"),
        "{text}"
    );
    assert!(!text.contains("[ok] nf_conntrack_ftp loose"), "{text}");
    assert!(r
        .unreadable
        .iter()
        .any(|u| u.why.contains("nf_conntrack_ftp/parameters/loose")));
    assert_eq!(r.to_json()["module_options"][0]["state"], "unknown");
    // Not loaded (no value, nothing unread): not `[ok]` either.
    let mut i = input("nft_narrow", false);
    i.table = HelperTable::embedded().unwrap();
    let text = audit::run(&i).render_text();
    assert!(
        text.contains("[-] nf_conntrack_sip sip_direct_media=(module not loaded)"),
        "{text}"
    );
}

/// `collect::unread_params` over a fake sysfs: a loaded module whose parameter file
/// cannot be read is reported, an absent module is not.
#[test]
fn unread_params_tells_unreadable_from_not_loaded() {
    let root = std::env::temp_dir().join(format!("ctscope-sysfs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    // nf_conntrack_ftp is loaded but its parameters directory holds no `loose`.
    std::fs::create_dir_all(root.join("module/nf_conntrack_ftp/parameters")).unwrap();
    let table = HelperTable::embedded().unwrap();
    let read = table.read_params(&root);
    let unread = audit::collect::unread_params(&table, &read, &root);
    assert!(
        unread
            .iter()
            .any(|(m, p, why)| m == "nf_conntrack_ftp" && p == "loose" && why.contains("loose")),
        "{unread:?}"
    );
    assert!(
        unread.iter().all(|(m, _, _)| m != "nf_conntrack_sip"),
        "{unread:?}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}
