//! Every command in README.md's fenced ```sh blocks, run as the README shows it.
//!
//! The README is the front door: a command there that fails is a bug. This test extracts
//! each command line and looks it up in `PLAN`, which says how to run it: as `nobody` where
//! the README says no root is needed, in a throwaway network namespace where it touches the
//! kernel (the host's own table is never changed), in tmux for dashboards (the first screen
//! must draw and `q` must quit), or skipped with the reason written next to it (installs,
//! remote hosts, the test suite itself). A README command missing from `PLAN`, or a `PLAN`
//! entry no longer in the README, fails the test, so the two cannot drift apart.
//!
//! The harness gives each command the world the README assumes, and nothing else:
//! - a scratch directory as the working directory, holding `target/release/ctscope` (a copy
//!   of the binary under test, so `setcap` acts on a regular file of our own) and the
//!   repository's `assets/`;
//! - `ctscope` on `PATH` (the same binary), and `sudo` as a shim that runs its arguments
//!   (the test already runs as root);
//! - `HOME` in the scratch directory, so completions land there;
//! - the namespace the README calls `fw` is created by the test under a unique name, and
//!   the example PID `4242` is replaced by a process living in that namespace.

mod common;
use common::lab::{privileged, run_ok};
use common::tmux::Tmux;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Who runs a command and where.
#[derive(Clone, Copy, Debug)]
enum Who {
    /// `nobody` (uid 65534), no capabilities: the README promises no root.
    Nobody,
    /// root in the host namespace: only commands that touch no table, or that enter the
    /// test's namespace themselves with `--netns`.
    Root,
    /// root inside the test's namespace (`ip netns exec`), for commands that read or change
    /// "this host's" table.
    RootInNs,
}

