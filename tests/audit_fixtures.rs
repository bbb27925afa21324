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
    // The fix names the helper in use, in the authors' terms.
    assert!(
        f.fix
            .contains("-m conntrack --ctstate RELATED -m helper --helper ftp -d $FTP_SERVER -p tcp --dport 1024: -j ACCEPT"),
        "{}",
        f.fix
    );
    let ftp = r.helpers.iter().find(|h| h.name == "ftp").unwrap();
    assert_eq!(
        ftp.assigned_by,
        vec!["-A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp".to_string()]
    );
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
        vec!["-A PREROUTING -m rpfilter --invert -j DROP".to_string()]
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
    let ftp = r.helpers.iter().find(|h| h.name == "ftp").unwrap();
    assert_eq!(
        ftp.assigned_by,
        vec!["tcp dport 21 ct helper set \"ftp-std\"".to_string()]
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
    assert!(rp[0].fix.contains("rpfilter --invert -j DROP"));
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
    assert!(r.findings[0].fix.contains(
        "iptables -t raw -A PREROUTING -p tcp --dport 3306 -d $SERVER -j CT --helper ftp"
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
