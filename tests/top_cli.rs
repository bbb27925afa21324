//! `ctscope top`, the stale terms and `flush --stale` on the bundled recording (no root):
//! groups add up to the table `list` shows, each group's filter lists exactly its flows, the
//! stale verdicts name their reasons, and the usage errors (exit 2) of terms a command
//! cannot evaluate.

use std::process::{Command, Output};

use serde_json::Value;

const REC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/lab-helpers.ctrec");

fn ctscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ctscope"))
        .args(["--replay", REC])
        .args(args)
        .output()
        .expect("run ctscope")
}

fn stdout_ok(args: &[&str]) -> String {
    let out = ctscope(args);
    assert!(
        out.status.success(),
        "ctscope {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn groups_add_up_and_each_filter_lists_its_group() {
    let flows = stdout_ok(&["list"]).lines().count() as u64;
    assert!(flows > 0);
    for by in [
        "src", "dst", "dport", "src-net", "zone", "mark", "helper", "state", "nat",
    ] {
        let doc: Value = serde_json::from_str(&stdout_ok(&[
            "top", "--by", by, "--limit", "1000", "--json",
        ]))
        .unwrap();
        assert_eq!(doc["by"], by);
        assert_eq!(doc["flows"], flows, "{by}");
        assert!(doc["max"].is_null(), "a recording has no nf_conntrack_max");
        let rows = doc["rows"].as_array().unwrap();
        assert_eq!(
            rows.iter()
                .map(|r| r["flows"].as_u64().unwrap())
                .sum::<u64>(),
            flows,
            "{by}"
        );
        for r in rows {
            let Some(filter) = r["filter"].as_str() else {
                continue;
            };
            let listed = stdout_ok(&["list", "--filter", filter]).lines().count() as u64;
            assert_eq!(listed, r["flows"].as_u64().unwrap(), "{by}: '{filter}'");
        }
    }
    let text = stdout_ok(&["top", "--by", "dport"]);
    assert!(
        text.starts_with(&format!("top by dport: {flows} flows in ")),
        "{text}"
    );
    assert!(text.lines().nth(1).unwrap().starts_with("GROUP"), "{text}");
}

/// The rows of a short `--limit` are ranked in the pass, not sorted from every group: they
/// must be the head of the long list, in every order and grouping.
#[test]
fn a_short_limit_prints_the_head_of_the_long_list() {
    let rows = |by: &str, sort: &str, limit: usize| -> Vec<Value> {
        let doc: Value = serde_json::from_str(&stdout_ok(&[
            "top",
            "--by",
            by,
            "--sort",
            sort,
            "--limit",
            &limit.to_string(),
            "--json",
        ]))
        .unwrap();
        doc["rows"].as_array().unwrap().clone()
    };
    for by in ["src", "dport", "state"] {
        for sort in ["count", "unreplied", "new", "destroyed", "bytes", "key"] {
            let all = rows(by, sort, 1000);
            assert!(all.len() > 3, "{by}: {}", all.len());
            for limit in [1, 2, 3] {
                assert_eq!(rows(by, sort, limit), all[..limit], "{by} {sort} {limit}");
            }
        }
    }
}

#[test]
fn stale_terms_and_the_stale_plan_name_their_reasons() {
    // The recording's SIP registration left a PERMANENT expectation.
    let listed = stdout_ok(&["list", "--expect", "--filter", "stale=permanent"]);
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.contains("PERMANENT"), "{listed}");
    let none = stdout_ok(&["list", "--expect", "--filter", "stale=master_gone"]);
    assert_eq!(none.lines().count(), 0, "{none}");
    let out = ctscope(&["flush", "--stale", "--helper", "sip", "--dry-run"]);
    let plan = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{plan}");
    assert!(
        plan.contains("stale helper state of helper 'sip' (reasons: permanent 1)"),
        "{plan}"
    );
    assert!(plan.contains("[stale: permanent]"), "{plan}");
    let out = ctscope(&["flush", "--stale", "--helper", "ftp", "--dry-run"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to remove"));
}

#[test]
fn terms_a_command_cannot_evaluate_are_usage_errors() {
    for (args, says) in [
        (
            &["watch", "--filter", "stale"][..],
            "'stale' judges a whole table",
        ),
        (
            &["top", "--filter", "stale"][..],
            "'stale' is not available here",
        ),
        (
            &["list", "--filter", "event=new"][..],
            "'event' selects watch lines",
        ),
        (
            &["delete", "--filter", "event=destroy"][..],
            "'event' selects watch lines",
        ),
        (
            &["flush", "--stale", "--dport", "21"][..],
            "takes only --helper",
        ),
        (&["top", "--by", "bogus"][..], "unknown key 'bogus'"),
        (
            &["list", "--filter", "stale=soon"][..],
            "unknown stale reason 'soon'",
        ),
        (
            &["list", "--filter", "age>later"][..],
            "invalid age 'later'",
        ),
    ] {
        let out = ctscope(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
