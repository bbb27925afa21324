//! Filter language tables: (expression, entry, expected match) and (expression, error
//! position, length, message). Also the conntrack-style flags builder. Pure logic.

use ctscope::filter::{from_conntrack_flags, ConntrackFlags, Filter};
use ctscope::model::expect::flags;
use ctscope::model::flow::status;
use ctscope::model::helper;
use ctscope::model::tuple::{proto, Family};
use ctscope::model::{ExpectNat, Expectation, Flow, Tuple};

fn tuple(p: u8, src: &str, dst: &str) -> Tuple {
    let (sa, sp) = src.rsplit_once(':').unwrap();
    let (da, dp) = dst.rsplit_once(':').unwrap();
    let sa: std::net::IpAddr = sa.trim_matches(['[', ']']).parse().unwrap();
    let da: std::net::IpAddr = da.trim_matches(['[', ']']).parse().unwrap();
    let mut t = Tuple {
        family: if sa.is_ipv4() {
            Family::Ipv4
        } else {
            Family::Ipv6
        },
        proto: p,
        sport: sp.parse().unwrap(),
        dport: dp.parse().unwrap(),
        ..Tuple::default()
    };
    t.set_src_ip(sa);
    t.set_dst_ip(da);
    t
}

const EST: u32 = status::CONFIRMED | status::SEEN_REPLY | status::ASSURED;

fn ftp_ctl() -> Flow {
    let mut f = Flow::new(tuple(proto::TCP, "10.0.0.1:40000", "10.0.0.2:21"));
    f.state = 3;
    f.status = EST;
    f.helper = helper::intern("ftp");
    f.mark = 0x10;
    f.timeout = 300;
    f.id = 11;
    f
}

fn ftp_data() -> Flow {
    let mut f = Flow::new(tuple(proto::TCP, "10.0.0.1:41000", "10.0.0.2:50000"));
    f.state = 1;
    f.status = status::EXPECTED | status::CONFIRMED;
    f.timeout = 120;
    f.id = 12;
    f.extra_mut().master = Some(ftp_ctl().orig);
    f
}

fn dns6() -> Flow {
    let mut f = Flow::new(tuple(
        proto::UDP,
        "[fd00:213:3::1]:5353",
        "[fd00:213:3::2]:53",
    ));
    f.status = status::CONFIRMED;
    f.zone = 3;
    f.mark = 0x1ff;
    f.timeout = 25;
    f.id = 13;
    f
}

fn snat() -> Flow {
    let mut f = Flow::new(tuple(proto::TCP, "192.168.1.5:5000", "203.0.113.9:443"));
    f.state = 3;
    f.status = EST | status::SRC_NAT;
    f.timeout = 400;
    f.set_reply(tuple(proto::TCP, "203.0.113.9:443", "198.51.100.1:6000"));
    f
}

fn ping() -> Flow {
    let mut t = tuple(proto::ICMP, "10.0.0.1:0", "10.0.0.2:0");
    t.sport = 7; // echo id
    t.dport = 8 << 8; // echo request
    let mut f = Flow::new(t);
    f.status = status::CONFIRMED | status::SEEN_REPLY;
    f.timeout = 30;
    // A per-direction zone (CTA_TUPLE_ZONE in the original tuple).
    f.extra_mut().zone_orig = Some(4);
    f
}

fn udp_est() -> Flow {
    let mut f = Flow::new(tuple(proto::UDP, "10.0.0.3:1000", "10.0.0.4:53"));
    f.status = status::CONFIRMED | status::SEEN_REPLY;
    f.timeout = 170;
    f
}

/// The passive FTP expectation: any source port, data port 50000.
fn ftp_exp() -> Expectation {
    let t = tuple(proto::TCP, "10.0.0.1:0", "10.0.0.2:50000");
    let mut mask = t;
    mask.src = [0xff; 16];
    mask.dst = [0xff; 16];
    mask.sport = 0;
    mask.dport = 0xffff;
    let mut e = Expectation::new(t, mask, ftp_ctl().orig);
    e.helper = helper::intern("ftp");
    e.timeout = 300;
    e.id = 21;
    e
}

