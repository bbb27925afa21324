//! The helper freedom table (`assets/helpers.toml`): what shape each helper's expectations
//! should have, per the netfilter authors, and the module options that widen them.
//!
//! Owns loading the table (embedded by default, or an override file), reading the live
//! module parameters from `/sys/module/nf_conntrack_*/parameters`, and looking up the entry
//! for a kernel helper name and expectation class. It must not classify live expectations
//! (see `classify`) or decide what is a finding (see `assess`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::classify::Freedom;
use crate::error::Error;
use crate::model::tuple::proto;

/// The table shipped with ctscope.
pub const EMBEDDED: &str = include_str!("../../assets/helpers.toml");

/// How much of one tuple field an attacker may choose, least free first.
///
/// The order is meaningful: a live value freer than the table's is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Taken from the master connection: not a candidate for forgery.
    Fixed,
    /// Taken from the packet header (tftp: the client's source port).
    InPacket,
    /// Any address of the interface's network (a partial address mask).
    Iface,
    /// Parsed from the payload: a candidate for forgery.
    InCmd,
    /// Wildcard: any value matches.
    Full,
}

impl Level {
    /// The JSON and text spelling (`fixed`, `in_cmd`, …).
    pub fn name(self) -> &'static str {
        match self {
            Level::Fixed => "fixed",
            Level::InPacket => "in_packet",
            Level::Iface => "iface",
            Level::InCmd => "in_cmd",
            Level::Full => "full",
        }
    }
}

impl Level {
    /// The netfilter authors' spelling, for badges and tables: `Fixed`, `In Packet`,
    /// `Iface`, `In CMD`, `Full`.
    pub fn label(self) -> &'static str {
        match self {
            Level::Fixed => "Fixed",
            Level::InPacket => "In Packet",
            Level::Iface => "Iface",
            Level::InCmd => "In CMD",
            Level::Full => "Full",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A module option that selects one row of the authors' table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct OptionCond {
    /// Parameter name under `/sys/module/<module>/parameters/`.
    pub param: String,
    /// The value (normalised: booleans as `0`/`1`) for which this row holds.
    pub value: String,
    /// The kernel default, assumed when the parameter cannot be read.
    pub default: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    helper: String,
    kind: String,
    kernel_names: Vec<String>,
    module: String,
    protocol: String,
    #[serde(default)]
    classes: Option<Vec<u32>>,
    #[serde(default)]
    control: Vec<String>,
    #[serde(default)]
    data_ports: Vec<u16>,
    burst: u32,
    src: Level,
    sport: Level,
    dst: Level,
    dport: Level,
    #[serde(default)]
    option: Option<OptionCond>,
    #[serde(default)]
    expected_helper: Option<String>,
    restrict: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    expectation: Vec<RawEntry>,
}

/// One row: a helper's expectation kind (and option variant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub helper: String,
    pub kind: String,
    pub kernel_names: Vec<String>,
    pub module: String,
    /// IP protocol number of the expected connection; `None` when it comes from the
    /// command (sip signalling).
    pub protocol: Option<u8>,
    /// Expectation classes of this kind; `None` means every class.
    pub classes: Option<Vec<u32>>,
    /// Normal control ports as (protocol number, port).
    pub control: Vec<(u8, u16)>,
    pub data_ports: Vec<u16>,
    pub burst: u32,
    /// The freedom the authors' table gives this kind.
    pub shape: Freedom,
    pub option: Option<OptionCond>,
    /// The helper the kernel attaches to the connection this kind expects (`exp->helper`:
    /// sip signalling → `sip`, H.323 `Q.931` → `H.245`, `RAS` → `Q.931`); `None` when the
    /// expected connection gets no helper. A RELATED flow carrying it came from this row.
    pub expected_helper: Option<String>,
    /// The matches that narrow a RELATED accept rule for this helper.
    pub restrict: String,
}

