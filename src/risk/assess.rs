//! Assessment of one expectation or RELATED flow: its live freedom, the shape the authors'
//! table expects, and the findings, each with its fix.
//!
//! Owns the finding rules (sensitive port, third-party address, listening socket, unusual
//! helper port, bursts, table mismatch). Pure over its inputs: the table, the listeners
//! snapshot and the store are given, so tests feed hand-built records. It must not read
//! the system (see `table::read_params`, `sockets::Listeners::read`) nor print.

use std::collections::HashMap;
use std::net::IpAddr;

use super::classify::{classify, Freedom, MasterEnds};
use super::finding::{self, Finding, FindingKind};
use super::sockets::Listeners;
use super::table::{Entry, HelperTable, Level};
use crate::model::store::{ExpectKey, FlowKey, Store};
use crate::model::tuple::{proto, Endpoint};
use crate::model::{Expectation, Tuple};

/// The default sensitive destination ports (issue 4): remote shells, mail, SMB and
/// databases/caches that are commonly left listening on all addresses.
pub const DEFAULT_SENSITIVE_PORTS: [u16; 12] = [
    22, 23, 25, 445, 1433, 3306, 3389, 5432, 6379, 9200, 11211, 27017,
];

/// Burst threshold for helpers the table does not know.
pub const DEFAULT_BURST: u32 = 8;

/// What counts as sensitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub sensitive_ports: Vec<u16>,
    /// Also flag any port below 1024 that is not the helper's own data port.
    pub privileged_ports: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sensitive_ports: DEFAULT_SENSITIVE_PORTS.to_vec(),
            privileged_ports: true,
        }
    }
}

/// Environment variable holding the sensitive port list (comma-separated), read by
/// `Config::from_env` for the JSON annotations and the dashboard; `ctscope audit
/// --sensitive-ports` takes the same list.
pub const SENSITIVE_PORTS_ENV: &str = "CTSCOPE_SENSITIVE_PORTS";

impl Config {
    /// The default, with the port list from `CTSCOPE_SENSITIVE_PORTS` when set. A bad
    /// list is an error naming the variable.
    pub fn from_env() -> Result<Config, String> {
        match std::env::var(SENSITIVE_PORTS_ENV) {
            Ok(v) => Config::default()
                .with_ports(&v)
                .map_err(|e| format!("{SENSITIVE_PORTS_ENV}: {e}")),
            Err(_) => Ok(Config::default()),
        }
    }

    /// Parse a comma-separated port list (`--sensitive-ports 22,3306`).
    pub fn with_ports(mut self, list: &str) -> Result<Config, String> {
        let mut ports = Vec::new();
        for p in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            ports.push(
                p.parse::<u16>()
                    .map_err(|_| format!("sensitive port '{p}' is not a port number"))?,
            );
        }
        self.sensitive_ports = ports;
        Ok(self)
    }
}

/// The verdict on one expectation (or the expectation behind a RELATED flow).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// Kernel helper name, when the kernel reported one.
    pub helper: Option<String>,
    /// The table row used (`ftp data (loose=0)`), `None` for unknown helpers.
    pub row: Option<String>,
    /// What the live data says.
    pub freedom: Freedom,
    /// What the table says, for the row used.
    pub expected: Option<Freedom>,
    pub findings: Vec<Finding>,
    /// E.g. "helper 'x' is not in the freedom table: classified from live data only".
    pub note: Option<String>,
}

impl Assessment {
    /// `"freedom"` for the JSON views.
    pub fn freedom_json(&self) -> serde_json::Value {
        self.freedom.to_json()
    }

    /// `"findings"` for the JSON views: `[{"kind","detail","fix"}, …]`.
    pub fn findings_json(&self) -> serde_json::Value {
        finding::to_json(&self.findings)
    }
}

