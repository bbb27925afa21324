//! A private tmux server for tests that drive the real `ctscope` binary in a terminal:
//! start a command at a fixed size, send keys, read the screen (plain or with ANSI
//! colours), wait for a condition with a deadline. The server is killed on drop, and its
//! socket file removed (tmux leaves it behind).

use std::process::Command;
use std::time::{Duration, Instant};

/// One tmux server of our own (`-L SOCKET`) with one session named `name`.
pub struct Tmux {
    socket: String,
    name: String,
    /// The server's socket file, as tmux reports it.
    path: String,
}

impl Tmux {
    /// Start `cmd` in a new `w`×`h` session; `tag` keeps parallel tests' servers apart.
    pub fn start(tag: &str, cmd: &str, w: u16, h: u16) -> Tmux {
        let mut t = Tmux {
            socket: format!("ctscope-{tag}-{}", std::process::id()),
            name: tag.to_owned(),
            path: String::new(),
        };
        let (w, h) = (w.to_string(), h.to_string());
        t.run(&["new-session", "-d", "-s", tag, "-x", &w, "-y", &h, cmd]);
        t.path = t
            .run(&["display-message", "-p", "#{socket_path}"])
            .trim()
            .to_owned();
        t
    }

    /// Run a tmux command against this server; panics with tmux's stderr on failure.
    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("run tmux");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `send-keys` (tmux key names such as `Enter`, `Escape`, `q`).
    pub fn keys(&self, keys: &[&str]) {
        let mut a = vec!["send-keys", "-t", self.name.as_str()];
        a.extend_from_slice(keys);
        self.run(&a);
    }

    /// Type literal text (`send-keys -l`).
    pub fn type_text(&self, s: &str) {
        self.run(&["send-keys", "-t", &self.name, "-l", s]);
    }

    /// The screen as plain text.
    pub fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", &self.name])
    }

    /// The screen with ANSI colour escapes.
    pub fn screen_ansi(&self) -> String {
        self.run(&["capture-pane", "-p", "-e", "-t", &self.name])
    }

    /// Poll the screen until `pred` holds (20 s deadline); returns that screen.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
        // Only a socket of this server's own name: never a directory or another's file.
        if self.path.ends_with(&self.socket) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Whether tmux is installed.
pub fn have_tmux() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}
