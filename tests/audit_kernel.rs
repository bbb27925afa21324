//! `ctscope audit` inside real network namespaces: rulesets loaded with this machine's
//! iptables (nf_tables backend, whose conntrack/helper matches nft -j cannot show) and with
//! native nftables. An unrestricted RELATED accept rule is a finding with its exact text
//! (exit 1); helper-narrowed rules only are clean (exit 0). The collector enters the
//! namespace itself (`--netns`), so nothing here reads the host's ruleset.

mod common;

use common::lab::{privileged, Lab};
use ctscope::audit::{self, collect, Options};
use ctscope::risk::FindingKind;

const SUBNET: u8 = 5;

fn options(ns: &str) -> Options {
    Options {
        netns: Some(ns.to_string()),
        ..Options::default()
    }
}

fn audit_of(ns: &str) -> audit::Report {
    audit::run(&collect::collect(&options(ns)).expect("collect"))
}

fn kinds(r: &audit::Report) -> Vec<FindingKind> {
    r.findings.iter().map(|f| f.kind).collect()
}

/// `audit::execute --json` in `ns`: the exit code and the parsed report.
fn execute_json(ns: &str) -> (i32, serde_json::Value) {
    let mut out = Vec::new();
    let opts = Options {
        json: true,
        ..options(ns)
    };
    let code = audit::execute(&opts, &mut out);
    let v: serde_json::Value = serde_json::from_slice(&out)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)));
    (code, v)
}

