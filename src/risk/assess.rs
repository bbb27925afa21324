//! Assessment of one expectation or RELATED flow: its live freedom, the shape the authors'
//! table expects, and the findings, each with its fix.
//!
//! Owns the finding rules (sensitive port, third-party address, listening socket, unusual
//! helper port, bursts, table mismatch), applied alike to expectations and RELATED flows.
//! A RELATED flow is judged by the expectation that created it when the store saw it, and
//! otherwise from the flow itself (state, not history: the admin usually looks after the
//! event). Pure over its inputs: the table, the sockets snapshot and the store are given,
//! so tests feed hand-built records. It must not read the system (see
//! `table::read_params`, `sockets::Listeners::read`; `refresh` delegates to `risk`) nor
//! print.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use super::classify::{classify, classify_flow, Freedom, MasterEnds};
use super::finding::{self, Finding, FindingKind};
use super::sockets::{Listeners, Owner};
use super::table::{Entry, HelperTable, Level};
use crate::error::Error;
use crate::model::store::{ExpectKey, FlowKey, Store};
use crate::model::tuple::{proto, Endpoint};
use crate::model::{Expectation, Flow, Tuple};

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
    pub fn from_env() -> Result<Config, Error> {
        match std::env::var(SENSITIVE_PORTS_ENV) {
            Ok(v) => Config::default().with_ports(&v).map_err(|e| match e {
                Error::Config { reason, hint, .. } => Error::Config {
                    what: SENSITIVE_PORTS_ENV.into(),
                    reason,
                    hint,
                },
                e => e,
            }),
            Err(_) => Ok(Config::default()),
        }
    }

    /// Parse a comma-separated port list (`--sensitive-ports 22,3306`).
    pub fn with_ports(mut self, list: &str) -> Result<Config, Error> {
        let mut ports = Vec::new();
        for p in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            ports.push(p.parse::<u16>().map_err(|_| Error::Config {
                what: "--sensitive-ports".into(),
                reason: format!("'{p}' is not a port number"),
                hint: Some("a comma-separated list such as 22,3306"),
            })?);
        }
        self.sensitive_ports = ports;
        Ok(self)
    }
}

/// Where a RELATED flow's verdict comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RiskFrom {
    /// The expectation that created it (live, or seen by the store before the kernel
    /// consumed it): its mask says what was a wildcard.
    Expectation,
    /// The flow itself: its tuples, its master tuple, the master's helper and that
    /// helper's table row (the expectation was never seen).
    Flow,
}

impl RiskFrom {
    /// `"expectation"` or `"flow"`, the JSON `risk_from`.
    pub fn name(self) -> &'static str {
        match self {
            RiskFrom::Expectation => "expectation",
            RiskFrom::Flow => "flow",
        }
    }
}

/// What the listening-socket check found for the destination an expectation or RELATED
/// flow reaches. Process names are kept raw; front ends escape them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenerCheck {
    /// No socket snapshot (a recording, or procfs unreadable): not checked.
    Unavailable,
    /// The destination is not an address of this namespace: the helper runs on a router
    /// (or on the other end), the listener would be on another host. The check does not
    /// apply, and nothing is guessed.
    NotLocal,
    /// Nothing listens on that port here.
    NoListener,
    /// The listener belongs to the process that owns the master connection: the
    /// announcer's own data or contact socket (a passive FTP server, an active FTP client,
    /// a SIP phone). Normal.
    SameProcess { port: u16, owner: Owner },
    /// Another process listens there: what a forged command reaches.
    OtherProcess {
        port: u16,
        owner: Owner,
        master: Owner,
    },
    /// A process listens there, but the master connection's socket is not on this host
    /// any more (closed), so the two cannot be compared.
    MasterGone { port: u16, owner: Owner },
    /// Something listens there, but no process holding it was found: another user's
    /// process read without root, or a socket only the kernel holds (nfsd, lockd).
    OwnerUnknown { port: u16 },
}