/// A SIP RTP expectation with a NAT part, any source address, class 1, PERMANENT.
fn sip_exp() -> Expectation {
    let t = tuple(proto::UDP, "0.0.0.0:0", "10.0.0.5:16384");
    let mut mask = t;
    mask.dst = [0xff; 16];
    mask.dport = 0xffff;
    let mut e = Expectation::new(t, mask, tuple(proto::UDP, "10.0.0.5:5060", "10.0.0.6:5060"));
    e.helper = helper::intern("sip");
    e.timeout = 5;
    e.class = 1;
    e.flags = flags::PERMANENT;
    e.zone = 3;
    e.nat = Some(ExpectNat { dir: 1, tuple: t });
    e
}

enum Entry {
    F(Flow),
    E(Expectation),
}

fn entry(name: &str) -> Entry {
    match name {
        "ftp_ctl" => Entry::F(ftp_ctl()),
        "ftp_data" => Entry::F(ftp_data()),
        "dns6" => Entry::F(dns6()),
        "snat" => Entry::F(snat()),
        "ping" => Entry::F(ping()),
        "udp_est" => Entry::F(udp_est()),
        "ftp_exp" => Entry::E(ftp_exp()),
        "sip_exp" => Entry::E(sip_exp()),
        _ => panic!("no entry {name}"),
    }
}

fn matches(f: &Filter, name: &str, now: u32) -> bool {
    match entry(name) {
        Entry::F(x) => f.match_flow(&x, now),
        Entry::E(x) => f.match_expect(&x, now),
    }
}

const ALL: [&str; 8] = [
    "ftp_ctl", "ftp_data", "dns6", "snat", "ping", "udp_est", "ftp_exp", "sip_exp",
];