#[test]
fn iptables_nft_unrestricted_related_is_a_finding() {
    if !privileged("iptables_nft_unrestricted_related_is_a_finding") {
        return;
    }
    let lab = Lab::new("rk", SUBNET);
    let ns = lab.cli.clone();
    lab.sh_ok(
        &ns,
        "sysctl -qw net.ipv4.conf.all.rp_filter=1 && \
         iptables -t raw -A PREROUTING -p tcp --dport 21 -j CT --helper ftp && \
         iptables -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    );
    let r = audit_of(&ns);
    assert_eq!(kinds(&r), vec![FindingKind::UnrestrictedRelated], "{r:#?}");
    assert!(r.findings[0].detail.contains(
        "iptables-nft ip filter chain FORWARD: `-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`"
    ));
    let ftp = r
        .helpers
        .iter()
        .find(|h| h.name == "ftp")
        .expect("ftp in use");
    assert_eq!(
        ftp.assigned_by,
        vec![
            "iptables -t raw -A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp".to_string()
        ]
    );
    assert!(r.complete, "{:#?}", r.unreadable);
    let (code, json) = execute_json(&ns);
    assert_eq!(code, 1);
    assert_eq!(json["exit"], 1);
    assert_eq!(json["findings"][0]["kind"], "unrestricted_related");
}

#[test]
fn iptables_nft_helper_restricted_rules_are_clean() {
    if !privileged("iptables_nft_helper_restricted_rules_are_clean") {
        return;
    }
    let lab = Lab::new("rk", SUBNET);
    let ns = lab.cli.clone();
    lab.sh_ok(
        &ns,
        "iptables -t raw -A PREROUTING -p tcp --dport 21 -j CT --helper ftp && \
         iptables -t raw -A PREROUTING -m rpfilter --invert -j DROP && \
         iptables -P FORWARD DROP && \
         iptables -A FORWARD -m conntrack --ctstate ESTABLISHED -j ACCEPT && \
         iptables -A FORWARD -m conntrack --ctstate RELATED -m helper --helper ftp \
             -d 10.213.5.1 -p tcp --dport 1024: -j ACCEPT",
    );
    let r = audit_of(&ns);
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    assert_eq!(r.related_rules.len(), 1);
    assert_eq!(r.related_rules[0].narrowed_by, vec!["ftp".to_string()]);
    assert_eq!(r.exit_code(), 0);
    let (code, _) = execute_json(&ns);
    assert_eq!(code, 0);
}

#[test]
fn native_nftables_unrestricted_related_is_a_finding() {
    if !privileged("native_nftables_unrestricted_related_is_a_finding") {
        return;
    }
    let lab = Lab::new("rk", SUBNET);
    let ns = lab.cli.clone();
    lab.sh_ok(
        &ns,
        "sysctl -qw net.ipv4.conf.all.rp_filter=1 && nft -f - <<'EOF'
table inet fw {
  ct helper ftp-std { type \"ftp\" protocol tcp; }
  chain pre { type filter hook prerouting priority raw; tcp dport 21 ct helper set \"ftp-std\"; }
  chain forward { type filter hook forward priority 0; policy drop; ct state related,established accept; }
}
EOF",
    );
    let r = audit_of(&ns);
    assert_eq!(kinds(&r), vec![FindingKind::UnrestrictedRelated], "{r:#?}");
    assert!(r.findings[0]
        .detail
        .contains("nftables inet fw chain forward: `ct state established,related accept`"));
    assert!(r.helpers.iter().any(|h| h.name == "ftp"
        && h.assigned_by == ["nft add rule inet fw pre tcp dport 21 ct helper set \"ftp-std\""]));
    let (code, _) = execute_json(&ns);
    assert_eq!(code, 1);
}

#[test]
fn native_nftables_helper_restricted_rules_are_clean() {
    if !privileged("native_nftables_helper_restricted_rules_are_clean") {
        return;
    }
    let lab = Lab::new("rk", SUBNET);
    let ns = lab.cli.clone();
    lab.sh_ok(
        &ns,
        "nft -f - <<'EOF'
table inet fw {
  ct helper ftp-std { type \"ftp\" protocol tcp; }
  chain pre { type filter hook prerouting priority raw; fib saddr . iif oif missing drop; tcp dport 21 ct helper set \"ftp-std\"; }
  chain forward { type filter hook forward priority 0; policy drop; ct state established accept; ct state related ct helper \"ftp\" ip daddr 10.213.5.1 tcp dport 1024-65535 accept; }
}
EOF",
    );
    let r = audit_of(&ns);
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    assert_eq!(r.related_rules.len(), 1);
    assert!(r.related_rules[0].restricted);
    assert_eq!(r.exit_code(), 0);
    let text = r.render_text();
    assert!(text.contains("[ok] nftables inet fw forward"), "{text}");
}

#[test]
fn rp_filter_off_is_read_inside_the_namespace() {
    if !privileged("rp_filter_off_is_read_inside_the_namespace") {
        return;
    }
    let lab = Lab::new("rk", SUBNET);
    let ns = lab.cli.clone();
    lab.sh_ok(
        &ns,
        "sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.ct1.rp_filter=0",
    );
    // No helper in use: the loose rp_filter is listed, but spoofed commands have no
    // helper to reach, so it is not a finding.
    let r = audit_of(&ns);
    assert!(
        r.findings
            .iter()
            .all(|f| f.kind != FindingKind::NoReversePathFilter),
        "{:#?}",
        r.findings
    );
    assert!(r
        .rp_filter
        .iter()
        .any(|x| x.iface == "ct1" && x.effective == 0));
    // Once a helper is assigned, it is.
    lab.sh_ok(
        &ns,
        "iptables -t raw -A PREROUTING -p tcp --dport 21 -j CT --helper ftp",
    );
    let r = audit_of(&ns);
    let rp: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::NoReversePathFilter)
        .collect();
    assert_eq!(rp.len(), 1, "{:#?}", r.findings);
    assert!(rp[0].detail.starts_with("interface ct1:"));
    assert!(r
        .rp_filter
        .iter()
        .any(|x| x.iface == "ct1" && x.effective == 0));
}

#[test]
fn a_missing_namespace_cannot_be_looked_at() {
    let mut out = Vec::new();
    let code = audit::execute(&options("ctscope-rk-no-such-namespace"), &mut out);
    assert_eq!(code, 2);
    assert!(String::from_utf8_lossy(&out).contains("ctscope-rk-no-such-namespace"));
}

/// The proof that outside strings are data: rule comments carrying a screen clear, an OSC
/// title/clipboard sequence, an 8-bit CSI and a bidi override, in both an nft ruleset and
/// an iptables rule of a namespace. The text report (the binary, as an admin runs it)
/// holds none of those characters raw, only their visible escapes; JSON keeps them exact.
#[test]
fn escape_sequences_in_rule_comments_are_printed_harmlessly() {
    if !privileged("escape_sequences_in_rule_comments_are_printed_harmlessly") {
        return;
    }
    let lab = Lab::new("rk", SUBNET);
    let ns = lab.cli.clone();
    let evil = "\x1b[2J\x1b]0;owned\x07\x1b]52;c;cm0gLXJmIC8K\x07\u{9b}31m\u{202e}tpecca";
    let file = std::env::temp_dir().join(format!("ctscope-evil-{}.nft", std::process::id()));
    std::fs::write(
        &file,
        format!(
            "table inet evil {{\n chain input {{\n  type filter hook input priority 0;\n  \
             ct state related accept comment \"nft {evil}\"\n }}\n}}\n"
        ),
    )
    .unwrap();
    let loaded = lab.sh(&ns, &format!("nft -f {}", file.display()));
    let _ = std::fs::remove_file(&file);
    assert!(
        loaded.status.success(),
        "{}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    // iptables-nft reads its comment from an argument; the shell's printf makes the bytes.
    lab.sh_ok(
        &ns,
        "iptables -A FORWARD -m conntrack --ctstate RELATED -m comment \
         --comment \"ipt $(printf '\\033[2J\\033]0;owned\\007')\" -j ACCEPT",
    );
    let run = |json: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ctscope"));
        cmd.args(["--netns", &ns, "audit"]);
        if json {
            cmd.arg("--json");
        }
        cmd.output().expect("run ctscope audit")
    };
    let text = run(false);
    assert_eq!(
        text.status.code(),
        Some(1),
        "findings: unrestricted RELATED"
    );
    let out = String::from_utf8(text.stdout).expect("text report is UTF-8");
    for bad in ['\x1b', '\x07', '\u{9b}', '\u{202e}'] {
        assert!(
            !out.contains(bad),
            "raw {:?} reached the terminal:\n{}",
            bad,
            out.escape_debug()
        );
    }
    assert!(
        out.contains(
            r"nft \x1b[2J\x1b]0;owned\x07\x1b]52;c;cm0gLXJmIC8K\x07\u{9b}31m\u{202e}tpecca"
        ),
        "{out}"
    );
    assert!(out.contains(r"ipt \x1b[2J\x1b]0;owned\x07"), "{out}");

    let json = run(true);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON report");
    let texts: Vec<&str> = v["related_rules"]
        .as_array()
        .expect("related_rules")
        .iter()
        .filter_map(|r| r["text"].as_str())
        .collect();
    assert!(
        texts.iter().any(|t| t.contains(&format!("nft {evil}"))),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("ipt \x1b[2J\x1b]0;owned\x07")),
        "{texts:?}"
    );
}

/// Every backticked command in `fix`, with the admin's placeholders filled in.
fn commands_in(fix: &str, v4: &str, v6: &str) -> Vec<String> {
    fix.split('`')
        .skip(1)
        .step_by(2)
        .filter(|c| {
            c.starts_with("nft ") || c.starts_with("iptables ") || c.starts_with("ip6tables ")
        })
        .map(|c| {
            let addr = if c.contains("ip6") { v6 } else { v4 };
            c.replace("$FTP_SERVER", addr).replace("$SERVER", addr)
        })
        .collect()
}

/// The audit's fixes are written in the firewall's own language and family, and they are
/// real commands: each one is run in the namespace and the tool accepts it. An nft
/// ruleset gets nft rules in the admin's own table and chain; an ip6tables rule gets an
/// ip6tables fix; ip and ip6 twins are told apart.
#[test]
fn audit_fixes_are_commands_the_firewall_accepts() {
    if !privileged("audit_fixes_are_commands_the_firewall_accepts") {
        return;
    }
    let lab = Lab::new("rk", SUBNET);
    let (srv4, srv6) = (lab.srv4.clone(), lab.srv6.clone());

    // Native nftables.
    let ns = lab.cli.clone();
    lab.sh_ok(
        &ns,
        "nft -f - <<'EOF'
table inet fw {
  ct helper ftp-std { type \"ftp\" protocol tcp; }
  chain pre { type filter hook prerouting priority raw; tcp dport 21 ct helper set \"ftp-std\"; }
  chain inbound { type filter hook input priority 0; policy accept; ct state related,established accept; }
}
EOF",
    );
    let r = audit_of(&ns);
    assert_eq!(r.language, "nftables");
    let f = r
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::UnrestrictedRelated)
        .expect("unrestricted RELATED");
    assert!(!f.fix.contains("iptables"), "{}", f.fix);
    let cmds = commands_in(&f.fix, &srv4, &srv6);
    assert!(
        cmds.iter()
            .any(|c| c
                .starts_with("nft add rule inet fw inbound ct state related ct helper \"ftp\"")),
        "{cmds:?}"
    );
    for c in &cmds {
        lab.sh_ok(&ns, c);
    }
    let listed = lab.sh_ok(&ns, "nft list chain inet fw inbound");
    assert!(listed.contains("ct helper \"ftp\""), "{listed}");

    // iptables and ip6tables twins in the other namespace.
    let ns = lab.srv.clone();
    lab.sh_ok(
        &ns,
        "iptables -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT && \
         ip6tables -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT && \
         iptables -t raw -A PREROUTING -p tcp --dport 21 -j CT --helper ftp && \
         ip6tables -t raw -A PREROUTING -p tcp --dport 21 -j CT --helper ftp",
    );
    let r = audit_of(&ns);
    assert_eq!(r.language, "iptables");
    let tools: Vec<&str> = r.related_rules.iter().map(|x| x.tool).collect();
    assert_eq!(tools, ["iptables-nft", "ip6tables-nft"], "{r:#?}");
    let ftp = r.helpers.iter().find(|h| h.name == "ftp").expect("ftp");
    assert_eq!(ftp.assigned_by.len(), 2);
    assert_ne!(ftp.assigned_by[0], ftp.assigned_by[1]);
    let fixes: Vec<&str> = r
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::UnrestrictedRelated)
        .map(|f| f.fix.as_str())
        .collect();
    assert_eq!(fixes.len(), 2, "{:#?}", r.findings);
    assert!(fixes[1].contains("`ip6tables -A INPUT"), "{}", fixes[1]);
    assert!(!fixes[1].contains("`iptables "), "{}", fixes[1]);
    for fix in fixes {
        for c in commands_in(fix, &srv4, &srv6) {
            lab.sh_ok(&ns, &c);
        }
    }
    let v6 = lab.sh_ok(&ns, "ip6tables -S INPUT");
    assert!(v6.contains("--helper ftp"), "{v6}");
    assert!(!r
        .render_text()
        .contains("[ok] nf_conntrack_ftp loose=(module not loaded)"));
}