impl ListenerCheck {
    /// `{"check": …}` with the port and processes where known, for the JSON views.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        let own = |o: &Owner| json!({"process": o.name, "pid": o.pid});
        match self {
            ListenerCheck::Unavailable => json!({"check": "unavailable"}),
            ListenerCheck::NotLocal => json!({"check": "not_local"}),
            ListenerCheck::NoListener => json!({"check": "no_listener"}),
            ListenerCheck::SameProcess { port, owner } => {
                json!({"check": "same_process", "port": port, "listener": own(owner)})
            }
            ListenerCheck::OtherProcess {
                port,
                owner,
                master,
            } => {
                json!({"check": "other_process", "port": port, "listener": own(owner), "master": own(master)})
            }
            ListenerCheck::MasterGone { port, owner } => {
                json!({"check": "master_gone", "port": port, "listener": own(owner)})
            }
            ListenerCheck::OwnerUnknown { port } => json!({"check": "owner_unknown", "port": port}),
        }
    }
}

/// The verdict on one expectation or RELATED flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// Kernel helper name (of the master, for a RELATED flow), when known.
    pub helper: Option<String>,
    /// The table row used (`ftp data (loose=0)`), `None` for unknown helpers.
    pub row: Option<String>,
    /// The table row itself, for the JSON `"table"` (shared with the table, not copied).
    pub entry: Option<Arc<Entry>>,
    /// What the live data says.
    pub freedom: Freedom,
    /// What the table says, for the row used.
    pub expected: Option<Freedom>,
    pub findings: Vec<Finding>,
    /// E.g. "helper 'x' is not in the freedom table: classified from live data only".
    pub note: Option<String>,
    /// Whether this came from an expectation or from the flow alone.
    pub from: RiskFrom,
    /// What the listening-socket check saw.
    pub listener: ListenerCheck,
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

    /// `"table"` for the JSON views: the row used, or `null` when the helper has none.
    pub fn table_json(&self) -> serde_json::Value {
        self.entry
            .as_ref()
            .map_or(serde_json::Value::Null, |e| e.to_json())
    }
}

/// The JSON fields an assessment adds to a view.
#[derive(Debug, Clone, PartialEq)]
pub struct RiskJson {
    pub freedom: serde_json::Value,
    pub findings: serde_json::Value,
    pub risk_from: &'static str,
    pub table: serde_json::Value,
    pub listener: serde_json::Value,
}

impl RiskJson {
    pub fn of(a: &Assessment) -> RiskJson {
        RiskJson {
            freedom: a.freedom_json(),
            findings: a.findings_json(),
            risk_from: a.from.name(),
            table: a.table_json(),
            listener: a.listener.to_json(),
        }
    }
}

/// What one assessment is about, whichever way it was classified.
struct Subject<'a> {
    /// "expectation" or "RELATED flow", the findings' first words.
    what: &'static str,
    helper: Option<String>,
    entry: Option<&'a Arc<Entry>>,
    notes: Vec<String>,
    freedom: Freedom,
    /// The entry's own addresses, for the third-party finding.
    src: IpAddr,
    dst_addr: IpAddr,
    /// Where it reaches: `None` for a wildcard.
    dst: Option<IpAddr>,
    dport: Option<u16>,
    proto: u8,
    master: MasterEnds,
    siblings: usize,
    from: RiskFrom,
}

/// Assesses expectations against a table, a config and (optionally) the namespace's
/// listening sockets. Build one per view refresh; it holds no per-entry state.
#[derive(Debug, Clone)]
pub struct Assessor {
    pub table: HelperTable,
    pub config: Config,
    /// Listening sockets of the namespace whose table is shown; `None` skips that check.
    pub listeners: Option<Listeners>,
    /// Where `refresh` re-reads the sockets; `None` keeps the snapshot (tests, replays).
    pub sockets_from: Option<SocketSource>,
    read_at: Option<std::time::Instant>,
}

/// The namespace whose sockets an assessor re-reads (`--netns`, or the current one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSource(pub Option<String>);

/// How old a socket snapshot may get before `refresh` reads it again: long-running front
/// ends (dashboard, `watch`) must see the sockets of connections made after they started.
pub const SOCKETS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(1);

