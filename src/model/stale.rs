//! Stale helper state: which expectations and flows a "flush stale helpers" removes, and
//! why. Every verdict comes from what the kernel holds now (the entry, its master in the
//! store, its timeout against the protocol's timeout), never from history.
//!
//! | reason | entry | kernel state it reads |
//! |---|---|---|
//! | `master_gone` | expectation | no flow with its master tuple and zone |
//! | `master_closing` | expectation | master is TCP FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT or CLOSE |
//! | `expiring` | expectation | used most of its helper's timeout ([`Thresholds::expect_used`]); a live non-permanent expectation has produced no RELATED flow (the kernel unlinks it when it does) |
//! | `permanent` | expectation | `NF_CT_EXPECT_PERMANENT` |
//! | `orphan_idle` | RELATED flow | its master is gone and it has been idle [`Thresholds::related_idle`] |
//! | `master_idle` | flow with a helper | idle for [`Thresholds::master_idle`] |
//!
//! "Idle" is the protocol's timeout for the flow's state minus what is left of it: the
//! kernel re-arms the timeout on every packet, so the difference is the time since the
//! last one ([`StateTimeouts`] holds the namespace's sysctls). A flow under a custom
//! timeout policy (nft `ct timeout`) or TCP's shorter `timeout_unacknowledged` reads
//! idler than it is; one re-armed beyond its state's timeout (the sip helper gives a
//! registration's flow the registration's expiry) reads as not idle at all. This module is pure: no sockets, no clock of its own.

use crate::model::expect::flags;
use crate::model::flow::status;
use crate::model::store::FlowKey;
use crate::model::tuple::proto;
use crate::model::{Expectation, Flow, HelperId, Store};

/// Why an entry is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    MasterGone,
    MasterClosing,
    Expiring,
    Permanent,
    OrphanIdle,
    MasterIdle,
}

impl Reason {
    pub const ALL: [Reason; 6] = [
        Reason::MasterGone,
        Reason::MasterClosing,
        Reason::Expiring,
        Reason::Permanent,
        Reason::OrphanIdle,
        Reason::MasterIdle,
    ];

    /// The word `stale=REASON` takes and reports print.
    pub fn name(self) -> &'static str {
        match self {
            Reason::MasterGone => "master_gone",
            Reason::MasterClosing => "master_closing",
            Reason::Expiring => "expiring",
            Reason::Permanent => "permanent",
            Reason::OrphanIdle => "orphan_idle",
            Reason::MasterIdle => "master_idle",
        }
    }

    /// A reason by name (`-` and `_` alike, any case).
    pub fn parse(s: &str) -> Option<Reason> {
        let s = s.to_ascii_lowercase().replace('-', "_");
        Reason::ALL.into_iter().find(|r| r.name() == s)
    }

    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of reasons (bit n = `Reason::ALL[n]`); empty means "not stale".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Reasons(pub u8);

impl Reasons {
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn has(self, r: Reason) -> bool {
        self.0 & r.bit() != 0
    }

    fn add(&mut self, r: Reason) {
        self.0 |= r.bit();
    }

    pub fn iter(self) -> impl Iterator<Item = Reason> {
        Reason::ALL.into_iter().filter(move |r| self.has(*r))
    }

    /// `master_gone,expiring`
    pub fn names(self) -> String {
        self.iter().map(Reason::name).collect::<Vec<_>>().join(",")
    }
}

/// Where staleness starts. Defaults: an expectation that used 80% of its timeout, a
/// RELATED orphan idle for 60 s, a helper-assigned master idle for an hour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Share (0–1) of its helper's expectation timeout an expectation has used.
    pub expect_used: f64,
    /// Seconds an orphaned RELATED flow has been idle.
    pub related_idle: u32,
    /// Seconds a flow with a helper has been idle.
    pub master_idle: u32,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            expect_used: 0.8,
            related_idle: 60,
            master_idle: 3600,
        }
    }
}

/// TCP state numbers (enum tcp_conntrack) after a FIN or RST.
const TCP_CLOSING: std::ops::RangeInclusive<u8> = 4..=8;

/// The kernel's per-state timeouts (seconds) of one namespace, from its sysctls; kernel
/// defaults where a sysctl cannot be read (`nf_conntrack_proto_tcp.c` `tcp_timeouts`,
/// `nf_conntrack_proto_udp.c`, `_icmp.c`, `_generic.c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateTimeouts {
    /// Indexed by TCP state number (NONE, SYN_SENT, …, SYN_SENT2).
    pub tcp: [u32; 10],
    pub udp: u32,
    pub udp_stream: u32,
    pub icmp: u32,
    pub generic: u32,
}

