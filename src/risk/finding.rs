//! Findings: what ctscope reports as risky, each with the fix in the netfilter authors'
//! terms (seeds 000 and 002: narrow RELATED by helper and addresses, assign helpers with the
//! CT target, disable automatic assignment, anti-spoofing).
//!
//! Owns the finding vocabulary shared by live assessment (`assess`) and `ctscope audit`.
//! It must not detect anything itself.

use std::fmt;

use serde::Serialize;

/// What kind of risk a finding is. JSON spells these in snake_case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// An expectation or RELATED flow toward a sensitive port.
    SensitivePort,
    /// Toward (or from) an address that is not an endpoint of the master connection.
    ThirdPartyAddress,
    /// Toward a port where a standing local socket listens.
    ListeningSocket,
    /// A helper attached to traffic on a port it does not normally serve.
    UnusualHelperPort,
    /// More expectations from one master than the helper normally creates.
    ExpectationBurst,
    /// The live expectation is freer than the authors' table says the helper allows.
    TableMismatch,
    /// A RELATED accept rule not narrowed by helper (audit).
    UnrestrictedRelated,
    /// Automatic helper assignment by port is on (audit).
    AutomaticHelperAssignment,
    /// No reverse-path filtering on an interface, and no raw-table anti-spoofing (audit).
    NoReversePathFilter,
}

impl FindingKind {
    /// Every kind, for outputs that list zeros too (`audit --prom`).
    pub const ALL: [FindingKind; 9] = [
        FindingKind::SensitivePort,
        FindingKind::ThirdPartyAddress,
        FindingKind::ListeningSocket,
        FindingKind::UnusualHelperPort,
        FindingKind::ExpectationBurst,
        FindingKind::TableMismatch,
        FindingKind::UnrestrictedRelated,
        FindingKind::AutomaticHelperAssignment,
        FindingKind::NoReversePathFilter,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FindingKind::SensitivePort => "sensitive_port",
            FindingKind::ThirdPartyAddress => "third_party_address",
            FindingKind::ListeningSocket => "listening_socket",
            FindingKind::UnusualHelperPort => "unusual_helper_port",
            FindingKind::ExpectationBurst => "expectation_burst",
            FindingKind::TableMismatch => "table_mismatch",
            FindingKind::UnrestrictedRelated => "unrestricted_related",
            FindingKind::AutomaticHelperAssignment => "automatic_helper_assignment",
            FindingKind::NoReversePathFilter => "no_reverse_path_filter",
        }
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One reported risk: what, where (in `detail`), and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub detail: String,
    pub fix: String,
}

impl Finding {
    pub fn new(kind: FindingKind, detail: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            kind,
            detail: detail.into(),
            fix: fix.into(),
        }
    }
}

/// Findings as the JSON array the output module embeds: `[{"kind","detail","fix"}, …]`.
pub fn to_json(findings: &[Finding]) -> serde_json::Value {
    serde_json::to_value(findings).unwrap_or_else(|_| serde_json::Value::Array(Vec::new()))
}

/// The authors' RELATED rule for a helper, given its narrowing matches, in the FORWARD
/// chain as in their examples (use INPUT/OUTPUT for the host's own traffic).
pub fn related_rule(restrict: &str) -> String {
    related_rule_in("FORWARD", restrict)
}

/// The authors' RELATED rule for a helper in a given chain.
pub fn related_rule_in(chain: &str, restrict: &str) -> String {
    format!("iptables -A {chain} -m conntrack --ctstate RELATED {restrict} -j ACCEPT")
}

/// The generic narrowing when the helper is unknown.
pub fn generic_restrict(helper: &str) -> String {
    format!("-m helper --helper {helper} -d $SERVER")
}

/// Explicit assignment with the CT target instead of matching a port everywhere.
pub fn ct_assignment(helper: &str, proto: &str, port: u16) -> String {
    format!("iptables -t raw -A PREROUTING -p {proto} --dport {port} -d $SERVER -j CT --helper {helper}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_serialise_as_snake_case() {
        let f = Finding::new(FindingKind::ListeningSocket, "d", "f");
        assert_eq!(
            to_json(&[f]),
            serde_json::json!([{"kind":"listening_socket","detail":"d","fix":"f"}])
        );
        for k in [
            FindingKind::SensitivePort,
            FindingKind::ThirdPartyAddress,
            FindingKind::UnusualHelperPort,
            FindingKind::ExpectationBurst,
            FindingKind::TableMismatch,
            FindingKind::UnrestrictedRelated,
            FindingKind::AutomaticHelperAssignment,
            FindingKind::NoReversePathFilter,
        ] {
            assert_eq!(serde_json::to_value(k).unwrap(), k.name());
        }
    }
}