impl Assessor {
    pub fn new(table: HelperTable, config: Config, listeners: Option<Listeners>) -> Assessor {
        Assessor {
            table,
            config,
            listeners,
            sockets_from: None,
            read_at: None,
        }
    }

    /// Re-read the socket snapshot when it is older than `SOCKETS_MAX_AGE` and the
    /// assessor knows where from. Cheap when fresh; owners are read lazily.
    pub fn refresh(&mut self) {
        let Some(src) = &self.sockets_from else {
            return;
        };
        if self.read_at.is_some_and(|t| t.elapsed() < SOCKETS_MAX_AGE) {
            return;
        }
        self.listeners = super::listeners_in(src.0.as_deref());
        self.read_at = Some(std::time::Instant::now());
    }

    /// Mark the current snapshot as just read from `src` (see `refresh`).
    pub fn with_socket_source(mut self, src: SocketSource) -> Assessor {
        self.sockets_from = Some(src);
        self.read_at = Some(std::time::Instant::now());
        self
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
        let mut notes = Vec::new();
        match (&helper, entry) {
            (None, _) => {
                notes.push("no helper name reported: classified from live data only".into())
            }
            (Some(h), None) if self.table.knows(h) => notes.push(format!(
                "helper '{h}' has no table row for class {}: classified from live data only",
                e.class
            )),
            (Some(h), None) => notes.push(format!(
                "helper '{h}' is not in the freedom table: classified from live data only"
            )),
            _ => {}
        }
        let subject = Subject {
            what: if target.is_some() {
                "RELATED flow"
            } else {
                "expectation"
            },
            helper,
            entry,
            notes,
            freedom,
            src: e.tuple.src_ip(),
            dst_addr: e.tuple.dst_ip(),
            dport: match target {
                Some(t) => Some(t.dport),
                None if e.dport_is_any() => None,
                None => Some(e.tuple.dport),
            },
            dst: match target {
                Some(t) => Some(t.dst_ip()),
                None if e.dst_is_any() => None,
                None => Some(e.tuple.dst_ip()),
            },
            proto: e.tuple.proto,
            master: *master,
            siblings,
            from: RiskFrom::Expectation,
        };
        self.judge(subject)
    }

    /// Assess a RELATED flow from what the kernel holds on the flow itself (its original
    /// tuple, its master tuple, its own helper), the master's reply tuple and helper when
    /// the store still has the master, and the helper's table row: for a flow whose
    /// expectation ctscope never saw (it started after the traffic).
    pub fn assess_related(
        &self,
        f: &Flow,
        master: &MasterEnds,
        master_helper: Option<&str>,
        siblings: usize,
    ) -> Assessment {
        let t = &f.orig;
        let flow_helper = f.helper.name();
        let (entry, row_master) = match self.table.lookup_flow(master_helper, flow_helper, t.proto)
        {
            Some((e, m)) => (Some(e), Some(m)),
            None => (None, None),
        };
        let helper = row_master
            .map(str::to_string)
            .or_else(|| master_helper.map(str::to_string))
            .or_else(|| flow_helper.map(str::to_string));
        let mut notes = Vec::new();
        if master_helper.is_none() {
            notes.push(match flow_helper {
                Some(h) => format!(
                    "the master connection is gone: its helper is taken from the flow's own helper '{h}'"
                ),
                None => "the master connection is gone and the flow names no helper: classified from its tuples only".into(),
            });
        } else if entry.is_none() {
            notes.push(format!(
                "helper '{}' is not in the freedom table: classified from live data only",
                helper.as_deref().unwrap_or("?")
            ));
        }
        let nets =
            |a: IpAddr, b: IpAddr| self.listeners.as_ref().and_then(|l| l.same_network(a, b));
        let freedom = classify_flow(t, master, entry.map(|e| &e.shape), &nets);
        if entry.is_some_and(|e| e.shape.src == Level::Iface || e.shape.dst == Level::Iface)
            && nets(t.src_ip(), master.orig.dst_ip()).is_none()
        {
            notes.push(
                "the interface's networks are unknown here: an address the table gives as iface is taken as iface".into(),
            );
        }
        let subject = Subject {
            what: "RELATED flow",
            helper,
            entry,
            notes,
            freedom,
            src: t.src_ip(),
            dst_addr: t.dst_ip(),
            dst: Some(t.dst_ip()),
            dport: Some(t.dport),
            proto: t.proto,
            master: *master,
            siblings,
            from: RiskFrom::Flow,
        };
        self.judge(subject)
    }