impl Entry {
    /// `ftp data (loose=0)`: how reports name the row.
    pub fn label(&self) -> String {
        match &self.option {
            Some(o) => format!("{} {} ({}={})", self.helper, self.kind, o.param, o.value),
            None => format!("{} {}", self.helper, self.kind),
        }
    }

    /// The row as the JSON views carry it (`"table"`): its label, helper, kind, module,
    /// protocol, the option that selects it, and the authors' four levels.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "row": self.label(),
            "helper": self.helper,
            "kind": self.kind,
            "module": self.module,
            "protocol": match self.protocol {
                Some(p) => serde_json::Value::from(proto::name(p).unwrap_or("?")),
                None => serde_json::Value::from("in_cmd"),
            },
            "option": self.option.as_ref().map(|o| serde_json::json!({"param": o.param, "value": o.value})),
            "src": self.shape.src.name(),
            "sport": self.shape.sport.name(),
            "dst": self.shape.dst.name(),
            "dport": self.shape.dport.name(),
        })
    }
}

/// Live module parameters, keyed by (module, parameter), values normalised (`Y`→`1`).
pub type Params = BTreeMap<(String, String), String>;

/// The loaded table plus the live module parameters that pick its rows.
#[derive(Debug, Clone, Default)]
pub struct HelperTable {
    /// Shared so an assessment can keep its row without copying it.
    entries: Vec<Arc<Entry>>,
    params: Params,
    /// Whether each row's option holds under `params`, computed once (`with_params`) so
    /// lookups, which run per entry on every view rebuild, allocate nothing.
    holds: Vec<bool>,
}

impl HelperTable {
    /// The table compiled into the binary, with no live parameters (kernel defaults).
    pub fn embedded() -> Result<HelperTable, Error> {
        HelperTable::parse(EMBEDDED, "assets/helpers.toml (embedded)")
    }

