//! ctscope's verdict at the end of a text line: `freedom=src:fixed,sport:full,dst:fixed,dport:in_cmd`
//! and, when there are any, `finding=sensitive_port,third_party`, on RELATED flows and
//! expectations (the entries the risk module judged), so a grep user of `list`/`watch`
//! sees the same verdict as the dashboard. Reads the view's risk fields; never judges.

use serde_json::Value;

/// The suffix (with its leading space) for a view's `freedom` and `findings`, or empty
/// when the entry was not judged.
pub fn suffix(freedom: Option<&Value>, findings: Option<&Value>) -> String {
    let Some(Value::Object(f)) = freedom else {
        return String::new();
    };
    let mut s = String::from(" freedom=");
    let mut first = true;
    for key in ["src", "sport", "dst", "dport"] {
        if let Some(level) = f.get(key).and_then(Value::as_str) {
            if !first {
                s.push(',');
            }
            first = false;
            s.push_str(key);
            s.push(':');
            s.push_str(level);
        }
    }
    let kinds: Vec<&str> = findings
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.get("kind").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    if !kinds.is_empty() {
        s.push_str(" finding=");
        s.push_str(&kinds.join(","));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn suffix_lists_freedom_in_order_and_finding_kinds() {
        let f = json!({"src":"fixed","sport":"full","dst":"fixed","dport":"in_cmd"});
        let k = json!([{"kind":"sensitive_port","detail":"x","fix":"y"},{"kind":"third_party"}]);
        assert_eq!(
            suffix(Some(&f), Some(&k)),
            " freedom=src:fixed,sport:full,dst:fixed,dport:in_cmd finding=sensitive_port,third_party"
        );
        assert_eq!(
            suffix(Some(&f), Some(&json!([]))),
            " freedom=src:fixed,sport:full,dst:fixed,dport:in_cmd"
        );
        assert_eq!(suffix(None, None), "");
    }
}
