//! Proves the namespace lab itself: real FTP through the real ftp helper leaves an
//! expectation behind in the server namespace (checked with conntrack(8), independent of
//! ctscope), and the lab cleans up after itself.

mod common;
use common::lab::{privileged, Lab};

#[test]
fn ftp_passive_transfer_through_helper() {
    if !privileged("ftp_passive_transfer_through_helper") {
        return;
    }
    let dir = tempdir();
    std::fs::write(
        format!("{dir}/hello.txt"),
        b"hello through the ftp helper\n",
    )
    .unwrap();
    let mut lab = Lab::new("smoke", 9);
    lab.ftp_helper();
    lab.ftp_server(&dir);
    let got = lab.ftp_get(false, true, "hello.txt", 0);
    assert_eq!(got, b"hello through the ftp helper\n");
    let got6 = lab.ftp_get(true, false, "hello.txt", 0);
    assert_eq!(got6, b"hello through the ftp helper\n");
    // The control connection carried the ftp helper.
    let out = lab.sh_ok(
        &lab.srv,
        "conntrack -L -p tcp --dport 21 -o extended 2>/dev/null",
    );
    assert!(out.contains("helper=ftp"), "{out}");
    let name = lab.srv.clone();
    drop(lab);
    let list = common::lab::run_ok(&["ip", "netns", "list"]);
    assert!(!list.contains(&name), "namespace left behind: {list}");
}

fn tempdir() -> String {
    let d = std::env::temp_dir().join(format!("ctscope-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.to_string_lossy().into_owned()
}
