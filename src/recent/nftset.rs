//! nftables sets and maps that hold state the ruleset adds at run time: every set or map
//! with the `dynamic` or `timeout` flag, or that a rule fills with `add`/`update @set`
//! (nft 1.0.6's JSON leaves `dynamic` out of `flags`, so the rules are consulted too).
//!
//! Parses `nft -j list ruleset`; `nft delete element` and `nft flush set` remove state.
//! Commands run in the calling thread's namespace (callers use `netns::run_in`).
//! Elements are kept as nft prints them: values are data, never interpreted here.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::RecentError;

/// One element: its key (and, in a map, the value it maps to), timeout and time left.
#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    pub key: String,
    /// A map's data (`: VALUE`); `None` in a set.
    pub data: Option<String>,
    /// Seconds the element was given (its own or the set's default).
    pub timeout: Option<f64>,
    /// Seconds left before the kernel removes it.
    pub expires: Option<f64>,
}

/// One set or map of the ruleset.
#[derive(Debug, Clone, PartialEq)]
pub struct Set {
    pub family: String,
    pub table: String,
    pub name: String,
    /// `set` or `map`.
    pub kind: &'static str,
    /// Key type as nft prints it (`ipv4_addr`, `ipv4_addr . inet_service`, …).
    pub key_type: String,
    pub flags: Vec<String>,
    /// The default timeout, seconds.
    pub timeout: Option<f64>,
    /// Filled by a rule (`add`/`update @name`), as opposed to only by the admin.
    pub filled_by_rules: bool,
    pub elements: Vec<Element>,
}

impl Set {
    /// `family table name`, the address nft commands take.
    pub fn qualified(&self) -> String {
        format!("{} {} {}", self.family, self.table, self.name)
    }
}

/// Seconds from an nft JSON time: a number of seconds (nft ≥ 0.9 prints whole seconds, newer
/// ones may print fractions).
fn secs(v: Option<&Value>) -> Option<f64> {
    v.and_then(Value::as_f64)
}

/// An nft JSON value as nft's own text would show it, compactly.
pub fn render(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".into(),
        Value::Array(a) => a.iter().map(render).collect::<Vec<_>>().join(" . "),
        Value::Object(o) => {
            if let Some(c) = o.get("concat") {
                return render(c);
            }
            if let Some(p) = o.get("prefix") {
                return format!("{}/{}", render(&p["addr"]), render(&p["len"]));
            }
            if let Some(r) = o.get("range") {
                return format!("{}-{}", render(&r[0]), render(&r[1]));
            }
            if let Some(s) = o.get("set") {
                return format!("{{ {} }}", render(s));
            }
            if let Some(p) = o.get("payload") {
                return format!("{} {}", render(&p["protocol"]), render(&p["field"]));
            }
            if let Some(m) = o.get("meta") {
                return format!("meta {}", render(&m["key"]));
            }
            serde_json::to_string(v).unwrap_or_default()
        }
    }
}

fn element(v: &Value, default_timeout: Option<f64>) -> Element {
    // Plain `"1.2.3.4"`, `{"elem": {"val": …, "timeout": …, "expires": …}}`, or in a map
    // `[key, data]` where key may be such an object.
    let (k, data) = match v.as_array() {
        Some(pair) if pair.len() == 2 => (&pair[0], Some(render(&pair[1]))),
        _ => (v, None),
    };
    match k.get("elem") {
        Some(e) => Element {
            key: render(&e["val"]),
            data,
            timeout: secs(e.get("timeout")).or(default_timeout),
            expires: secs(e.get("expires")),
        },
        None => Element {
            key: render(k),
            data,
            timeout: default_timeout,
            expires: None,
        },
    }
}

/// Parse `nft -j list ruleset` (or `list sets`): the stateful sets and maps, with their
/// elements. A ruleset without any gives an empty list.
pub fn parse(json: &str) -> Result<Vec<Set>, RecentError> {
    let root: Value = serde_json::from_str(json)
        .map_err(|e| RecentError::Nft(format!("'nft -j' printed JSON ctscope cannot read: {e}")))?;
    let items = root
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or_else(|| RecentError::Nft("'nft -j' printed no 'nftables' array".into()))?;
    let filled = filled_sets(items);
    let mut out = Vec::new();
    for item in items {
        let (kind, s) = match (item.get("set"), item.get("map")) {
            (Some(s), _) => ("set", s),
            (_, Some(m)) => ("map", m),
            _ => continue,
        };
        let str_of = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let flags: Vec<String> = match s.get("flags") {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect(),
            Some(Value::String(f)) => vec![f.clone()],
            _ => Vec::new(),
        };
        let (family, table, name) = (str_of("family"), str_of("table"), str_of("name"));
        let filled_by_rules = filled.contains(&(family.clone(), table.clone(), name.clone()));
        let stateful = filled_by_rules || flags.iter().any(|f| f == "dynamic" || f == "timeout");
        if !stateful {
            continue;
        }
        let timeout = secs(s.get("timeout"));
        let elements = s
            .get("elem")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|e| element(e, timeout)).collect())
            .unwrap_or_default();
        out.push(Set {
            family,
            table,
            name,
            kind,
            key_type: s.get("type").map(render).unwrap_or_default(),
            flags,
            timeout,
            filled_by_rules,
            elements,
        });
    }
    Ok(out)
}