    /// The listening-socket check for `dst:port` reached over `p`, with the master's
    /// endpoints to find the announcer's socket.
    fn listener_check(
        &self,
        p: u8,
        dst: Option<IpAddr>,
        port: u16,
        master: &MasterEnds,
    ) -> ListenerCheck {
        let Some(l) = &self.listeners else {
            return ListenerCheck::Unavailable;
        };
        if dst.is_some_and(|d| !l.is_local(d)) {
            return ListenerCheck::NotLocal;
        }
        let Some(s) = l.find(p, dst, port) else {
            return ListenerCheck::NoListener;
        };
        let Some(owners) = l.owners(s.inode) else {
            return ListenerCheck::OwnerUnknown { port };
        };
        let owner = owners[0].clone();
        let mp = master.orig.proto;
        let ends = |t: &Tuple| {
            [
                ((t.src_ip(), t.sport), (t.dst_ip(), t.dport)),
                ((t.dst_ip(), t.dport), (t.src_ip(), t.sport)),
            ]
        };
        let master_owners: Option<&[Owner]> = ends(&master.orig)
            .into_iter()
            .chain(ends(&master.reply))
            .filter(|(local, _)| l.is_local(local.0))
            .find_map(|(local, remote)| l.socket_of(mp, local, remote))
            .and_then(|inode| l.owners(inode));
        match master_owners {
            None => ListenerCheck::MasterGone { port, owner },
            Some(m) => match owners.iter().find(|o| m.iter().any(|x| x.pid == o.pid)) {
                Some(same) => ListenerCheck::SameProcess {
                    port,
                    owner: same.clone(),
                },
                None => ListenerCheck::OtherProcess {
                    port,
                    owner,
                    master: m[0].clone(),
                },
            },
        }
    }

