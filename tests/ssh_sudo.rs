//! `sudo ctscope flush --yes` from inside an SSH session spares that session's flow, under
//! a real `sudo` with Debian's default sudoers (`Defaults env_reset`, which drops
//! `SSH_CONNECTION`): a real sshd runs in the lab's server namespace, the test logs in as
//! root from the client namespace with a throwaway key, and runs ctscope under sudo there.
//! Without a session (no sshd among the ancestors), every flow to the namespace's sshd
//! is spared unless `--include-own-ssh` is given.
//!
//! Root only; needs openssh-server and sudo (in `.ci/run`'s list). Everything runs in the
//! lab's namespaces; the throwaway keys and config live in a temporary directory.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::lab::{privileged, Lab};

const SUBNET: u8 = 18;

/// sshd, its keys and config in a temporary directory; removed on drop.
struct Sshd {
    dir: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_sshd(lab: &mut Lab) -> Sshd {
    // One directory per lab: the tests of this file run in parallel.
    let dir = std::env::temp_dir().join(format!("{}-sshd", lab.srv));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.display();
    for (name, _) in [("host", ()), ("client", ())] {
        common::lab::run_ok(&[
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-f",
            &format!("{d}/{name}"),
        ]);
    }
    std::fs::copy(dir.join("client.pub"), dir.join("authorized_keys")).unwrap();
    std::fs::write(
        dir.join("sshd_config"),
        format!(
            "ListenAddress {}\nPort 22\nHostKey {d}/host\nAuthorizedKeysFile {d}/authorized_keys\n\
             PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPidFile none\n",
            lab.srv4
        ),
    )
    .unwrap();
    // Connection tracking runs in a namespace only once a rule needs it.
    lab.sh_ok(
        &lab.srv,
        "iptables -A INPUT -m conntrack --ctstate NEW,ESTABLISHED -j ACCEPT",
    );
    // The privilege-separation directory Debian's tmpfiles would create at boot.
    std::fs::create_dir_all("/run/sshd").unwrap();
    let srv = lab.srv.clone();
    lab.spawn(&srv, &format!("/usr/sbin/sshd -D -e -f {d}/sshd_config"));
    lab.wait_listen(&srv, 22);
    Sshd { dir }
}

/// `ssh root@srv CMD` from the client namespace; returns stdout (panics on failure).
fn ssh(lab: &Lab, sshd: &Sshd, cmd: &str) -> String {
    lab.sh_ok(
        &lab.cli,
        &format!(
            "ssh -q -i {}/client -o BatchMode=yes -o StrictHostKeyChecking=no \
             -o UserKnownHostsFile=/dev/null root@{} '{cmd}'",
            sshd.dir.display(),
            lab.srv4
        ),
    )
}

fn other_flows(lab: &Lab) {
    let mut lines = String::new();
    for p in 1..=3 {
        lines.push_str(&format!(
            "-I -p tcp -s {} -d {} --sport {} --dport 80 --state ESTABLISHED -u SEEN_REPLY -t 300\n",
            lab.cli4,
            lab.srv4,
            41000 + p
        ));
    }
    lines.push_str(&format!(
        "-I -p udp -s {} -d {} --sport 5353 --dport 53 -t 60\n",
        lab.cli4, lab.srv4
    ));
    lab.restore(&lab.srv, &lines);
}

fn table(lab: &Lab) -> String {
    lab.sh_ok(&lab.srv, "conntrack -L 2>/dev/null")
}

#[test]
fn sudo_flush_spares_the_admins_own_ssh_session() {
    if !privileged("sudo_flush_spares_the_admins_own_ssh_session") {
        return;
    }
    let sudoers = std::fs::read_to_string("/etc/sudoers").expect("sudo is installed");
    assert!(sudoers.contains("env_reset"), "Debian's default sudoers");
    let mut lab = Lab::new("ssh", SUBNET);
    let sshd = start_sshd(&mut lab);
    other_flows(&lab);
    let bin = env!("CARGO_BIN_EXE_ctscope");
    let out = ssh(
        &lab,
        &sshd,
        &format!(
            "echo \"session=$SSH_CONNECTION\"; sudo -n env | grep -c ^SSH_CONNECTION= ; \
             sudo -n {bin} flush --yes 2>&1; echo rc=$?"
        ),
    );
    // The session as sshd set it, and sudo dropped it.
    let session = out
        .lines()
        .find_map(|l| l.strip_prefix("session="))
        .expect("SSH_CONNECTION in the session");
    let w: Vec<&str> = session.split_whitespace().collect();
    assert_eq!(w.len(), 4, "{session}");
    assert_eq!(
        out.lines().nth(1),
        Some("0"),
        "sudo's env_reset drops SSH_CONNECTION:\n{out}"
    );
    // ctscope found the session anyway and left it out.
    let spared = format!("tcp {}:{} -> {}:{}", w[0], w[1], w[2], w[3]);
    assert!(
        out.contains(&format!("left out (your SSH session): {spared}")),
        "{out}"
    );
    assert!(out.contains("rc=0"), "{out}");
    // The kernel agrees: the session's flow is there, every other flow is gone.
    let t = table(&lab);
    assert!(
        t.contains(&format!("sport={} dport=22", w[1])),
        "the SSH flow survives:\n{t}"
    );
    assert!(
        !t.contains(" dport=80 ") && !t.contains(" dport=53 "),
        "{t}"
    );
}

#[test]
fn without_a_session_every_flow_to_the_local_sshd_is_spared() {
    if !privileged("without_a_session_every_flow_to_the_local_sshd_is_spared") {
        return;
    }
    if ctscope::ssh::session().is_some() {
        println!("skipped: this test process itself runs inside an SSH session");
        return;
    }
    let mut lab = Lab::new("sshfb", SUBNET + 1);
    let sshd = start_sshd(&mut lab);
    // Someone's session, held open in the background.
    let cli = lab.cli.clone();
    lab.spawn(
        &cli,
        &format!(
            "ssh -q -i {}/client -o BatchMode=yes -o StrictHostKeyChecking=no \
             -o UserKnownHostsFile=/dev/null root@{} sleep 60",
            sshd.dir.display(),
            lab.srv4
        ),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !table(&lab).contains("dport=22") {
        assert!(Instant::now() < deadline, "no SSH flow after 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    other_flows(&lab);
    let bin = env!("CARGO_BIN_EXE_ctscope");
    // No sshd among our ancestors and no SSH_CONNECTION: the session cannot be told.
    let out = lab.sh(
        &lab.srv,
        &format!("env -u SSH_CONNECTION sudo -n {bin} flush --yes 2>&1"),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("left out: 1 flow to the local sshd") && text.contains("--include-own-ssh"),
        "{text}"
    );
    let t = table(&lab);
    assert!(t.contains("dport=22"), "{t}");
    assert!(!t.contains(" dport=80 "), "{t}");
    // Asked explicitly, they go too.
    let out = lab.sh(
        &lab.srv,
        &format!("env -u SSH_CONNECTION sudo -n {bin} flush --yes --include-own-ssh 2>&1"),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    // A kernel flush of everything, the SSH flow included (with tcp_loose=1 the kernel
    // may pick the idle session up again from its next packet, so the table is not
    // checked here).
    assert!(!text.contains("left out"), "{text}");
    assert!(text.contains("flushed all flows"), "{text}");
}
