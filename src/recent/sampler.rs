//! Recency snapshots on a timer, for a live engine source: lists and sets send no events,
//! so a thread takes a `Snapshot` inside the namespace at the cadence `changes::interval`
//! picks (every second for small state, up to every 10 s), encodes it as a recording's
//! `Recent` payload (`recorded::encode`) and hands it over. The engine's live source
//! delivers it in order with the flow events; the engine records and decodes it.
//!
//! The snapshot runs `iptables-save` and `nft -j` and walks procfs, which takes tens of
//! milliseconds: never on the engine thread, which must keep reading events.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;

use crate::netlink::{netns, Namespace};

/// A running sampler; dropping it stops the thread at once.
pub struct Sampler {
    rx: Receiver<Vec<u8>>,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    /// Start sampling `ns`; `name` is what the snapshots give as their `netns`.
    pub fn spawn(ns: Namespace, name: Option<String>) -> std::io::Result<Sampler> {
        let (tx, rx) = mpsc::channel();
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("ctscope-recent".into())
            .spawn(move || run(&ns, name.as_deref(), &tx, &stopped))?;
        Ok(Sampler {
            rx,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The next snapshot taken, if one is waiting.
    pub fn try_next(&self) -> Option<Vec<u8>> {
        self.rx.try_recv().ok()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        // Closing the stop channel wakes the thread from its wait; a snapshot in progress
        // finishes first (bounded by the nft and iptables-save runs).
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How long to wait after `snap`. A namespace with no list, no stateful set and no knock
/// rule has nothing to follow: each look would still run `iptables-save` and `nft` (tens
/// of milliseconds of CPU), which is most of an idle dashboard's cost. Such a namespace is
/// looked at every `IDLE` instead; state appears there only when an admin loads rules.
fn pace(snap: &super::Snapshot) -> std::time::Duration {
    let lists = snap.lists.as_ref().map_or(0, Vec::len);
    let sets = snap.sets.as_ref().map_or(0, Vec::len);
    if lists == 0 && sets == 0 && snap.machines.is_empty() {
        IDLE
    } else {
        super::changes::interval(snap)
    }
}

/// The cadence for a namespace with nothing to follow (see `pace`).
const IDLE: std::time::Duration = std::time::Duration::from_secs(30);

fn run(ns: &Namespace, name: Option<&str>, tx: &Sender<Vec<u8>>, stopped: &Receiver<()>) {
    loop {
        let snap = match netns::run_in(ns, || Ok(super::snapshot_here())) {
            Ok(s) => s,
            Err(e) => {
                // The namespace cannot be entered (it went away): record why, once, so a
                // replay says so instead of showing the last state as if it still held.
                let why = e.to_string();
                let s = super::Snapshot {
                    clock: super::Clock::read(),
                    lists: Err(why.clone()),
                    sets: Err(why),
                    machines: Vec::new(),
                    unreadable: Vec::new(),
                };
                let _ = tx.send(super::recorded::encode(&s, name));
                return;
            }
        };
        if tx.send(super::recorded::encode(&snap, name)).is_err() {
            return;
        }
        let wait = pace(&snap);
        match stopped.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}