/// Assesses expectations against a table, a config and (optionally) the namespace's
/// listening sockets. Build one per view refresh; it holds no per-entry state.
#[derive(Debug, Clone)]
pub struct Assessor {
    pub table: HelperTable,
    pub config: Config,
    /// Listening sockets of the namespace whose table is shown; `None` skips that check.
    pub listeners: Option<Listeners>,
}

impl Assessor {
    pub fn new(table: HelperTable, config: Config, listeners: Option<Listeners>) -> Assessor {
        Assessor {
            table,
            config,
            listeners,
        }
    }

    /// Assess expectation `e` of a master whose endpoints are `master`, with `siblings`
    /// live expectations from that master (itself included). `target` is the tuple that
    /// actually connected, for a RELATED flow; for a pending expectation it is `None`.
    pub fn assess(
        &self,
        e: &Expectation,
        master: &MasterEnds,
        siblings: usize,
        target: Option<&Tuple>,
    ) -> Assessment {
        let freedom = classify(e, master);
        let helper = e.helper.name().map(str::to_string);
        let entry = helper
            .as_deref()
            .and_then(|h| self.table.lookup(h, e.class));
        let note = match (&helper, entry) {
            (None, _) => Some("no helper name reported: classified from live data only".into()),
            (Some(h), None) if self.table.knows(h) => Some(format!(
                "helper '{h}' has no table row for class {}: classified from live data only",
                e.class
            )),
            (Some(h), None) => Some(format!(
                "helper '{h}' is not in the freedom table: classified from live data only"
            )),
            _ => None,
        };
        let name = helper.as_deref().unwrap_or("?");
        let restrict = entry
            .map(|en| en.restrict.clone())
            .unwrap_or_else(|| finding::generic_restrict(name));
        let rule = finding::related_rule(&restrict);
        let mut findings = Vec::new();

        let dport = match target {
            Some(t) => Some(t.dport),
            None if e.dport_is_any() => None,
            None => Some(e.tuple.dport),
        };
        let dst: Option<IpAddr> = match target {
            Some(t) => Some(t.dst_ip()),
            None if e.dst_is_any() => None,
            None => Some(e.tuple.dst_ip()),
        };
        let p = e.tuple.proto;
        let ported = matches!(
            p,
            proto::TCP | proto::UDP | proto::SCTP | proto::DCCP | proto::UDPLITE
        );
        let pname = proto::name(p).unwrap_or("?");
        let what = if target.is_some() {
            "RELATED flow"
        } else {
            "expectation"
        };

        if let (true, Some(port)) = (ported, dport) {
            let listed = self.config.sensitive_ports.contains(&port);
            let own = entry.is_some_and(|en| {
                en.data_ports.contains(&port)
                    || self.table.control_ports(en).iter().any(|c| c.1 == port)
            });
            let privileged = self.config.privileged_ports && port < 1024 && !own;
            if listed || privileged {
                let why = if listed {
                    "a sensitive port"
                } else {
                    "a privileged port that is not the helper's own data port"
                };
                findings.push(Finding::new(
                    FindingKind::SensitivePort,
                    format!(
                        "{what} of helper '{name}' toward {pname} port {port}, {why} (dport {})",
                        freedom.dport
                    ),
                    format!(
                        "accept RELATED only as the helper needs: `{rule}`; and refuse it to this port before any RELATED accept: `iptables -I INPUT -p {pname} --dport {port} -m conntrack --ctstate RELATED -j DROP`"
                    ),
                ));
            }
        }

        for (field, level, addr) in [
            ("source", freedom.src, e.tuple.src_ip()),
            ("destination", freedom.dst, e.tuple.dst_ip()),
        ] {
            if level == Level::InCmd {
                let loose = if name.eq_ignore_ascii_case("ftp") {
                    " keep `loose` at 0 (`echo 0 > /sys/module/nf_conntrack_ftp/parameters/loose`);"
                } else {
                    ""
                };
                findings.push(Finding::new(
                    FindingKind::ThirdPartyAddress,
                    format!(
                        "{what} of helper '{name}': {field} {addr} is not an endpoint of the master {} (FXP, loose=1 or a DCC to a third party)",
                        master.orig
                    ),
                    format!(
                        "{loose} narrow RELATED to the addresses you serve: `{rule}`; and stop forged commands from spoofed peers with rp_filter=1 or `iptables -t raw -A PREROUTING -m rpfilter --invert -j DROP`"
                    ),
                ));
            }
        }

        if let (true, Some(port), Some(l)) = (ported, dport, &self.listeners) {
            let standing = !l.is_ephemeral(port);
            if let (true, Some(s)) = (standing, l.find(p, dst, port)) {
                findings.push(Finding::new(
                    FindingKind::ListeningSocket,
                    format!(
                        "{what} of helper '{name}' toward {pname} {}: a local service listens on {} (dport {}), outside the ephemeral range {}-{} a helper's own data socket would use",
                        dst.map(|d| Endpoint(d, port).to_string()).unwrap_or_else(|| format!("any:{port}")),
                        Endpoint(s.addr, s.port),
                        freedom.dport,
                        l.ephemeral.0,
                        l.ephemeral.1
                    ),
                    format!(
                        "a forged command can reach this service through RELATED: narrow RELATED with `{rule}` (`--dport 1024:` alone still lets this port through), drop RELATED to it (`iptables -I INPUT -p {pname} --dport {port} -m conntrack --ctstate RELATED -j DROP`), or bind the service to 127.0.0.1"
                    ),
                ));
            }
        }

        if let Some(en) = entry {
            let control = self.table.control_ports(en);
            let mp = e.master.proto;
            if !control.is_empty() && !control.contains(&(mp, e.master.dport)) {
                let normal: Vec<String> = control
                    .iter()
                    .map(|(p, port)| format!("{}/{port}", proto::name(*p).unwrap_or("?")))
                    .collect();
                findings.push(Finding::new(
                    FindingKind::UnusualHelperPort,
                    format!(
                        "helper '{name}' is attached to {} port {}, which it does not normally serve ({})",
                        proto::name(mp).unwrap_or("?"),
                        e.master.dport,
                        normal.join(", ")
                    ),
                    format!(
                        "if this server is meant to use '{name}' there, assign it for that server only: `{}`; otherwise remove the CT rule (or module `ports` option) that attaches it",
                        finding::ct_assignment(name, proto::name(mp).unwrap_or("tcp"), e.master.dport)
                    ),
                ));
            }
        }

        let burst = entry.map_or(DEFAULT_BURST, |en| en.burst);
        if siblings as u64 > u64::from(burst) {
            findings.push(Finding::new(
                FindingKind::ExpectationBurst,
                format!(
                    "{siblings} live expectations from one master {} (helper '{name}' normally creates at most {burst})",
                    master.orig
                ),
                format!(
                    "a peer is issuing commands in a loop: narrow RELATED with `{rule}`, and flush them with `ctscope flush --expect --helper {name}`"
                ),
            ));
        }

        if let Some(en) = entry {
            let mut wider = Vec::new();
            for ((f, live), (_, table)) in freedom.fields().iter().zip(en.shape.fields()) {
                if *live > table {
                    wider.push(format!("{f} is {live}, table says {table}"));
                }
            }
            if let Some(tp) = en.protocol {
                if tp != p {
                    wider.push(format!(
                        "protocol is {pname}, table says {}",
                        proto::name(tp).unwrap_or("?")
                    ));
                }
            }
            if !wider.is_empty() {
                findings.push(Finding::new(
                    FindingKind::TableMismatch,
                    format!(
                        "{what} of helper '{name}' is freer than the authors' table allows for {}: {}",
                        en.label(),
                        wider.join("; ")
                    ),
                    format!(
                        "check the module options of {} (/sys/module/{}/parameters) and whether a userspace helper or NAT helper created it; narrow RELATED with `{rule}`",
                        en.module, en.module
                    ),
                ));
            }
        }

        Assessment {
            helper,
            row: entry.map(Entry::label),
            freedom,
            expected: entry.map(|en| en.shape),
            findings,
            note,
        }
    }