    /// The embedded table, or `path` when given.
    pub fn load(path: Option<&Path>) -> Result<HelperTable, Error> {
        match path {
            None => HelperTable::embedded(),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| Error::Config {
                    what: format!("helper table '{}'", p.display()),
                    reason: e.to_string(),
                    hint: None,
                })?;
                HelperTable::parse(&text, &p.display().to_string())
            }
        }
    }

    /// Parse table text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<HelperTable, Error> {
        let bad = |reason: String| Error::Config {
            what: format!("helper table '{origin}'"),
            reason,
            hint: Some("compare with assets/helpers.toml"),
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut entries = Vec::with_capacity(raw.expectation.len());
        for r in raw.expectation {
            let protocol = if r.protocol == "in_cmd" {
                None
            } else {
                Some(proto::parse(&r.protocol).ok_or_else(|| {
                    bad(format!("{}: unknown protocol '{}'", r.helper, r.protocol))
                })?)
            };
            let mut control = Vec::new();
            for c in &r.control {
                control.push(parse_control(c).ok_or_else(|| {
                    bad(format!(
                        "{}: control port '{c}' is not 'proto/port'",
                        r.helper
                    ))
                })?);
            }
            entries.push(Arc::new(Entry {
                helper: r.helper,
                kind: r.kind,
                kernel_names: r.kernel_names,
                module: r.module,
                protocol,
                classes: r.classes,
                control,
                data_ports: r.data_ports,
                burst: r.burst,
                shape: Freedom {
                    src: r.src,
                    sport: r.sport,
                    dst: r.dst,
                    dport: r.dport,
                },
                option: r.option,
                expected_helper: r.expected_helper,
                restrict: r.restrict,
            }));
        }
        Ok(HelperTable {
            entries,
            params: Params::new(),
            holds: Vec::new(),
        }
        .with_params(Params::new()))
    }

    /// Use these live parameters to choose option rows and add live control ports.
    pub fn with_params(mut self, params: Params) -> HelperTable {
        self.params = params;
        self.holds = self.entries.iter().map(|e| self.option_holds(e)).collect();
        self
    }

    /// Read every parameter of every module the table names from `sys_root`
    /// (normally `/sys`: `/sys/module/<module>/parameters/<param>`). Modules that are not
    /// loaded (or not built) are simply absent.
    pub fn read_params(&self, sys_root: &Path) -> Params {
        let mut out = Params::new();
        let mut modules: Vec<&str> = self.entries.iter().map(|e| e.module.as_str()).collect();
        modules.sort_unstable();
        modules.dedup();
        for m in modules {
            let dir = sys_root.join("module").join(m).join("parameters");
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for ent in rd.flatten() {
                let name = ent.file_name().to_string_lossy().into_owned();
                if let Ok(v) = std::fs::read_to_string(ent.path()) {
                    out.insert((m.to_string(), name), normalise(v.trim()));
                }
            }
        }
        out
    }

    /// Every row.
    pub fn entries(&self) -> &[Arc<Entry>] {
        &self.entries
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    /// A live parameter value, if it was read.
    pub fn param(&self, module: &str, param: &str) -> Option<&str> {
        self.params
            .get(&(module.to_string(), param.to_string()))
            .map(String::as_str)
    }

    /// The rows whose option holds under the live parameters.
    fn live(&self) -> impl Iterator<Item = &Arc<Entry>> + '_ {
        self.entries
            .iter()
            .zip(&self.holds)
            .filter(|(_, h)| **h)
            .map(|(e, _)| e)
    }

    /// The row for an expectation of kernel helper `name` with class `class`, picking the
    /// option variant by the live parameter (or its default when unread).
    pub fn lookup(&self, name: &str, class: u32) -> Option<&Arc<Entry>> {
        self.live().find(|e| {
            e.kernel_names.iter().any(|n| n.eq_ignore_ascii_case(name))
                && e.classes.as_ref().is_none_or(|c| c.contains(&class))
        })
    }

    /// The first row for kernel helper `name` whose option holds, whatever its class: for
    /// facts shared by a helper's rows (module, control ports, the RELATED restriction).
    pub fn lookup_name(&self, name: &str) -> Option<&Arc<Entry>> {
        self.live()
            .find(|e| e.kernel_names.iter().any(|n| n.eq_ignore_ascii_case(name)))
    }

    /// The row behind a RELATED flow of protocol `p`, which carries no expectation class.
    ///
    /// `master_helper` is the master's helper when known; `flow_helper` the helper the
    /// kernel attached to the flow itself, which tells the kinds apart (sip signalling
    /// flows carry `sip`, media flows nothing) and, when the master is gone, names the row
    /// that attaches it (`H.245` → the Q.931 row). Returns the row and the master's
    /// helper name it stands for. Rows of the right protocol are preferred; when none
    /// is, the helper's first row is returned so the protocol difference is reported.
    pub fn lookup_flow<'a>(
        &'a self,
        master_helper: Option<&'a str>,
        flow_helper: Option<&'a str>,
        p: u8,
    ) -> Option<(&'a Arc<Entry>, &'a str)> {
        // Allocation-free: the dashboard runs this for every RELATED flow on each rebuild.
        let named = |e: &Entry, n: &str| e.kernel_names.iter().any(|k| k.eq_ignore_ascii_case(n));
        let attaches = |e: &Entry, h: Option<&str>| match (&e.expected_helper, h) {
            (Some(x), Some(h)) => x.eq_ignore_ascii_case(h),
            (None, None) => true,
            _ => false,
        };
        let proto_ok = |e: &Entry| e.protocol.is_none_or(|x| x == p);
        let master: &'a str = match master_helper {
            Some(m) => m,
            None => {
                // The master is gone: the flow's own helper names the row that attached it,
                // or (no row attaches it) is taken as the master's.
                let h = flow_helper?;
                self.live()
                    .find(|e| attaches(e, Some(h)) && proto_ok(e))
                    .and_then(|e| e.kernel_names.first().map(String::as_str))
                    .unwrap_or(h)
            }
        };
        let mut rows = self.live().filter(|e| named(e, master));
        let (mut by_proto, mut first) = (None, None);
        for e in rows.by_ref() {
            if proto_ok(e) && attaches(e, flow_helper) {
                return Some((e, master));
            }
            if by_proto.is_none() && proto_ok(e) {
                by_proto = Some(e);
            }
            first.get_or_insert(e);
        }
        by_proto.or(first).map(|e| (e, master))
    }

    /// Whether a helper name is known at all (any row).
    pub fn knows(&self, name: &str) -> bool {
        self.entries
            .iter()
            .any(|e| e.kernel_names.iter().any(|n| n.eq_ignore_ascii_case(name)))
    }

    fn option_holds(&self, e: &Entry) -> bool {
        match &e.option {
            None => true,
            Some(o) => {
                let live = self
                    .param(&e.module, &o.param)
                    .unwrap_or(o.default.as_str());
                live == o.value
            }
        }
    }

    /// The control ports of a row: the table's plus the module's live `ports` parameter.
    pub fn control_ports(&self, e: &Entry) -> Vec<(u8, u16)> {
        let mut out = e.control.clone();
        if let Some(ports) = self.param(&e.module, "ports") {
            let protos: Vec<u8> = {
                let mut p: Vec<u8> = e.control.iter().map(|c| c.0).collect();
                p.dedup();
                p
            };
            for port in ports
                .split(',')
                .filter_map(|p| p.trim().parse::<u16>().ok())
            {
                for &pr in &protos {
                    if !out.contains(&(pr, port)) {
                        out.push((pr, port));
                    }
                }
            }
        }
        out
    }

    /// The options that widen helpers, with their live values, for reports:
    /// (module, param, live value or `None` when unreadable, the value that widens).
    pub fn widening_options(&self) -> Vec<(String, String, Option<String>, String)> {
        let mut out: Vec<(String, String, Option<String>, String)> = Vec::new();
        for e in &self.entries {
            let Some(o) = &e.option else { continue };
            // The widening row is the one whose shape is freer than the default row's.
            if o.value == o.default {
                continue;
            }
            if out.iter().any(|x| x.0 == e.module && x.1 == o.param) {
                continue;
            }
            out.push((
                e.module.clone(),
                o.param.clone(),
                self.param(&e.module, &o.param).map(str::to_string),
                o.value.clone(),
            ));
        }
        out
    }
}

