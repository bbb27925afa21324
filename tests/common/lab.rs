//! A throwaway two-host lab in network namespaces, for tests that need the real kernel.
//!
//! `srv` and `cli` are namespaces joined by a veth pair created directly inside them (no
//! interface ever appears in the host namespace, so parallel tests cannot collide). The
//! conntrack table under test is the server namespace's. Everything is torn down on Drop,
//! including background servers. Traffic only ever flows between the two namespaces.
//!
//! Privilege policy (`privileged`): as root the test runs; without root it prints one
//! `skipped:` line and returns, except under `CI=true`, where skipping is a failure.

use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Whether a privileged test may run. Prints the skip reason, or panics under CI.
pub fn privileged(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: needs root, and CI=true forbids skipping privileged tests");
    }
    println!("skipped: {test} needs root (network namespaces and ctnetlink)");
    false
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Two namespaces, `srv` (addresses `.1`) and `cli` (addresses `.2`), one veth between.
pub struct Lab {
    pub srv: String,
    pub cli: String,
    pub srv4: String,
    pub cli4: String,
    pub srv6: String,
    pub cli6: String,
    children: Vec<Child>,
}

impl Lab {
    /// Build the lab. `tag` names the test (namespaces are `ctscope-{tag}-{pid}-{n}-srv/cli`);
    /// `subnet` picks 10.213.{subnet}.0/24 and fd00:213:{subnet}::/64.
    pub fn new(tag: &str, subnet: u8) -> Lab {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let base = format!("ctscope-{tag}-{}-{n}", std::process::id());
        let lab = Lab {
            srv: format!("{base}-srv"),
            cli: format!("{base}-cli"),
            srv4: format!("10.213.{subnet}.1"),
            cli4: format!("10.213.{subnet}.2"),
            srv6: format!("fd00:213:{subnet}::1"),
            cli6: format!("fd00:213:{subnet}::2"),
            children: Vec::new(),
        };
        run_ok(&["ip", "netns", "add", &lab.srv]);
        run_ok(&["ip", "netns", "add", &lab.cli]);
        run_ok(&[
            "ip", "link", "add", "ct0", "netns", &lab.srv, "type", "veth", "peer", "name", "ct1",
            "netns", &lab.cli,
        ]);
        for (ns, dev, v4, v6) in [
            (&lab.srv, "ct0", &lab.srv4, &lab.srv6),
            (&lab.cli, "ct1", &lab.cli4, &lab.cli6),
        ] {
            lab.sh_ok(
                ns,
                &format!(
                    "ip link set lo up && ip link set {dev} up && \
                     ip addr add {v4}/24 dev {dev} && ip -6 addr add {v6}/64 dev {dev} nodad"
                ),
            );
        }
        lab
    }

    /// `sh -c CMD` inside namespace `ns`.
    pub fn sh(&self, ns: &str, cmd: &str) -> Output {
        Command::new("ip")
            .args(["netns", "exec", ns, "sh", "-c", cmd])
            .stdin(Stdio::null())
            .output()
            .expect("run ip netns exec")
    }

    /// Like `sh`, but panics with the command's stderr if it fails; returns stdout.
    pub fn sh_ok(&self, ns: &str, cmd: &str) -> String {
        let out = self.sh(ns, cmd);
        assert!(
            out.status.success(),
            "in {ns}: `{cmd}` failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Load entries into `ns`'s table with `conntrack -R`: `lines` holds one `-I …` command
    /// per line (250k load in about 4 s). Panics if conntrack fails.
    pub fn restore(&self, ns: &str, lines: &str) {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let file = std::env::temp_dir().join(format!("ctscope-restore-{}-{n}", std::process::id()));
        std::fs::write(&file, lines).expect("write conntrack -R file");
        let out = self.sh(ns, &format!("conntrack -R {}", file.display()));
        let _ = std::fs::remove_file(&file);
        assert!(
            out.status.success(),
            "conntrack -R in {ns} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Start a background process in `ns`; it is killed when the lab is dropped.
    pub fn spawn(&mut self, ns: &str, cmd: &str) {
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "sh", "-c", &format!("exec {cmd}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn background process");
        self.children.push(child);
    }

    /// Wait until something listens on TCP `port` in `ns` (ss), up to 10 s.
    pub fn wait_listen(&self, ns: &str, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let out = self.sh(ns, &format!("ss -Hltn 'sport = :{port}'"));
            if !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nothing listens on {port} in {ns} after 10 s");
    }

    /// Attach the FTP helper to port 21 in the server namespace with the raw-table CT
    /// target (the explicit assignment the netfilter authors recommend), IPv4 and IPv6.
    pub fn ftp_helper(&self) {
        for ipt in ["iptables", "ip6tables"] {
            self.sh_ok(
                &self.srv,
                &format!("{ipt} -t raw -A PREROUTING -p tcp --dport 21 -j CT --helper ftp"),
            );
        }
    }

    /// Start pyftpdlib (Debian's, under /usr/bin/python3) on port 21 of both server
    /// addresses, serving `dir` read-only to anonymous users.
    pub fn ftp_server(&mut self, dir: &str) {
        let srv = self.srv.clone();
        for addr in [self.srv4.clone(), self.srv6.clone()] {
            self.spawn(
                &srv,
                &format!("/usr/bin/python3 -m pyftpdlib -i {addr} -p 21 -d {dir}"),
            );
        }
        self.wait_listen(&srv, 21);
        // Both listeners: wait until two sockets are bound.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let out = self.sh(&srv, "ss -Hltn 'sport = :21' | wc -l");
            if String::from_utf8_lossy(&out.stdout).trim() == "2" {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("pyftpdlib did not bind both addresses");
    }

    /// Fetch `file` over FTP from the client namespace with Python's ftplib, passive or
    /// active, IPv4 or IPv6. Returns the bytes received. `hold_secs` keeps the control
    /// connection open afterwards so the master flow stays ESTABLISHED for inspection.
    pub fn ftp_get(&self, v6: bool, passive: bool, file: &str, hold_secs: u32) -> Vec<u8> {
        let host = if v6 { &self.srv6 } else { &self.srv4 };
        let script = format!(
            "import ftplib,sys,time\n\
             f=ftplib.FTP()\n\
             f.connect('{host}',21,timeout=10)\n\
             f.login()\n\
             f.set_pasv({pasv})\n\
             buf=bytearray()\n\
             f.retrbinary('RETR {file}', buf.extend)\n\
             sys.stdout.buffer.write(bytes(buf))\n\
             sys.stdout.flush()\n\
             time.sleep({hold_secs})\n\
             f.quit()\n",
            pasv = if passive { "True" } else { "False" },
        );
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.cli,
                "/usr/bin/python3",
                "-c",
                &script,
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run ftp client");
        assert!(
            out.status.success(),
            "ftp client failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.srv, &self.cli] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Run a host command and panic with its stderr if it fails.
pub fn run_ok(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", args[0]));
    assert!(
        out.status.success(),
        "`{}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