    /// Assess a live expectation held by `store`: the master's reply tuple and sibling
    /// count come from the store.
    pub fn expectation(&self, store: &Store, e: &Expectation) -> Assessment {
        let key = FlowKey::new(e.zone, e.master);
        let reply = store.flow(&key).map(|f| f.reply());
        let siblings = store.expectations_of(&key).len().max(1);
        self.assess(e, &MasterEnds::new(e.master, reply), siblings, None)
    }

    /// Assess every live expectation of `store` in one pass (sibling counts computed once,
    /// so a table full of expectations costs O(n), not O(n²)): for a view rebuild.
    pub fn all_expectations(&self, store: &Store) -> Vec<(ExpectKey, Assessment)> {
        let mut per_master: HashMap<FlowKey, usize> = HashMap::new();
        for e in store.expectations() {
            *per_master
                .entry(FlowKey::new(e.zone, e.master))
                .or_default() += 1;
        }
        store
            .expectations()
            .map(|e| {
                let key = FlowKey::new(e.zone, e.master);
                let reply = store.flow(&key).map(|f| f.reply());
                let siblings = per_master.get(&key).copied().unwrap_or(1);
                (
                    ExpectKey::of(e),
                    self.assess(e, &MasterEnds::new(e.master, reply), siblings, None),
                )
            })
            .collect()
    }