/// (expression, entries that match at now = 0; every other entry must not match).
const TABLE: &[(&str, &[&str])] = &[
    ("", &ALL),
    ("   ", &ALL),
    ("proto=tcp", &["ftp_ctl", "ftp_data", "snat", "ftp_exp"]),
    ("proto=17", &["dns6", "udp_est", "sip_exp"]),
    ("proto!=tcp", &["dns6", "ping", "udp_est", "sip_exp"]),
    ("PROTO=ICMP", &["ping"]),
    ("family=ipv6", &["dns6"]),
    ("dport=21", &["ftp_ctl"]),
    ("dport==53", &["dns6", "udp_est"]),
    ("sport=40000", &["ftp_ctl"]),
    ("sport=0", &[]), // icmp ids are not ports; wildcard expectation ports match nothing
    ("port=21", &["ftp_ctl"]),
    ("port=6000", &["snat"]), // the NATed reply port
    ("port=16384", &["sip_exp"]),
    ("dport=1024-65535", &["ftp_data", "sip_exp", "ftp_exp"]),
    ("dport=1024:65535", &["ftp_data", "sip_exp", "ftp_exp"]),
    ("dport<1024", &["ftp_ctl", "dns6", "snat", "udp_est"]),
    ("dport>=50000", &["ftp_data", "ftp_exp"]),
    ("src=10.0.0.1", &["ftp_ctl", "ftp_data", "ping", "ftp_exp"]),
    (
        "src in 10.0.0.0/8",
        &["ftp_ctl", "ftp_data", "ping", "udp_est", "ftp_exp"],
    ),
    ("dst in 10.0.0.4/31", &["udp_est", "sip_exp"]),
    ("src in fd00:213:3::/64", &["dns6"]),
    ("dst=[fd00:213:3::2]", &["dns6"]),
    ("host=198.51.100.1", &["snat"]),
    (
        "addr in 10.0.0.2/32",
        &["ftp_ctl", "ftp_data", "ping", "ftp_exp"],
    ),
    (
        "src in 0.0.0.0/0",
        &["ftp_ctl", "ftp_data", "snat", "ping", "udp_est", "ftp_exp"],
    ),
    ("helper=ftp", &["ftp_ctl", "ftp_exp"]),
    ("helper=FTP", &["ftp_ctl", "ftp_exp"]),
    ("helper=nosuchhelper", &[]),
    (
        "helper!=ftp",
        &["ftp_data", "dns6", "snat", "ping", "udp_est", "sip_exp"],
    ),
    ("status=EXPECTED", &["ftp_data"]),
    ("status=assured,seen_reply", &["ftp_ctl", "snat"]),
    ("status=UNREPLIED", &["ftp_data", "dns6"]),
    ("status=SRC_NAT", &["snat"]),
    ("state=ESTABLISHED", &["ftp_ctl", "snat", "ping", "udp_est"]),
    ("state=SYN_SENT", &["ftp_data"]),
    ("state=NEW", &["dns6"]),
    ("state=RELATED", &["ftp_data"]),
    ("state=SYN_SENT,NEW", &["ftp_data", "dns6"]),
    ("ctstate=RELATED", &["ftp_data"]),
    (
        "ctstate in RELATED,ESTABLISHED",
        &["ftp_ctl", "ftp_data", "snat", "ping", "udp_est"],
    ),
    ("ctstate=new", &["dns6"]),
    ("zone=3", &["dns6", "sip_exp"]),
    ("zone>0", &["dns6", "sip_exp"]),
    ("zone_orig=4", &["ping"]),
    ("zone-orig>0 or zone_reply>0", &["ping"]),
    ("zone=4", &[]),
    ("mark=0x10", &["ftp_ctl"]),
    ("mark=16", &["ftp_ctl"]),
    ("mark=0x1f/0xff", &[]),
    ("mark=0xff/0xff", &["dns6"]),
    ("mark=0x10/0x10", &["ftp_ctl", "dns6"]),
    ("mark!=0", &["ftp_ctl", "dns6"]), // expectations have no mark
    ("not mark=0", &["ftp_ctl", "dns6", "ftp_exp", "sip_exp"]),
    (
        "dport!=21",
        &["ftp_data", "dns6", "snat", "udp_est", "ftp_exp", "sip_exp"],
    ),
    (
        "sport!=0",
        &["ftp_ctl", "ftp_data", "dns6", "snat", "udp_est"],
    ),
    (
        "not dport=21",
        &[
            "ftp_data", "dns6", "snat", "ping", "udp_est", "ftp_exp", "sip_exp",
        ],
    ),
    ("timeout<30", &["dns6", "sip_exp"]),
    ("timeout<=30", &["dns6", "ping", "sip_exp"]),
    ("id=11", &["ftp_ctl"]),
    ("class=1", &["sip_exp"]),
    ("flags=PERMANENT", &["sip_exp"]),
    ("related", &["ftp_data"]),
    ("RELATED", &["ftp_data"]),
    ("expect", &["ftp_exp", "sip_exp"]),
    (
        "flow",
        &["ftp_ctl", "ftp_data", "dns6", "snat", "ping", "udp_est"],
    ),
    ("nat", &["snat", "sip_exp"]),
    (
        "not expect",
        &["ftp_ctl", "ftp_data", "dns6", "snat", "ping", "udp_est"],
    ),
    ("expect and helper=sip", &["sip_exp"]),
    ("expect && zone=3", &["sip_exp"]),
    (
        "proto=tcp and dport=21 or related",
        &["ftp_ctl", "ftp_data"],
    ),
    (
        "related or proto=udp and zone=3",
        &["ftp_data", "dns6", "sip_exp"],
    ),
    ("(related or proto=udp) and zone=3", &["dns6", "sip_exp"]),
    ("!(proto=tcp || proto=udp)", &["ping"]),
    ("not not related", &["ftp_data"]),
    ("proto=tcp dport=21", &["ftp_ctl"]),
    ("helper=ftp and not expect", &["ftp_ctl"]),
    // Text: bare words, quotes and regexes over the rendered text.
    ("ftp", &["ftp_ctl", "ftp_exp"]),
    ("10.0.0.2:50000", &["ftp_data", "ftp_exp"]),
    ("ASSURED", &["ftp_ctl", "snat"]),
    ("syn_sent", &["ftp_data"]),
    ("\"reply tcp 203.0.113.9\"", &["snat"]),
    ("/:5[0-9]{4}\\b/", &["ftp_data", "ftp_exp"]),
    ("/^expect .*master udp/", &["sip_exp"]),
    ("/PERMANENT$/", &["sip_exp"]),
    ("ftp and not /master/", &["ftp_ctl"]),
    ("proto=udp fd00", &["dns6"]),
];