/// Booleans in /sys/module read `Y`/`N`; the table speaks `1`/`0`.
fn normalise(v: &str) -> String {
    match v {
        "Y" | "y" => "1".to_string(),
        "N" | "n" => "0".to_string(),
        other => other.to_string(),
    }
}

fn parse_control(s: &str) -> Option<(u8, u16)> {
    let (p, port) = s.split_once('/')?;
    Some((proto::parse(p)?, port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_table_has_every_helper_of_the_authors_table() {
        let t = HelperTable::embedded().unwrap();
        for h in [
            "amanda",
            "ftp",
            "h323",
            "h323 q931",
            "irc",
            "netbios_ns",
            "pptp",
            "sane",
            "sip",
            "tftp",
            "snmp",
        ] {
            assert!(t.entries().iter().any(|e| e.helper == h), "missing {h}");
        }
        let kinds: Vec<_> = t
            .entries()
            .iter()
            .filter(|e| e.helper == "sip")
            .map(|e| e.kind.as_str())
            .collect();
        assert!(kinds.contains(&"rtp_rtcp") && kinds.contains(&"signalling"));
    }

    #[test]
    fn option_rows_follow_live_parameters() {
        let t = HelperTable::embedded().unwrap();
        // Kernel defaults: loose=0 → ftp source Fixed.
        assert_eq!(t.lookup("ftp", 0).unwrap().shape.src, Level::Fixed);
        let mut p = Params::new();
        p.insert(("nf_conntrack_ftp".into(), "loose".into()), "1".into());
        p.insert(
            ("nf_conntrack_sip".into(), "sip_direct_media".into()),
            "0".into(),
        );
        let t = t.with_params(p);
        assert_eq!(t.lookup("ftp", 0).unwrap().shape.src, Level::Full);
        let media = t.lookup("sip", 1).unwrap();
        assert_eq!(media.kind, "rtp_rtcp");
        assert_eq!(media.shape.dst, Level::InCmd);
        let sig = t.lookup("sip", 0).unwrap();
        assert_eq!(sig.kind, "signalling");
        assert_eq!(sig.protocol, None);
        assert_eq!(sig.shape.dst, Level::Fixed);
    }

    #[test]
    fn h323_names_map_to_their_kinds() {
        let t = HelperTable::embedded().unwrap();
        assert_eq!(t.lookup("RAS", 0).unwrap().helper, "h323 q931");
        assert_eq!(t.lookup("H.245", 0).unwrap().helper, "h323");
        assert_eq!(t.lookup("netbios-ns", 0).unwrap().shape.src, Level::Iface);
        assert!(t.lookup("nosuch", 0).is_none());
    }

    #[test]
    fn related_flows_find_their_row_without_a_class() {
        let t = HelperTable::embedded().unwrap();
        let (e, m) = t.lookup_flow(Some("ftp"), None, proto::TCP).unwrap();
        assert_eq!((e.label().as_str(), m), ("ftp data (loose=0)", "ftp"));
        // sip: a flow carrying the sip helper is signalling, one without it media.
        let (e, _) = t.lookup_flow(Some("sip"), Some("sip"), proto::UDP).unwrap();
        assert_eq!(e.kind, "signalling");
        let (e, _) = t.lookup_flow(Some("sip"), None, proto::UDP).unwrap();
        assert_eq!(e.kind, "rtp_rtcp");
        // The master is gone: the flow's H.245 helper names the Q.931 row that attached it.
        let (e, m) = t.lookup_flow(None, Some("H.245"), proto::TCP).unwrap();
        assert_eq!(
            (e.helper.as_str(), e.kind.as_str(), m),
            ("h323", "h245", "Q.931")
        );
        assert!(t.lookup_flow(None, None, proto::TCP).is_none());
        let j = t
            .lookup_flow(Some("ftp"), None, proto::TCP)
            .unwrap()
            .0
            .to_json();
        assert_eq!(j["row"], "ftp data (loose=0)");
        assert_eq!(j["dst"], "in_cmd");
        assert_eq!(j["option"]["param"], "loose");
    }

    #[test]
    fn live_ports_parameter_adds_control_ports() {
        let mut p = Params::new();
        p.insert(
            ("nf_conntrack_ftp".into(), "ports".into()),
            "21,2121".into(),
        );
        let t = HelperTable::embedded().unwrap().with_params(p);
        let e = t.lookup("ftp", 0).unwrap().clone();
        assert_eq!(t.control_ports(&e), vec![(6, 21), (6, 2121)]);
    }

    #[test]
    fn bad_tables_are_errors_not_panics() {
        assert!(HelperTable::parse("expectation = 3", "x").is_err());
        let bad_level = EMBEDDED.replacen("src = \"fixed\"", "src = \"sometimes\"", 1);
        assert!(HelperTable::parse(&bad_level, "x").is_err());
        let bad_proto = EMBEDDED.replacen("protocol = \"tcp\"", "protocol = \"carrier\"", 1);
        assert!(HelperTable::parse(&bad_proto, "x").is_err());
    }

    #[test]
    fn sys_parameters_are_read_and_normalised() {
        let dir = std::env::temp_dir().join(format!("ctscope-rk-sys-{}", std::process::id()));
        let p = dir.join("module/nf_conntrack_ftp/parameters");
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("loose"), "Y\n").unwrap();
        std::fs::write(p.join("ports"), "21\n").unwrap();
        let t = HelperTable::embedded().unwrap();
        let params = t.read_params(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        let t = t.with_params(params);
        assert_eq!(t.param("nf_conntrack_ftp", "loose"), Some("1"));
        assert_eq!(t.lookup("ftp", 0).unwrap().shape.src, Level::Full);
        let w = t.widening_options();
        assert!(w
            .iter()
            .any(|o| o.1 == "loose" && o.2.as_deref() == Some("1") && o.3 == "1"));
    }
}