/// (family, table, set) of every set a rule adds to or updates.
fn filled_sets(items: &[Value]) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for item in items {
        let Some(r) = item.get("rule") else { continue };
        let fam = r["family"].as_str().unwrap_or("").to_owned();
        let table = r["table"].as_str().unwrap_or("").to_owned();
        for e in r
            .get("expr")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let op = e.get("set").or_else(|| e.get("map"));
            if let Some(name) = op
                .and_then(|o| o.get("set").or_else(|| o.get("map")))
                .and_then(Value::as_str)
            {
                out.insert((
                    fam.clone(),
                    table.clone(),
                    name.trim_start_matches('@').to_owned(),
                ));
            }
        }
    }
    out
}

/// Run `nft ARGS`, stdout on success.
pub fn nft(args: &[&str]) -> Result<String, RecentError> {
    crate::privilege::pass_net_admin_to_children();
    let out = Command::new("nft")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            RecentError::Nft(if e.kind() == std::io::ErrorKind::NotFound {
                "'nft' is not installed".into()
            } else {
                format!("'nft': {e}")
            })
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(RecentError::Nft(format!(
            "'nft {}' failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Remove one element (`nft delete element FAMILY TABLE SET { KEY }`).
pub fn delete(set: &Set, key: &str) -> Result<(), RecentError> {
    nft(&[
        "delete",
        "element",
        &set.family,
        &set.table,
        &set.name,
        &format!("{{ {key} }}"),
    ])
    .map(drop)
}

/// Empty a set or map (`nft flush set|map FAMILY TABLE NAME`).
pub fn flush(set: &Set) -> Result<(), RecentError> {
    nft(&["flush", set.kind, &set.family, &set.table, &set.name]).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    // `nft -j list ruleset` from nft 1.0.6 on Linux 6.18 (the knock scheme of the kernel test
    // with one element added by hand: `nft add element inet knock k1 { 10.0.0.5 timeout 8s }`).
    const RULESET: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "knock", "handle": 1}}, {"set": {"family": "inet", "name": "k1", "table": "knock", "type": "ipv4_addr", "handle": 2, "size": 65535, "flags": ["timeout"], "timeout": 10, "elem": [{"elem": {"val": "10.0.0.5", "timeout": 8, "expires": 7}}]}}, {"set": {"family": "inet", "name": "k2", "table": "knock", "type": "ipv4_addr", "handle": 3, "size": 65535}}, {"set": {"family": "inet", "name": "plain", "table": "knock", "type": "ipv4_addr", "handle": 4, "elem": ["1.2.3.4"]}}, {"chain": {"family": "inet", "table": "knock", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}, {"rule": {"family": "inet", "table": "knock", "chain": "input", "handle": 6, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 7}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@k1"}}, {"set": {"op": "update", "elem": {"elem": {"val": {"payload": {"protocol": "ip", "field": "saddr"}}, "timeout": 5}}, "set": "@k2"}}, {"accept": null}]}}]}"#;

    #[test]
    fn stateful_sets_only_with_elements() {
        let sets = parse(RULESET).unwrap();
        let names: Vec<_> = sets.iter().map(|s| s.name.as_str()).collect();
        // k2 has no flag in this JSON but a rule fills it; `plain` is static.
        assert_eq!(names, ["k1", "k2"]);
        let k1 = &sets[0];
        assert_eq!(k1.timeout, Some(10.0));
        assert_eq!(
            k1.elements,
            vec![Element {
                key: "10.0.0.5".into(),
                data: None,
                timeout: Some(8.0),
                expires: Some(7.0)
            }]
        );
        assert!(sets[1].filled_by_rules);
        assert_eq!(sets[0].qualified(), "inet knock k1");
    }

    #[test]
    fn empty_and_bad_rulesets() {
        assert!(parse(r#"{"nftables": [{"metainfo": {}}]}"#)
            .unwrap()
            .is_empty());
        assert!(matches!(parse("not json"), Err(RecentError::Nft(_))));
        assert!(matches!(parse("{}"), Err(RecentError::Nft(_))));
        // Odd shapes never panic.
        for odd in [
            r#"{"nftables": [{"set": 3}, {"map": {"elem": [1, [2], {"elem": 4}]}}, {"rule": {"expr": 5}}]}"#,
            r#"{"nftables": [{"set": {"flags": "timeout", "elem": [[{"elem": {"val": {"concat": ["a", 1]}}}, "x"]]}}]}"#,
        ] {
            let _ = parse(odd);
        }
        let m = parse(r#"{"nftables": [{"map": {"family": "ip", "table": "t", "name": "m", "flags": "timeout", "elem": [[{"elem": {"val": {"concat": ["10.0.0.1", 22]}, "expires": 3}}, "accept"]]}}]}"#).unwrap();
        assert_eq!(m[0].kind, "map");
        assert_eq!(m[0].elements[0].key, "10.0.0.1 . 22");
        assert_eq!(m[0].elements[0].data.as_deref(), Some("accept"));
    }
}