    /// Assess a RELATED flow by the expectation that created it (kept by the store after
    /// the kernel dropped it). `None` when the flow is not RELATED or its expectation was
    /// never seen.
    pub fn flow(&self, store: &Store, key: &FlowKey) -> Option<Assessment> {
        let f = store.flow(key)?;
        if !f.is_related() {
            return None;
        }
        let e = store.expectation_of(key)?;
        let master_key = FlowKey::new(e.zone, e.master);
        let reply = store.master_of(key).map(|m| m.reply());
        let siblings = store.expectations_of(&master_key).len();
        Some(self.assess(
            e,
            &MasterEnds::new(e.master, reply),
            siblings,
            Some(&f.orig),
        ))
    }

    /// `("freedom", "findings")` values for an expectation's JSON view.
    pub fn expectation_json(
        &self,
        store: &Store,
        e: &Expectation,
    ) -> (serde_json::Value, serde_json::Value) {
        let a = self.expectation(store, e);
        (a.freedom_json(), a.findings_json())
    }

    /// `("freedom", "findings")` values for a RELATED flow's JSON view, `None` for other
    /// flows (the output module then leaves the fields out or null).
    pub fn flow_json(
        &self,
        store: &Store,
        key: &FlowKey,
    ) -> Option<(serde_json::Value, serde_json::Value)> {
        self.flow(store, key)
            .map(|a| (a.freedom_json(), a.findings_json()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::helper::intern;
    use crate::model::tuple::Family;
    use crate::risk::sockets::Listener;
    use crate::risk::table::Params;

    fn v4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, p: u8) -> Tuple {
        let mut t = Tuple {
            family: Family::Ipv4,
            proto: p,
            sport,
            dport,
            ..Tuple::default()
        };
        t.src[..4].copy_from_slice(&src);
        t.dst[..4].copy_from_slice(&dst);
        t
    }

    fn exp(helper: &str, tuple: Tuple, any_src: bool, master: Tuple) -> Expectation {
        let mut mask = v4(
            if any_src { [0; 4] } else { [255; 4] },
            0,
            [255; 4],
            0xffff,
            tuple.proto,
        );
        mask.proto = tuple.proto;
        let mut e = Expectation::new(tuple, mask, master);
        e.helper = intern(helper);
        e
    }

    fn listeners(port: u16) -> Listeners {
        Listeners {
            sockets: vec![Listener {
                proto: proto::TCP,
                addr: "0.0.0.0".parse().unwrap(),
                port,
            }],
            local: vec!["10.213.5.2".parse().unwrap()],
            ..Listeners::default()
        }
    }

    fn kinds(a: &Assessment) -> Vec<FindingKind> {
        let mut k: Vec<_> = a.findings.iter().map(|f| f.kind).collect();
        k.sort();
        k
    }

    const CLIENT: [u8; 4] = [10, 213, 5, 2];
    const SERVER: [u8; 4] = [10, 213, 5, 1];

    #[test]
    fn forged_port_to_mariadb_is_flagged_three_ways() {
        let master = v4(CLIENT, 40000, SERVER, 21, proto::TCP);
        let e = exp(
            "ftp",
            v4(SERVER, 0, CLIENT, 3306, proto::TCP),
            false,
            master,
        );
        let a = Assessor::new(
            HelperTable::embedded().unwrap(),
            Config::default(),
            Some(listeners(3306)),
        )
        .assess(&e, &MasterEnds::new(master, None), 1, None);
        assert_eq!(a.freedom.dport, Level::InCmd);
        assert_eq!(a.row.as_deref(), Some("ftp data (loose=0)"));
        assert_eq!(
            kinds(&a),
            vec![FindingKind::SensitivePort, FindingKind::ListeningSocket]
        );
        let fix = &a.findings[0].fix;
        assert!(
            fix.contains("-m helper --helper ftp -d $FTP_SERVER -p tcp --dport 1024:"),
            "{fix}"
        );
        let j = a.findings_json();
        assert_eq!(j[0]["kind"], "sensitive_port");
    }

    #[test]
    fn legitimate_passive_data_port_is_clean() {
        // PASV answer from the server: client → server:50123, the server's own ephemeral
        // data socket listening.
        let master = v4(CLIENT, 40000, SERVER, 21, proto::TCP);
        let e = exp(
            "ftp",
            v4(CLIENT, 0, SERVER, 50123, proto::TCP),
            false,
            master,
        );
        let mut l = listeners(50123);
        l.local = vec!["10.213.5.1".parse().unwrap()];
        let a = Assessor::new(HelperTable::embedded().unwrap(), Config::default(), Some(l)).assess(
            &e,
            &MasterEnds::new(master, None),
            1,
            None,
        );
        assert!(a.findings.is_empty(), "{:?}", a.findings);
        assert_eq!(a.freedom.dst, Level::Fixed);
    }

    #[test]
    fn ftp_data_port_20_is_not_privileged_but_other_low_ports_are() {
        let master = v4(CLIENT, 40000, SERVER, 21, proto::TCP);
        let table = HelperTable::embedded().unwrap();
        let asr = Assessor::new(table, Config::default(), None);
        let e = exp("ftp", v4(SERVER, 0, CLIENT, 20, proto::TCP), false, master);
        assert!(asr
            .assess(&e, &MasterEnds::new(master, None), 1, None)
            .findings
            .is_empty());
        let e = exp("ftp", v4(SERVER, 0, CLIENT, 111, proto::TCP), false, master);
        let a = asr.assess(&e, &MasterEnds::new(master, None), 1, None);
        assert_eq!(kinds(&a), vec![FindingKind::SensitivePort]);
        let custom = Assessor::new(
            HelperTable::embedded().unwrap(),
            Config {
                privileged_ports: false,
                ..Config::default()
            }
            .with_ports("111")
            .unwrap(),
            None,
        );
        let a = custom.assess(&e, &MasterEnds::new(master, None), 1, None);
        assert_eq!(kinds(&a), vec![FindingKind::SensitivePort]);
        assert!(Config::default().with_ports("22,x").is_err());
    }

    #[test]
    fn fxp_third_party_unusual_port_and_burst() {
        // FTP on 2121, PORT naming 192.0.2.9 (IPv4 with loose=1 in effect).
        let master = v4(CLIENT, 40000, SERVER, 2121, proto::TCP);
        let mut e = exp(
            "ftp",
            v4([0; 4], 0, [192, 0, 2, 9], 40001, proto::TCP),
            true,
            master,
        );
        e.class = 0;
        let mut p = Params::new();
        p.insert(("nf_conntrack_ftp".into(), "loose".into()), "1".into());
        let asr = Assessor::new(
            HelperTable::embedded().unwrap().with_params(p),
            Config::default(),
            None,
        );
        let a = asr.assess(&e, &MasterEnds::new(master, None), 3, None);
        assert_eq!(a.freedom.src, Level::Full);
        assert_eq!(
            kinds(&a),
            vec![
                FindingKind::ThirdPartyAddress,
                FindingKind::UnusualHelperPort,
                FindingKind::ExpectationBurst
            ]
        );
        assert!(a.findings[0].fix.contains("loose"));
        assert!(a.findings[1].fix.contains("-j CT --helper ftp"));
    }

    #[test]
    fn irc_wildcard_source_matches_its_table_row_but_not_ftps() {
        let master = v4(CLIENT, 40000, SERVER, 6667, proto::TCP);
        let e = exp("irc", v4([0; 4], 0, CLIENT, 5000, proto::TCP), true, master);
        let asr = Assessor::new(HelperTable::embedded().unwrap(), Config::default(), None);
        let a = asr.assess(&e, &MasterEnds::new(master, None), 1, None);
        assert_eq!(a.freedom.src, Level::Full);
        assert!(a.findings.is_empty(), "{:?}", a.findings);
        // The same shape from the ftp helper with loose=0 is a mismatch.
        let m21 = v4(CLIENT, 40000, SERVER, 21, proto::TCP);
        let e = exp("ftp", v4([0; 4], 0, CLIENT, 5000, proto::TCP), true, m21);
        let a = asr.assess(&e, &MasterEnds::new(m21, None), 1, None);
        assert_eq!(kinds(&a), vec![FindingKind::TableMismatch]);
        assert!(a.findings[0]
            .detail
            .contains("src is full, table says fixed"));
    }

    #[test]
    fn unknown_helpers_get_a_note_and_live_classification() {
        let master = v4(CLIENT, 40000, SERVER, 9999, proto::TCP);
        let e = exp(
            "myproto",
            v4(SERVER, 0, CLIENT, 5000, proto::TCP),
            false,
            master,
        );
        let asr = Assessor::new(HelperTable::embedded().unwrap(), Config::default(), None);
        let a = asr.assess(&e, &MasterEnds::new(master, None), 1, None);
        assert!(a
            .note
            .as_deref()
            .unwrap()
            .contains("not in the freedom table"));
        assert_eq!(a.expected, None);
        assert!(a.findings.is_empty());
        assert_eq!(a.freedom.dport, Level::InCmd);
    }

    #[test]
    fn related_flow_is_judged_on_the_port_it_actually_reached() {
        // An expectation with a wildcard destination port; the flow went to 22.
        let master = v4(CLIENT, 40000, SERVER, 21, proto::TCP);
        let mut e = exp("ftp", v4(SERVER, 0, CLIENT, 0, proto::TCP), false, master);
        e.mask.dport = 0;
        let asr = Assessor::new(HelperTable::embedded().unwrap(), Config::default(), None);
        let a = asr.assess(&e, &MasterEnds::new(master, None), 1, None);
        assert!(!kinds(&a).contains(&FindingKind::SensitivePort));
        let flow = v4(SERVER, 45000, CLIENT, 22, proto::TCP);
        let a = asr.assess(&e, &MasterEnds::new(master, None), 1, Some(&flow));
        assert!(kinds(&a).contains(&FindingKind::SensitivePort));
        assert!(a.findings.iter().any(|f| f.detail.contains("RELATED flow")));
    }
}