impl Default for StateTimeouts {
    fn default() -> StateTimeouts {
        StateTimeouts {
            tcp: [120, 120, 60, 432_000, 120, 60, 30, 120, 10, 120],
            udp: 30,
            udp_stream: 120,
            icmp: 30,
            generic: 600,
        }
    }
}

/// The sysctl (under `net/netfilter/`) of each TCP state's timeout.
const TCP_SYSCTLS: [(usize, &str); 8] = [
    (1, "nf_conntrack_tcp_timeout_syn_sent"),
    (2, "nf_conntrack_tcp_timeout_syn_recv"),
    (3, "nf_conntrack_tcp_timeout_established"),
    (4, "nf_conntrack_tcp_timeout_fin_wait"),
    (5, "nf_conntrack_tcp_timeout_close_wait"),
    (6, "nf_conntrack_tcp_timeout_last_ack"),
    (7, "nf_conntrack_tcp_timeout_time_wait"),
    (8, "nf_conntrack_tcp_timeout_close"),
];

impl StateTimeouts {
    /// Read the timeouts through `read` (a sysctl path under `/proc/sys/`, e.g.
    /// `net/netfilter/nf_conntrack_udp_timeout`, to its value).
    pub fn read(read: &dyn Fn(&str) -> Option<String>) -> StateTimeouts {
        let mut t = StateTimeouts::default();
        let get = |name: &str| -> Option<u32> {
            read(&format!("net/netfilter/{name}")).and_then(|v| v.trim().parse().ok())
        };
        for (i, name) in TCP_SYSCTLS {
            if let Some(v) = get(name) {
                t.tcp[i] = v;
            }
        }
        t.tcp[9] = t.tcp[1];
        if let Some(v) = get("nf_conntrack_udp_timeout") {
            t.udp = v;
        }
        if let Some(v) = get("nf_conntrack_udp_timeout_stream") {
            t.udp_stream = v;
        }
        if let Some(v) = get("nf_conntrack_icmp_timeout") {
            t.icmp = v;
        }
        if let Some(v) = get("nf_conntrack_generic_timeout") {
            t.generic = v;
        }
        t
    }

    /// The timeout the kernel re-arms `f` with on each packet in its current state.
    pub fn of(&self, f: &Flow) -> u32 {
        match f.orig.proto {
            proto::TCP => self
                .tcp
                .get(usize::from(f.state))
                .copied()
                .unwrap_or(self.tcp[3]),
            proto::UDP | proto::UDPLITE => {
                if f.has(status::SEEN_REPLY) && f.has(status::ASSURED) {
                    self.udp_stream
                } else {
                    self.udp
                }
            }
            proto::ICMP | proto::ICMPV6 => self.icmp,
            _ => self.generic,
        }
    }

    /// Seconds since `f`'s last packet, at store time `now`.
    pub fn idle(&self, f: &Flow, now: u32) -> u32 {
        self.of(f).saturating_sub(f.remaining(now))
    }
}

/// The expectation timeout a kernel helper sets (`struct nf_conntrack_expect_policy`
/// `.timeout`, seconds): ftp, tftp, sane, pptp 5 min; amanda, sip 3 min; h323 4 min; irc
/// `dcc_timeout` (300); netbios-ns and snmp their `timeout` module parameter (3, 30).
/// `None` for a helper this table does not know (a userspace cthelper).
pub fn expect_timeout(helper: HelperId) -> Option<u32> {
    Some(match helper.name()? {
        "ftp" | "tftp" | "sane" | "pptp" | "irc" => 300,
        "amanda" | "sip" => 180,
        "H.245" | "Q.931" | "RAS" => 240,
        "netbios-ns" => 3,
        "snmp" | "snmp_trap" => 30,
        _ => return None,
    })
}

/// Judges entries of one store.
#[derive(Debug, Clone, Copy)]
pub struct Staleness<'a> {
    pub store: &'a Store,
    pub thresholds: Thresholds,
    pub timeouts: StateTimeouts,
}

impl<'a> Staleness<'a> {
    pub fn new(store: &'a Store, thresholds: Thresholds, timeouts: StateTimeouts) -> Self {
        Staleness {
            store,
            thresholds,
            timeouts,
        }
    }