/// What to do with one README command.
#[derive(Clone, Copy, Debug)]
enum Plan {
    /// Run it; it must exit with `code` (and not print a panic).
    Run { who: Who, code: i32 },
    /// It streams until stopped: it must still be running, silently, after 2 s.
    Streams { who: Who },
    /// A dashboard: in tmux, the first screen must show `shows`, then `q` quits.
    Dashboard { who: Who, shows: &'static str },
    /// Not run, for this reason.
    Skip(&'static str),
}

/// Every README command (as written, trailing comment included) and how it is checked.
const PLAN: &[(&str, Plan)] = &[
    (
        "cargo build --release",
        Plan::Skip("a build, not a use: this test runs the binary `cargo test` just built from the same source"),
    ),
    (
        "./target/release/ctscope --replay assets/lab-helpers.ctrec --fast",
        // --fast lands on the whole lab at once: the replay has ended by the first look.
        Plan::Dashboard { who: Who::Nobody, shows: "REPLAY ENDED" },
    ),
    (
        "sudo apt-get install -y conntrack iptables nftables iproute2 && cargo build --release",
        Plan::Skip("installs system packages (.ci/run installs the same list)"),
    ),
    (
        "sudo ./target/release/ctscope                 # the dashboard on this host's table",
        Plan::Dashboard { who: Who::RootInNs, shows: "flows" },
    ),
    (
        "sudo bash .ci/run",
        Plan::Skip("the whole test suite, this test included"),
    ),
    (
        "sudo setcap cap_net_admin+ep ./target/release/ctscope",
        Plan::Run { who: Who::Root, code: 0 },
    ),
    (
        "sudo ctscope --netns fw list --expect",
        Plan::Run { who: Who::Root, code: 0 },
    ),
    (
        "sudo ctscope --netns /proc/4242/ns/net watch --ndjson",
        Plan::Streams { who: Who::Root },
    ),
    (
        "ctscope man > ctscope.1 && man -l ctscope.1",
        Plan::Run { who: Who::Nobody, code: 0 },
    ),
    (
        "ctscope completions bash | sudo tee /usr/share/bash-completion/completions/ctscope >/dev/null",
        Plan::Skip("installs into /usr/share (the zsh and fish lines below run the same generator)"),
    ),
    (
        "mkdir -p ~/.zfunc && ctscope completions zsh > ~/.zfunc/_ctscope",
        Plan::Run { who: Who::Nobody, code: 0 },
    ),
    (
        "mkdir -p ~/.config/fish/completions && ctscope completions fish > ~/.config/fish/completions/ctscope.fish",
        Plan::Run { who: Who::Nobody, code: 0 },
    ),
    (
        "RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target x86_64-unknown-linux-gnu",
        Plan::Skip("a second full release build; .ci/package.sh builds this static binary and runs it"),
    ),
    (
        "scp target/x86_64-unknown-linux-gnu/release/ctscope admin@fw1:/tmp/ctscope",
        Plan::Skip("needs a remote host"),
    ),
    (
        "ssh -t admin@fw1 sudo /tmp/ctscope --netns fw list --expect",
        Plan::Skip("needs a remote host (the same command runs locally above)"),
    ),
    (
        "sudo ctscope --netns fw list -p tcp --dport 3306",
        Plan::Run { who: Who::Root, code: 0 },
    ),
    (
        "sudo ctscope --netns fw delete -F 'proto=tcp and dport=3306' --dry-run",
        Plan::Run { who: Who::Root, code: 0 },
    ),
    (
        "sudo ctscope --netns fw delete --dport 3306 --yes",
        Plan::Run { who: Who::Root, code: 0 },
    ),
    (
        "sudo ctscope --netns fw flush --expect --helper ftp --yes",
        Plan::Run { who: Who::Root, code: 0 },
    ),
    (
        "sudo ctscope --netns fw count --json",
        Plan::Run { who: Who::Root, code: 0 },
    ),
    (
        "sudo ctscope --netns fw top --by src --limit 20",
        Plan::Run { who: Who::Root, code: 0 },
    ),
    (
        "sudo ctscope --netns fw flush --stale --dry-run",
        Plan::Run { who: Who::Root, code: 0 },
    ),
    (
        "sudo ctscope --netns fw exporter --listen 127.0.0.1:9469",
        Plan::Streams { who: Who::Root },
    ),
    (
        "sudo ctscope --netns fw list --prom -",
        Plan::Run { who: Who::Root, code: 0 },
    ),
    (
        "sudo ctscope --netns fw audit --prom /var/lib/prometheus/node-exporter",
        Plan::Skip("writes into this host's node_exporter directory; tests/exporter_kernel.rs runs it into a scratch textfile directory that a real node_exporter reads"),
    ),
    (
        "vector --config /usr/share/ctscope/exporter/vector.toml",
        Plan::Skip("Vector is not installed or run in our tests; tests/exporter_kernel.rs runs the command of its exec source"),
    ),
];

/// The command lines of every ```sh block, in order (`\` continuations joined).
fn readme_commands(readme: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in readme.lines() {
        let t = line.trim_end();
        if !in_sh {
            in_sh = t == "```sh";
            continue;
        }
        if t.starts_with("```") {
            in_sh = false;
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            pending.push_str(head);
            continue;
        }
        pending.push_str(t);
        let cmd = std::mem::take(&mut pending);
        if !cmd.trim().is_empty() && !cmd.trim_start().starts_with('#') {
            out.push(cmd);
        }
    }
    out
}

#[test]
fn every_readme_sh_block_is_parsed() {
    let md = "text\n```sh\na \\\n  b\n# comment\n\nc\n```\n```\nnot sh\n```\n";
    assert_eq!(readme_commands(md), vec!["a   b", "c"]);
}

/// The scratch world the README's commands expect (see the module comment).
struct World {
    dir: PathBuf,
    ns: String,
    sleeper: Child,
}

impl World {
    fn new() -> World {
        let dir = std::env::temp_dir().join(format!("ctscope-readme-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["target/release", "bin", "home"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let bin = dir.join("target/release/ctscope");
        std::fs::copy(env!("CARGO_BIN_EXE_ctscope"), &bin).unwrap();
        std::os::unix::fs::symlink(repo.join("assets"), dir.join("assets")).unwrap();
        std::os::unix::fs::symlink(&bin, dir.join("bin/ctscope")).unwrap();
        std::fs::write(dir.join("bin/sudo"), "#!/bin/sh\nexec \"$@\"\n").unwrap();
        // nobody must reach the binary, the recording and its own HOME.
        for (p, mode) in [
            (dir.clone(), 0o755),
            (dir.join("target"), 0o755),
            (dir.join("target/release"), 0o755),
            (dir.join("bin"), 0o755),
            (dir.join("bin/sudo"), 0o755),
            (bin.clone(), 0o755),
        ] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        // The clone is the user's own directory: `ctscope man > ctscope.1` writes there.
        for d in [dir.clone(), dir.join("home")] {
            run_ok(&["chown", "65534:65534", d.to_str().unwrap()]);
        }

        let ns = format!("ctscope-readme-{}", std::process::id());
        run_ok(&["ip", "netns", "add", &ns]);
        run_ok(&["ip", "netns", "exec", &ns, "ip", "link", "set", "lo", "up"]);
        // Something for list/delete to find: one MariaDB flow, as the examples expect.
        let out = Command::new("ip")
            .args(["netns", "exec", &ns, "conntrack", "-I", "-p", "tcp"])
            .args(["-s", "10.9.0.2", "-d", "10.9.0.1", "--sport", "40000"])
            .args(["--dport", "3306", "--state", "ESTABLISHED", "-t", "300"])
            .output()
            .expect("conntrack");
        assert!(
            out.status.success(),
            "conntrack -I: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let sleeper = Command::new("ip")
            .args(["netns", "exec", &ns, "sleep", "300"])
            .stdin(Stdio::null())
            .spawn()
            .expect("sleep in the namespace");
        World { dir, ns, sleeper }
    }

    /// The README command with the names only this run knows filled in.
    fn concrete(&self, cmd: &str) -> String {
        // `ip netns exec` execs `sleep` in place, so the child's pid is the sleeper's.
        cmd.replace("--netns fw ", &format!("--netns {} ", self.ns))
            .replace("/proc/4242/", &format!("/proc/{}/", self.sleeper.id()))
    }

    /// `sh -c CMD` as `who`, in the scratch world; an argv for Command or tmux.
    fn argv(&self, who: Who, cmd: &str) -> Vec<String> {
        let path = format!(
            "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            self.dir.join("bin").display()
        );
        let env = [
            "env".to_owned(),
            format!("PATH={path}"),
            format!("HOME={}", self.dir.join("home").display()),
            "TERM=xterm-256color".to_owned(),
        ];
        let mut v: Vec<String> = match who {
            Who::Nobody => [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
            ]
            .map(String::from)
            .to_vec(),
            Who::Root => Vec::new(),
            Who::RootInNs => vec!["ip".into(), "netns".into(), "exec".into(), self.ns.clone()],
        };
        v.extend(env);
        v.extend(["sh".into(), "-c".into(), self.concrete(cmd)]);
        v
    }

    fn run(&self, who: Who, cmd: &str) -> Output {
        let a = self.argv(who, cmd);
        Command::new("timeout")
            .arg("60")
            .args(&a)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .expect("run")
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = self.sleeper.kill();
        let _ = self.sleeper.wait();
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.ns])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn check(world: &World, cmd: &str, plan: Plan) -> Result<(), String> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match plan {
        Plan::Skip(_) => Ok(()),
        Plan::Run { who, code } => {
            let out = world.run(who, cmd);
            let err = text(&out.stderr);
            if out.status.code() != Some(code) || err.contains("panicked") {
                return Err(format!(
                    "exit {:?} (want {code}) as {who:?}\nstdout: {}\nstderr: {err}",
                    out.status.code(),
                    text(&out.stdout)
                ));
            }
            Ok(())
        }
        Plan::Streams { who } => {
            // `timeout` signals its whole process group, so the ctscope behind `sh` and
            // `sudo` stops too; 124 means it was still running when stopped.
            let a = world.argv(who, cmd);
            let out = Command::new("timeout")
                .arg("2")
                .args(&a)
                .current_dir(&world.dir)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| e.to_string())?;
            let err = text(&out.stderr);
            if out.status.code() != Some(124) || !err.is_empty() {
                return Err(format!(
                    "did not keep streaming silently ({:?})\nstderr: {err}",
                    out.status
                ));
            }
            Ok(())
        }
        Plan::Dashboard { who, shows } => {
            let a = world.argv(who, cmd);
            let line = std::iter::once(format!(
                "cd {} &&",
                shell_quote(world.dir.to_str().unwrap())
            ))
            .chain(a.iter().map(|s| shell_quote(s)))
            .collect::<Vec<_>>()
            .join(" ");
            // `; echo EXITED $?` leaves the exit status on the screen after `q`.
            // A tmux server per dashboard: reusing one socket races the previous server's exit.
            static SEQ: AtomicU32 = AtomicU32::new(0);
            let tag = format!("readme{}", SEQ.fetch_add(1, Ordering::SeqCst));
            let tm = Tmux::start(&tag, &format!("{line}; echo EXITED $?; sleep 30"), 120, 40);
            tm.wait_for(&format!("a first screen showing '{shows}'"), |s| {
                s.contains(shows) && !s.contains("EXITED")
            });
            tm.keys(&["q"]);
            let s = tm.wait_for("the dashboard to quit on q", |s| s.contains("EXITED"));
            if !s.contains("EXITED 0") {
                return Err(format!("q did not quit cleanly:\n{s}"));
            }
            Ok(())
        }
    }
}

/// Every README command runs as the README says, or is skipped for its stated reason.
#[test]
fn every_readme_command_works() {
    if !privileged("every_readme_command_works") {
        return;
    }
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let cmds = readme_commands(&readme);
    let unplanned: Vec<&String> = cmds
        .iter()
        .filter(|c| !PLAN.iter().any(|(p, _)| p == c))
        .collect();
    assert!(
        unplanned.is_empty(),
        "README commands with no entry in PLAN (say how to run or why to skip): {unplanned:#?}"
    );
    let stale: Vec<&str> = PLAN
        .iter()
        .map(|(p, _)| *p)
        .filter(|p| !cmds.iter().any(|c| c == p))
        .collect();
    assert!(
        stale.is_empty(),
        "PLAN entries no longer in the README: {stale:#?}"
    );

    let world = World::new();
    let mut failures = Vec::new();
    let mut ran = 0;
    for cmd in &cmds {
        let plan = PLAN.iter().find(|(p, _)| p == cmd).unwrap().1;
        if let Plan::Skip(why) = plan {
            println!("skip: {cmd}  ({why})");
            continue;
        }
        ran += 1;
        println!("run: {cmd}");
        if let Err(e) = check(&world, cmd, plan) {
            failures.push(format!("`{cmd}`: {e}"));
        }
    }
    println!("ran {ran} README commands");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