    /// The findings on one subject: the rules shared by expectations and RELATED flows.
    fn judge(&self, s: Subject<'_>) -> Assessment {
        let Subject {
            what,
            helper,
            entry,
            mut notes,
            freedom,
            src,
            dst_addr,
            dst,
            dport,
            proto: p,
            master,
            siblings,
            from,
        } = s;
        let name = helper.as_deref().unwrap_or("?");
        let restrict = entry
            .map(|en| en.restrict.clone())
            .unwrap_or_else(|| finding::generic_restrict(name));
        let rule = finding::related_rule(&restrict);
        let mut findings = Vec::new();
        let ported = matches!(
            p,
            proto::TCP | proto::UDP | proto::SCTP | proto::DCCP | proto::UDPLITE
        );
        let pname = proto::name(p).unwrap_or("?");

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
            ("source", freedom.src, src),
            ("destination", freedom.dst, dst_addr),
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

        let listener = match (ported, dport) {
            (true, Some(port)) => self.listener_check(p, dst, port, &master),
            _ => ListenerCheck::NoListener,
        };
        let toward = |port: u16| {
            dst.map(|d| Endpoint(d, port).to_string())
                .unwrap_or_else(|| format!("any:{port}"))
        };
        let listen_fix = |port: u16| {
            format!(
                "a forged command can reach this service through RELATED: narrow RELATED with `{rule}` (`--dport 1024:` alone still lets this port through), drop RELATED to it (`iptables -I INPUT -p {pname} --dport {port} -m conntrack --ctstate RELATED -j DROP`), or bind the service to 127.0.0.1"
            )
        };
        // Without both owners the old rule stands: a standing service outside the
        // ephemeral range, where a helper's own data socket would never be.
        let standing = |port: u16| {
            self.listeners
                .as_ref()
                .is_some_and(|l| !l.is_ephemeral(port))
        };
        match &listener {
            ListenerCheck::OtherProcess {
                port,
                owner,
                master: m,
            } => findings.push(Finding::new(
                FindingKind::ListeningSocket,
                format!(
                    "{what} of helper '{name}' toward {pname} {}: RELATED reaches '{}' (pid {}) listening on :{port}, not the process that owns the master connection ('{}', pid {}) (dport {})",
                    toward(*port),
                    owner.name,
                    owner.pid,
                    m.name,
                    m.pid,
                    freedom.dport
                ),
                listen_fix(*port),
            )),
            ListenerCheck::MasterGone { port, owner } if standing(*port) => {
                findings.push(Finding::new(
                    FindingKind::ListeningSocket,
                    format!(
                        "{what} of helper '{name}' toward {pname} {}: RELATED reaches '{}' (pid {}) listening on :{port}; the master connection's socket is gone, so its owner cannot be compared (dport {})",
                        toward(*port),
                        owner.name,
                        owner.pid,
                        freedom.dport
                    ),
                    listen_fix(*port),
                ))
            }
            ListenerCheck::OwnerUnknown { port } if standing(*port) => {
                findings.push(Finding::new(
                    FindingKind::ListeningSocket,
                    crate::error::inline(
                        &format!(
                            "{what} of helper '{name}' toward {pname} {}: a local service listens on :{port}, outside the ephemeral range, and no process holding it could be found to compare with the master connection's owner (a kernel socket, or another user's /proc/PID/fd, which only root reads; CAP_NET_ADMIN does not open it) (dport {})",
                            toward(*port),
                            freedom.dport
                        ),
                        "run with sudo to name it",
                    ),
                    listen_fix(*port),
                ))
            }
            ListenerCheck::MasterGone { port, owner } => notes.push(format!(
                "'{}' (pid {}) listens on :{port} in the ephemeral range and the master connection's socket is gone: not compared",
                owner.name, owner.pid
            )),
            ListenerCheck::OwnerUnknown { port } => notes.push(format!(
                "a socket listens on :{port} in the ephemeral range; no process holding it was found: not compared"
            )),
            ListenerCheck::NotLocal => notes.push(format!(
                "listener check does not apply: {} is not an address of this namespace (the helper runs on a router, or the listener is on another host)",
                dst.map(|d| d.to_string()).unwrap_or_default()
            )),
            _ => {}
        }

        if let Some(en) = entry {
            let control = self.table.control_ports(en);
            let mp = master.orig.proto;
            let mport = master.orig.dport;
            if !control.is_empty() && !control.contains(&(mp, mport)) {
                let normal: Vec<String> = control
                    .iter()
                    .map(|(p, port)| format!("{}/{port}", proto::name(*p).unwrap_or("?")))
                    .collect();
                findings.push(Finding::new(
                    FindingKind::UnusualHelperPort,
                    format!(
                        "helper '{name}' is attached to {} port {mport}, which it does not normally serve ({})",
                        proto::name(mp).unwrap_or("?"),
                        normal.join(", ")
                    ),
                    format!(
                        "if this server is meant to use '{name}' there, assign it for that server only: `{}`; otherwise remove the CT rule (or module `ports` option) that attaches it",
                        finding::ct_assignment(name, proto::name(mp).unwrap_or("tcp"), mport)
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
            row: entry.map(|e| e.label()),
            entry: entry.cloned(),
            freedom,
            expected: entry.map(|en| en.shape),
            findings,
            note: (!notes.is_empty()).then(|| notes.join("; ")),
            from,
            listener,
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

    /// Assess a RELATED flow: by the expectation that created it when the store saw it
    /// (`risk_from` "expectation"), otherwise from the flow itself (`risk_from` "flow":
    /// its tuples, its master tuple, the master's helper from the store or the helper
    /// named on the flow, and the table row). `None` only for flows that are not RELATED
    /// (or RELATED without a master tuple, which the kernel always sends).
    pub fn flow(&self, store: &Store, key: &FlowKey) -> Option<Assessment> {
        let f = store.flow(key)?;
        if !f.is_related() {
            return None;
        }
        let master_key = FlowKey::master_of(f)?;
        let master_flow = store.master_of(key);
        let reply = master_flow.map(|m| m.reply());
        let siblings = store.expectations_of(&master_key).len();
        if let Some(e) = store.expectation_of(key) {
            return Some(self.assess(
                e,
                &MasterEnds::new(e.master, reply),
                siblings,
                Some(&f.orig),
            ));
        }
        let master_helper = master_flow.and_then(|m| m.helper.name());
        Some(self.assess_related(
            f,
            &MasterEnds::new(master_key.orig, reply),
            master_helper,
            siblings,
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
    use crate::risk::sockets::{Conn, Listener};
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
                inode: 0,
            }],
            local: vec!["10.213.5.2".parse().unwrap()],
            ..Listeners::default()
        }
    }

    /// A namespace where `port` is listened on by `listener` (inode 10), and the local end
    /// of `master` (client side, `CLIENT:40000 ↔ SERVER:21`) is held by `announcer`
    /// (inode 11).
    fn owned(port: u16, listener: (u32, &str), announcer: (u32, &str)) -> Listeners {
        let mut l = listeners(port);
        l.sockets[0].inode = 10;
        l.conns = vec![Conn {
            proto: proto::TCP,
            local: "10.213.5.2".parse().unwrap(),
            lport: 40000,
            remote: "10.213.5.1".parse().unwrap(),
            rport: 21,
            inode: 11,
        }];
        let mut o = crate::risk::sockets::OwnerMap::new();
        o.insert(
            10,
            vec![Owner {
                pid: listener.0,
                name: listener.1.into(),
            }],
        );
        o.insert(
            11,
            vec![Owner {
                pid: announcer.0,
                name: announcer.1.into(),
            }],
        );
        l.with_owners(o)
    }

    /// A store holding `flows` as one dump reported them.
    fn dumped<const N: usize>(flows: [Flow; N]) -> Store {
        let mut store = Store::new();
        for f in flows {
            store.apply(crate::model::Event::Dump, crate::model::Record::Flow(f), 0);
        }
        store
    }

    fn related(orig: Tuple, master: Tuple) -> Flow {
        let mut f = Flow::new(orig);
        f.status = crate::model::flow::status::EXPECTED | crate::model::flow::status::CONFIRMED;
        f.extra_mut().master = Some(master);
        f
    }

    #[test]
    fn related_flow_without_its_expectation_is_judged_from_the_flow() {
        // The forged PORT was consumed before ctscope looked: only the flow
        // SERVER:47000 → CLIENT:3306 and its master are in the table.
        let master = v4(CLIENT, 40000, SERVER, 21, proto::TCP);
        let mut mf = Flow::new(master);
        mf.helper = intern("ftp");
        let f = related(v4(SERVER, 47000, CLIENT, 3306, proto::TCP), master);
        let store = dumped([mf, f.clone()]);
        let asr = Assessor::new(
            HelperTable::embedded().unwrap(),
            Config::default(),
            Some(owned(3306, (812, "mariadbd"), (77, "curl"))),
        );
        let a = asr.flow(&store, &FlowKey::of(&f)).expect("assessed");
        assert_eq!(a.from, RiskFrom::Flow);
        assert_eq!(
            a.freedom,
            Freedom {
                src: Level::Fixed,
                sport: Level::Full,
                dst: Level::Fixed,
                dport: Level::InCmd
            }
        );
        assert_eq!(a.row.as_deref(), Some("ftp data (loose=0)"));
        assert_eq!(
            kinds(&a),
            vec![FindingKind::SensitivePort, FindingKind::ListeningSocket]
        );
        let l = a
            .findings
            .iter()
            .find(|f| f.kind == FindingKind::ListeningSocket)
            .unwrap();
        assert!(
            l.detail
                .contains("RELATED reaches 'mariadbd' (pid 812) listening on :3306"),
            "{}",
            l.detail
        );
        let j = RiskJson::of(&a);
        assert_eq!(j.risk_from, "flow");
        assert_eq!(j.table["row"], "ftp data (loose=0)");
        assert_eq!(j.listener["check"], "other_process");
        assert_eq!(j.listener["listener"]["pid"], 812);

        // The master gone too: the flow names no helper, so no row; still judged.
        let bare = dumped([f.clone()]);
        let a = asr.flow(&bare, &FlowKey::of(&f)).expect("assessed");
        assert_eq!(a.row, None);
        assert!(a
            .note
            .as_deref()
            .unwrap()
            .contains("master connection is gone"));
        assert!(kinds(&a).contains(&FindingKind::SensitivePort));
    }

    #[test]
    fn a_closed_master_cannot_vouch_for_a_standing_listener() {
        // The control connection is gone (its socket with it): 3306 is still reported,
        // naming the listener; a socket in the ephemeral range only gets a note.
        let master = v4(CLIENT, 40000, SERVER, 21, proto::TCP);
        let mut l = owned(3306, (812, "mariadbd"), (77, "curl"));
        l.conns.clear();
        let asr = Assessor::new(HelperTable::embedded().unwrap(), Config::default(), Some(l));
        let f = related(v4(SERVER, 47000, CLIENT, 3306, proto::TCP), master);
        let a = asr.assess_related(&f, &MasterEnds::new(master, None), Some("ftp"), 0);
        assert!(matches!(
            a.listener,
            ListenerCheck::MasterGone { port: 3306, .. }
        ));
        let d = &a
            .findings
            .iter()
            .find(|f| f.kind == FindingKind::ListeningSocket)
            .expect("still a finding")
            .detail;
        assert!(
            d.contains("'mariadbd' (pid 812)") && d.contains("socket is gone"),
            "{d}"
        );
        let mut l = owned(50000, (812, "mariadbd"), (77, "curl"));
        l.conns.clear();
        let asr = Assessor::new(HelperTable::embedded().unwrap(), Config::default(), Some(l));
        let f = related(v4(SERVER, 47000, CLIENT, 50000, proto::TCP), master);
        let a = asr.assess_related(&f, &MasterEnds::new(master, None), Some("ftp"), 0);
        assert!(a.findings.is_empty(), "{:#?}", a.findings);
        assert!(a.note.unwrap().contains("not compared"));
    }

    #[test]
    fn the_announcers_own_listener_is_normal_and_a_router_does_not_guess() {
        // Active FTP on the client that runs the helper: its own ftplib listens on the
        // port it announced, outside the ephemeral range.
        let master = v4(CLIENT, 40000, SERVER, 21, proto::TCP);
        let mut mf = Flow::new(master);
        mf.helper = intern("ftp");
        let f = related(v4(SERVER, 20, CLIENT, 20000, proto::TCP), master);
        let store = dumped([mf, f.clone()]);
        let asr = Assessor::new(
            HelperTable::embedded().unwrap(),
            Config::default(),
            Some(owned(20000, (77, "python3"), (77, "python3"))),
        );
        let a = asr.flow(&store, &FlowKey::of(&f)).unwrap();
        assert!(a.findings.is_empty(), "{:#?}", a.findings);
        assert!(matches!(
            a.listener,
            ListenerCheck::SameProcess { port: 20000, .. }
        ));
        // The same flow seen on a router: the client is not one of its addresses.
        let mut router = owned(20000, (77, "python3"), (77, "python3"));
        router.local = vec!["192.0.2.1".parse().unwrap()];
        let asr = Assessor::new(
            HelperTable::embedded().unwrap(),
            Config::default(),
            Some(router),
        );
        let a = asr.flow(&store, &FlowKey::of(&f)).unwrap();
        assert_eq!(a.listener, ListenerCheck::NotLocal);
        assert!(a.findings.is_empty());
        assert!(a.note.unwrap().contains("listener check does not apply"));
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