    /// Why expectation `e` is stale at store time `now` (empty: it is not).
    pub fn expectation(&self, e: &Expectation, now: u32) -> Reasons {
        let mut r = Reasons::default();
        match self.store.flow(&FlowKey::new(e.zone, e.master)) {
            None => r.add(Reason::MasterGone),
            Some(m) if m.orig.proto == proto::TCP && TCP_CLOSING.contains(&m.state) => {
                r.add(Reason::MasterClosing)
            }
            Some(_) => {}
        }
        if e.flags & flags::PERMANENT != 0 {
            r.add(Reason::Permanent);
        } else if let Some(full) = expect_timeout(e.helper) {
            // Compared in used seconds, with a margin for the share's binary rounding
            // (300 × 0.8 must be 240, not 239.99…).
            let used = f64::from(full.saturating_sub(e.remaining(now)));
            if used + 1e-6 >= f64::from(full) * self.thresholds.expect_used {
                r.add(Reason::Expiring);
            }
        }
        r
    }

    /// Why flow `f` is stale at store time `now` (empty: it is not).
    pub fn flow(&self, f: &Flow, now: u32) -> Reasons {
        let mut r = Reasons::default();
        if f.is_related() && f.master().is_some() {
            let key = FlowKey::of(f);
            if self.store.master_of(&key).is_none()
                && self.timeouts.idle(f, now) >= self.thresholds.related_idle
            {
                r.add(Reason::OrphanIdle);
            }
        }
        if !f.helper.is_none() && self.timeouts.idle(f, now) >= self.thresholds.master_idle {
            r.add(Reason::MasterIdle);
        }
        r
    }

    /// Stale entries per helper, for a header: `(helper, flows, expectations)`, helpers
    /// by name. RELATED flows count under their master's helper when the store knew the
    /// expectation that created them, else under "no helper" (`HelperId::NONE`).
    pub fn per_helper(&self, now: u32) -> Vec<(HelperId, usize, usize)> {
        let mut out: Vec<(HelperId, usize, usize)> = Vec::new();
        let mut bump = |h: HelperId, flow: bool| crate::model::helper::tally(&mut out, h, flow);
        for f in self.store.flows() {
            if !self.flow(f, now).is_empty() {
                let h = if f.helper.is_none() {
                    self.store
                        .expectation_of(&FlowKey::of(f))
                        .map_or(HelperId::NONE, |e| e.helper)
                } else {
                    f.helper
                };
                bump(h, true);
            }
        }
        for e in self.store.expectations() {
            if !self.expectation(e, now).is_empty() {
                bump(e.helper, false);
            }
        }
        out.sort_by_key(|(h, ..)| h.name().unwrap_or("").to_owned());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::helper;
    use crate::model::tuple::{Family, Tuple};
    use crate::model::{Event, Record};

    fn tuple(src: u8, sport: u16, dst: u8, dport: u16) -> Tuple {
        let mut t = Tuple {
            proto: proto::TCP,
            sport,
            dport,
            family: Family::Ipv4,
            ..Tuple::default()
        };
        t.src[..4].copy_from_slice(&[10, 0, 0, src]);
        t.dst[..4].copy_from_slice(&[10, 0, 0, dst]);
        t
    }

    fn ftp_master(state: u8) -> Flow {
        let mut f = Flow::new(tuple(1, 40000, 2, 21));
        f.state = state;
        f.helper = helper::intern("ftp");
        f.status = status::SEEN_REPLY | status::ASSURED | status::CONFIRMED;
        f.timeout = StateTimeouts::default().tcp[usize::from(state)];
        f
    }

    fn expectation(master: &Flow, dport: u16, timeout: u32) -> Expectation {
        let mask = Tuple {
            src: [0xff; 16],
            dst: [0xff; 16],
            dport: 0xffff,
            ..Tuple::default()
        };
        let mut e = Expectation::new(tuple(1, 0, 2, dport), mask, master.orig);
        e.helper = helper::intern("ftp");
        e.timeout = timeout;
        e
    }

    fn related(master: &Flow, sport: u16, dport: u16, timeout: u32) -> Flow {
        let mut f = Flow::new(tuple(1, sport, 2, dport));
        f.state = 3;
        f.status = status::EXPECTED | status::SEEN_REPLY | status::CONFIRMED;
        f.timeout = timeout;
        f.extra_mut().master = Some(master.orig);
        f
    }

    fn judge(store: &Store) -> Staleness<'_> {
        Staleness::new(store, Thresholds::default(), StateTimeouts::default())
    }