#[test]
fn table_of_matches() {
    for (expr, want) in TABLE {
        let f = Filter::parse(expr).unwrap_or_else(|e| panic!("{expr:?}: {}", e.render(expr)));
        for name in ALL {
            let expected = want.contains(&name);
            assert_eq!(matches(&f, name, 0), expected, "{expr:?} on {name}");
        }
    }
}

#[test]
fn timeout_counts_down_with_now() {
    let f = Filter::parse("timeout<100").unwrap();
    assert!(!f.match_flow(&ftp_ctl(), 0));
    assert!(f.match_flow(&ftp_ctl(), 201));
    assert!(Filter::parse("timeout=0")
        .unwrap()
        .match_expect(&sip_exp(), 9));
}

/// (expression, error position, length, message start).
const ERRORS: &[(&str, usize, usize, &str)] = &[
    ("dprt=21", 0, 4, "unknown field 'dprt'"),
    (
        "proto=tcp and dprt in 10.0.0.0/8",
        14,
        4,
        "unknown field 'dprt'",
    ),
    ("dport=abc", 6, 3, "invalid port 'abc'"),
    ("dport=70000", 6, 5, "port 70000 is out of range (0-65535)"),
    (
        "dport=2000-1000",
        6,
        9,
        "range start 2000 is above its end 1000",
    ),
    ("dport=1-x", 8, 1, "invalid port 'x'"),
    ("dport<1-9", 6, 3, "a range needs '=' or '!='"),
    ("dport=", 6, 0, "missing value after 'dport ='"),
    ("dport= and x", 7, 3, "missing value after 'dport ='"),
    ("proto<6", 5, 1, "'<' does not apply to this field"),
    ("proto=tcpx", 6, 4, "unknown protocol 'tcpx'"),
    ("family=ipv5", 7, 4, "unknown family 'ipv5'"),
    (
        "src in 10.0.0.0/33",
        16,
        2,
        "invalid prefix length '33' for ipv4 (0-32)",
    ),
    (
        "src in fd00::/129",
        14,
        3,
        "invalid prefix length '129' for ipv6",
    ),
    ("src=10.0.0.256", 4, 10, "invalid address '10.0.0.256'"),
    ("status=SEEN_REPLY,FOO", 18, 3, "unknown status 'FOO'"),
    ("state=OPENISH", 6, 7, "unknown state 'OPENISH'"),
    ("ctstate=INVALID", 8, 7, "unknown ctstate 'INVALID'"),
    ("mark=0xzz", 5, 4, "invalid mark '0xzz'"),
    ("mark=1/0xgg", 7, 4, "invalid mark mask '0xgg'"),
    ("flags=STICKY", 6, 6, "unknown expectation flag 'STICKY'"),
    ("helper=a/b/c/d/e/f/g/h/i/j", 7, 19, "invalid helper name"),
    ("(proto=tcp", 0, 1, "unclosed '('"),
    ("proto=tcp)", 9, 1, "unexpected ')' without a matching '('"),
    ("()", 0, 2, "empty parentheses"),
    ("proto=tcp and", 13, 0, "expected a term after 'and'"),
    ("proto=tcp ||", 12, 0, "expected a term after '||'"),
    ("and related", 0, 3, "expected a term before 'and'"),
    ("related or or expect", 11, 2, "expected a term after 'or'"),
    ("not", 3, 0, "expected a term after 'not'"),
    ("=21", 0, 1, "'=' needs a field before it"),
    ("a & b", 2, 1, "unexpected '&'; use '&&' or 'and'"),
    ("a | b", 2, 1, "unexpected '|'; use '||' or 'or'"),
    ("/[a/", 0, 4, "invalid regex: unclosed character class"),
    ("ftp /(/", 4, 3, "invalid regex: unclosed group"),
    ("/abc", 0, 4, "unterminated regex"),
    ("\"abc", 0, 4, "unterminated quote"),
];

#[test]
fn table_of_errors() {
    for (expr, pos, len, msg) in ERRORS {
        let e = Filter::parse(expr).expect_err(expr);
        assert!(
            e.message.starts_with(msg),
            "{expr:?}: message {:?} should start with {msg:?}",
            e.message
        );
        assert_eq!((e.pos, e.len), (*pos, *len), "{expr:?}: {}", e.render(expr));
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = format!("{}related{}", "(".repeat(100_000), ")".repeat(100_000));
    let e = Filter::parse(&deep).unwrap_err();
    assert_eq!((e.pos, e.len), (64, 1), "{}", e.message);
    assert!(e.message.contains("nested deeper than 64"));
    let nots = "not ".repeat(100_000) + "related";
    assert!(Filter::parse(&nots).is_err());
    let ok = format!("{}related{}", "(".repeat(30), ")".repeat(30));
    assert!(Filter::parse(&ok).unwrap().match_flow(&ftp_data(), 0));
}

#[test]
fn error_rendering_points_at_the_span() {
    let src = "proto=tcp and dprt=21";
    let e = Filter::parse(src).unwrap_err();
    let r = e.render(src);
    let mut lines = r.lines();
    assert_eq!(lines.next(), Some(src));
    assert!(lines
        .next()
        .unwrap()
        .starts_with("              ^^^^ unknown field 'dprt'"));
    assert!(e.to_string().ends_with("(at column 15)"), "{e}");
    // A span at the very end still gets one caret.
    let e = Filter::parse("dport=").unwrap_err();
    assert!(e
        .render("dport=")
        .ends_with("      ^ missing value after 'dport ='"));
}

#[test]
fn source_and_emptiness() {
    let f = Filter::parse(" related ").unwrap();
    assert_eq!(f.source(), " related ");
    assert!(!f.is_empty() && !f.has_text());
    assert!(Filter::parse("").unwrap().is_empty());
    assert!(Filter::parse("ftp").unwrap().has_text());
    assert!(!Filter::parse("helper=ftp").unwrap().has_text());
}

#[test]
fn conntrack_flags_compile_to_the_same_tests() {
    let flags = ConntrackFlags::default()
        .with("proto", "tcp")
        .with("orig-src", "10.0.0.0/8")
        .with("dport", "21")
        .with("mark", "0x10/0xf0")
        .with("status", "ASSURED")
        .with("helper", "ftp");
    let f = from_conntrack_flags(&flags).unwrap();
    assert_eq!(
        f.source(),
        "proto=tcp and src=10.0.0.0/8 and dport=21 and mark=0x10/0xf0 and status=ASSURED and helper=ftp"
    );
    let expr = Filter::parse(f.source()).unwrap();
    for name in ALL {
        assert_eq!(matches(&f, name, 0), matches(&expr, name, 0), "{name}");
    }
    assert!(matches(&f, "ftp_ctl", 0));
    assert!(!matches(&f, "ftp_data", 0));

    let rel = from_conntrack_flags(
        &ConntrackFlags::default()
            .with("zone", "0")
            .switch("related"),
    )
    .unwrap();
    assert!(rel.match_flow(&ftp_data(), 0));
    assert!(!rel.match_flow(&ftp_ctl(), 0));
    assert!(from_conntrack_flags(&ConntrackFlags::default())
        .unwrap()
        .is_empty());

    // Combined with --filter.
    let both = rel.and(Filter::parse("dport=50000").unwrap());
    assert_eq!(both.source(), "(zone=0 and related) and (dport=50000)");
    assert!(both.match_flow(&ftp_data(), 0));

    let e = from_conntrack_flags(&ConntrackFlags::default().with("dport", "2x")).unwrap_err();
    assert_eq!(
        (e.pos, e.len, e.message.as_str()),
        (0, 2, "--orig-port-dst: invalid port '2x'")
    );
    // Values cannot smuggle in operators: the whole value is one value.
    let e = from_conntrack_flags(&ConntrackFlags::default().with("proto", "tcp or related"))
        .unwrap_err();
    assert!(
        e.message.starts_with("-p: unknown protocol"),
        "{}",
        e.message
    );
}

/// Evaluation cost: a non-text filter over many flows does not render text, and a text
/// filter renders each entry once per evaluation however many text terms it has.
#[test]
fn evaluation_over_many_flows() {
    let f = Filter::parse("proto=tcp and dport>=1024 and not helper=sip").unwrap();
    let g = Filter::parse("ftp or /10\\.0\\.0\\.1:/ or \"SYN_SENT\"").unwrap();
    let base = ftp_data();
    let mut n = 0;
    let mut t = 0;
    for p in 0..20_000u16 {
        let mut x = base.clone();
        x.orig.dport = p;
        n += usize::from(f.match_flow(&x, 0));
        t += usize::from(g.match_flow(&x, 0));
    }
    assert_eq!(n, 20_000 - 1024);
    assert_eq!(t, 20_000);
}

/// Arbitrary input never panics: every string either compiles and evaluates, or yields an
/// error whose span lies inside the input and whose rendering works.
#[test]
fn arbitrary_input_never_panics() {
    const PIECES: &[&str] = &[
        "(",
        ")",
        "!",
        "=",
        "!=",
        "<",
        ">=",
        "&&",
        "||",
        "&",
        "|",
        "/",
        "\"",
        "\\",
        " ",
        "and",
        "or",
        "not",
        "in",
        "dport",
        "src",
        "mark",
        "status",
        "state",
        "helper",
        "x",
        "é",
        "21",
        "1-2",
        "0x1f/0xff",
        "10.0.0.0/8",
        "fd00::/64",
        "ftp",
        "[",
        "*",
        ",",
        ":",
        "related",
    ];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let flows = [ftp_ctl(), ftp_data(), dns6(), snat(), ping()];
    for _ in 0..5_000 {
        let n = (next() % 9) as usize;
        let src: String = (0..n)
            .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
            .collect();
        match Filter::parse(&src) {
            Ok(f) => {
                for x in &flows {
                    f.match_flow(x, 0);
                }
                f.match_expect(&ftp_exp(), 0);
            }
            Err(e) => {
                assert!(e.pos + e.len <= src.len(), "{src:?}: {e:?}");
                assert!(src.is_char_boundary(e.pos), "{src:?}: {e:?}");
                e.render(&src);
            }
        }
    }
}

/// Text terms search what the front end shows: the dashboard's row text by default, a
/// front end's own rendering after `with_text`, from the same compiled tree.
#[test]
fn text_terms_search_the_front_ends_text() {
    use ctscope::filter::TextSource;
    let f = Filter::parse("/dport=21\\b/").unwrap();
    assert!(!f.match_flow(&ftp_ctl(), 0), "the row text has no 'dport='");
    assert!(Filter::parse("/:21\\b/").unwrap().match_flow(&ftp_ctl(), 0));
    let line = f.with_text(TextSource {
        flow: |fl, _, out| {
            use std::fmt::Write;
            let _ = write!(out, "sport={} dport={}", fl.orig.sport, fl.orig.dport);
        },
        expect: |_, _, out| out.push_str("expect"),
    });
    assert!(line.match_flow(&ftp_ctl(), 0));
    assert!(!line.match_flow(&ftp_data(), 0));
    // `and` keeps the text source of its left side.
    let both = line.and(Filter::parse("mark=0x10").unwrap());
    assert!(both.match_flow(&ftp_ctl(), 0));
}

/// conntrack's `-f`, `-s`, `-d` must name one family; `-f` selects it; `--label` takes bit
/// numbers without a label map.
#[test]
fn conntrack_flags_family_and_labels() {
    let err = |f: ConntrackFlags| from_conntrack_flags(&f).unwrap_err().message;
    let m = err(ConntrackFlags::default()
        .with("orig-src", "::1")
        .with("orig-dst", "2.2.2.2"));
    assert!(m.starts_with("mismatched address family"), "{m}");
    let m = err(ConntrackFlags::default()
        .with("family", "ipv4")
        .with("orig-dst", "fd00::/8"));
    assert!(
        m.contains("'-f ipv4' is IPv4") && m.contains("'-d fd00::/8' is IPv6"),
        "{m}"
    );
    let v6 = from_conntrack_flags(&ConntrackFlags::default().with("family", "ipv6")).unwrap();
    assert!(v6.match_flow(&dns6(), 0));
    assert!(!v6.match_flow(&ftp_ctl(), 0));

    let mut labelled = ftp_ctl();
    labelled.extra_mut().labels = (1 << 3) | (1 << 64);
    let l = |v: &str| from_conntrack_flags(&ConntrackFlags::default().with("label", v));
    assert!(l("3").unwrap().match_flow(&labelled, 0));
    assert!(l("3,64").unwrap().match_flow(&labelled, 0));
    assert!(
        !l("3,5").unwrap().match_flow(&labelled, 0),
        "all are required"
    );
    assert!(!l("3").unwrap().match_flow(&ftp_ctl(), 0));
    assert!(!Filter::parse("label=3").unwrap().match_expect(
        &Expectation::new(ftp_ctl().orig, ftp_ctl().orig, ftp_ctl().orig),
        0
    ));
    let e = l("128").unwrap_err().message;
    assert!(e.starts_with("-l: unknown label '128'"), "{e}");
}

/// `proto=` knows the system's protocol names, not only conntrack's own.
#[test]
fn proto_takes_system_names() {
    let mut igmp = Flow::new(tuple(proto::TCP, "10.0.0.1:0", "224.0.0.1:0"));
    igmp.orig.proto = 2;
    assert!(Filter::parse("proto=igmp").unwrap().match_flow(&igmp, 0));
    assert!(Filter::parse("proto=2").unwrap().match_flow(&igmp, 0));
    assert!(!Filter::parse("proto=tcp").unwrap().match_flow(&igmp, 0));
    // Ports do not exist on igmp: no port term applies.
    assert!(!Filter::parse("dport=0").unwrap().match_flow(&igmp, 0));
}

/// The fields added with conntrack's remaining selectors: counters with suffixes, NAT
/// targets (bare, address, address:port, bracketed IPv6), reply ports, and their errors.
#[test]
fn counters_nat_and_reply_fields() {
    use ctscope::model::Counter;
    let mut f = ftp_ctl();
    f.extra_mut().counters = Some([
        Counter {
            packets: 600,
            bytes: 1 << 20,
        },
        Counter {
            packets: 500,
            bytes: 1,
        },
    ]);
    let m = |src: &str| Filter::parse(src).unwrap().match_flow(&f, 0);
    assert!(m("bytes>1M") && !m("bytes>2M") && m("bytes=1M-2M") && m("packets>=1100"));
    assert!(
        m("packets>1K") && !m("packets>2K"),
        "1100 is more than 1024"
    );
    // Without accounting a counter term matches nothing, and `!=` does not match either.
    assert!(!Filter::parse("bytes>0").unwrap().match_flow(&ftp_ctl(), 0));
    assert!(!Filter::parse("bytes!=5").unwrap().match_flow(&ftp_ctl(), 0));
    // Not NATed: no NAT selector matches; the reply tuple is the inverse of the original.
    assert!(!m("snat") && !m("dnat") && !m("anynat"));
    let o = f.orig;
    assert!(m(&format!("reply_sport={}", o.dport)) && m(&format!("reply_dport={}", o.sport)));
    for (bad, why) in [
        ("bytes>1X", "invalid bytes"),
        ("snat=10.0.0.1:99999", "invalid port"),
        ("snat=[fd00::1", "missing ']'"),
        ("dnat=nothere", "invalid address"),
    ] {
        let e = Filter::parse(bad).unwrap_err();
        assert!(e.message.contains(why), "{bad}: {}", e.message);
    }
    for good in [
        "snat=10.0.0.1",
        "dnat=[fd00::1]:53",
        "anynat=:80",
        "dnat=fd00::1",
        "snat=10.0.0.0/8:1",
    ] {
        Filter::parse(good).unwrap_or_else(|e| panic!("{good}: {}", e.message));
    }
}

/// `--tuple-src`/`--tuple-dst` select expectations by their expected tuple and never a
/// flow; a flow-only selector (`-r`) never matches an expectation.
#[test]
fn expectation_selectors_apply_to_expectations_only() {
    let f = ftp_ctl();
    let exp = Expectation::new(f.orig, f.orig, f.orig);
    let src = f.orig.src_ip().to_string();
    let t =
        from_conntrack_flags(&ConntrackFlags::default().with("tuple-src", src.clone())).unwrap();
    assert!(t.match_expect(&exp, 0));
    assert!(
        !t.match_flow(&f, 0),
        "a tuple selector is about expectations"
    );
    assert_eq!(t.source(), format!("expect and src={src}"));
    let r = from_conntrack_flags(&ConntrackFlags::default().with("reply-dst", src)).unwrap();
    assert!(r.match_flow(&f, 0));
    assert!(!r.match_expect(&exp, 0));
}