    #[test]
    fn expectation_reasons() {
        let mut store = Store::new();
        let live = ftp_master(3);
        let mut closing = ftp_master(7);
        closing.orig.sport = 40001;
        for f in [&live, &closing] {
            store.apply(Event::New, Record::Flow(f.clone()), 0);
        }
        let gone = {
            let mut m = ftp_master(3);
            m.orig.sport = 40002;
            m
        };
        let j = judge(&store);
        let fresh = expectation(&live, 50000, 300);
        assert!(
            j.expectation(&fresh, 0).is_empty(),
            "a fresh expectation of a live master"
        );
        assert!(j
            .expectation(&expectation(&closing, 50001, 300), 0)
            .has(Reason::MasterClosing));
        assert!(j
            .expectation(&expectation(&gone, 50002, 300), 0)
            .has(Reason::MasterGone));
        // 300 s policy, 80% used: 60 s or less left is expiring, measured at `now`.
        assert!(j
            .expectation(&expectation(&live, 50003, 60), 0)
            .has(Reason::Expiring));
        assert!(j.expectation(&expectation(&live, 50004, 61), 0).is_empty());
        assert!(j
            .expectation(&expectation(&live, 50004, 100), 40)
            .has(Reason::Expiring));
        let mut perm = expectation(&live, 50005, 10);
        perm.flags = flags::PERMANENT;
        let r = j.expectation(&perm, 0);
        assert!(
            r.has(Reason::Permanent) && !r.has(Reason::Expiring),
            "{}",
            r.names()
        );
    }

    #[test]
    fn orphan_related_flow_is_stale_only_when_idle() {
        let mut store = Store::new();
        let master = ftp_master(3);
        store.apply(Event::New, Record::Flow(master.clone()), 0);
        let est = StateTimeouts::default().tcp[3];
        // Idle 100 s (timeout re-armed 100 s ago) and busy (re-armed now).
        let idle = related(&master, 50000, 20, est - 100);
        let busy = related(&master, 50001, 20, est);
        for f in [&idle, &busy] {
            store.apply(Event::New, Record::Flow(f.clone()), 0);
        }
        assert!(judge(&store).flow(&idle, 0).is_empty(), "master alive");
        store.apply(Event::Destroy, Record::Flow(master.clone()), 1);
        let j = judge(&store);
        let idle_now = store.flow(&FlowKey::of(&idle)).unwrap();
        let busy_now = store.flow(&FlowKey::of(&busy)).unwrap();
        assert_eq!(j.flow(idle_now, 1).names(), "orphan_idle");
        assert!(
            j.flow(busy_now, 1).is_empty(),
            "a live transfer is left alone"
        );
        // After 60 s without packets the busy one is idle too.
        assert!(j.flow(busy_now, 60).has(Reason::OrphanIdle));
    }

    #[test]
    fn idle_helper_master() {
        let store = Store::new();
        let mut m = ftp_master(3);
        m.timeout -= 3599;
        assert!(judge(&store).flow(&m, 0).is_empty());
        m.timeout -= 1;
        assert_eq!(judge(&store).flow(&m, 0).names(), "master_idle");
        let th = Thresholds {
            master_idle: 10,
            ..Thresholds::default()
        };
        let mut fresh = ftp_master(3);
        fresh.timeout -= 10;
        assert!(!Staleness::new(&store, th, StateTimeouts::default())
            .flow(&fresh, 0)
            .is_empty());
    }

    #[test]
    fn per_helper_counts() {
        let mut store = Store::new();
        let mut closing = ftp_master(7);
        closing.orig.sport = 40001;
        store.apply(Event::New, Record::Flow(closing.clone()), 0);
        store.apply(
            Event::New,
            Record::Expect(expectation(&closing, 50000, 300)),
            0,
        );
        let counts = judge(&store).per_helper(0);
        assert_eq!(counts, vec![(helper::intern("ftp"), 0, 1)]);
    }

    #[test]
    fn timeouts_from_sysctls() {
        let t = StateTimeouts::read(&|p| match p {
            "net/netfilter/nf_conntrack_tcp_timeout_established" => Some("7200\n".into()),
            "net/netfilter/nf_conntrack_udp_timeout" => Some("bogus".into()),
            _ => None,
        });
        assert_eq!(t.tcp[3], 7200);
        assert_eq!(t.udp, StateTimeouts::default().udp);
    }

    #[test]
    fn reason_names_round_trip() {
        for r in Reason::ALL {
            assert_eq!(Reason::parse(r.name()), Some(r));
        }
        assert_eq!(Reason::parse("Master-Gone"), Some(Reason::MasterGone));
        assert_eq!(Reason::parse("x"), None);
    }
}
