//! Removing recency state: one address from an xt_recent list or nft set, or the whole
//! list, as `actions::Plan` targets (`Target::ListDelete`, `Target::ListFlush`) so the
//! dashboard shows them in the one confirmation and the engine runs them like any plan;
//! and the one place that performs them (`run`, used by the engine and by `ctscope recent
//! delete/flush`).
//!
//! The safety rule of every action holds here too: the admin's own SSH address (the
//! session's client; with no session known, every address with a live flow to a local
//! sshd) is left out of a plan unless the user includes it, since removing it from a knock
//! list can lock the admin out. A flush that would remove it becomes one delete per other
//! address. Planning is pure (`ListScope` holds what it was planned from); `run` writes
//! procfs or runs nft in the calling thread's namespace, `execute` enters the namespace.

use std::net::IpAddr;
use std::path::Path;

use crate::actions::{Context, Plan, Report, Target};
use crate::model::recent::ListRow;
use crate::model::Store;
use crate::netlink::{netns, Namespace};

use super::{nftset, procfs, Lang, RecentError, Snapshot};

/// A list to act on: an xt_recent list by name, or an nft set or map by its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListRef {
    Xt(String),
    Nft {
        family: String,
        table: String,
        name: String,
        /// `set` or `map`.
        kind: &'static str,
    },
}

impl ListRef {
    /// The list a screen's row shows, as the snapshot holds it; `None` if it is gone.
    pub fn of(s: &Snapshot, l: &ListRow) -> Option<ListRef> {
        match l.lang {
            Lang::Iptables => {
                let ls = s.lists.as_ref().ok()?;
                ls.iter()
                    .any(|x| x.name == l.name)
                    .then(|| ListRef::Xt(l.name.clone()))
            }
            Lang::Nft => {
                let set = s
                    .sets
                    .as_ref()
                    .ok()?
                    .iter()
                    .find(|x| format!("nft {}", x.qualified()) == l.place)?;
                Some(ListRef::of_set(set))
            }
        }
    }

    /// An nft set or map.
    pub fn of_set(set: &nftset::Set) -> ListRef {
        ListRef::Nft {
            family: set.family.clone(),
            table: set.table.clone(),
            name: set.name.clone(),
            kind: set.kind,
        }
    }

    /// `xt_recent list 'NAME'` or `nft set 'inet knock NAME'` (raw: escape to print).
    pub fn describe(&self) -> String {
        match self {
            ListRef::Xt(n) => format!("xt_recent list '{n}'"),
            ListRef::Nft {
                family,
                table,
                name,
                kind,
            } => format!("nft {kind} '{family} {table} {name}'"),
        }
    }

    fn set(&self) -> Option<nftset::Set> {
        match self {
            ListRef::Xt(_) => None,
            ListRef::Nft {
                family,
                table,
                name,
                kind,
            } => Some(nftset::Set {
                family: family.clone(),
                table: table.clone(),
                name: name.clone(),
                kind,
                key_type: String::new(),
                flags: Vec::new(),
                timeout: None,
                filled_by_rules: false,
                elements: Vec::new(),
            }),
        }
    }
}

/// What a list plan is made from: the list, the one address (`None`: flush), the
/// addresses it held when shown, and those that may be the admin's own SSH address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListScope {
    pub list: ListRef,
    pub addr: Option<IpAddr>,
    pub held: Vec<IpAddr>,
    /// Held addresses that are (or may be) the admin's SSH client.
    pub mine: Vec<IpAddr>,
}

impl ListScope {
    /// Plan from what was shown: `mine` is the SSH session's client address, or, with no
    /// session known, every source of a live flow to a local sshd in `store`.
    pub fn new(
        list: ListRef,
        addr: Option<IpAddr>,
        held: Vec<IpAddr>,
        store: &Store,
        ctx: &Context,
    ) -> ListScope {
        let held: Vec<IpAddr> = held.into_iter().map(|a| a.to_canonical()).collect();
        let addr = addr.map(|a| a.to_canonical());
        let mut mine: Vec<IpAddr> = match &ctx.ssh {
            Some(s) => vec![s.client.to_canonical()],
            None => store
                .flows()
                .filter(|f| ctx.sshd.iter().any(|l| l.matches(f)))
                .map(|f| f.orig.src_ip().to_canonical())
                .collect(),
        };
        mine.retain(|m| held.contains(m) || addr == Some(*m));
        mine.sort_unstable();
        mine.dedup();
        ListScope {
            list,
            addr,
            held,
            mine,
        }
    }
}

impl Plan {
    /// Remove `scope.addr` from the list, or flush it. The admin's own address is left out
    /// (`spared_addrs`) unless `include_ssh`: a delete of it plans nothing, a flush becomes
    /// one delete per other address held when shown.
    pub fn list(scope: ListScope, include_ssh: bool) -> Plan {
        let what = scope.list.describe();
        let spare = |a: &IpAddr| !include_ssh && scope.mine.contains(a);
        let mut plan = Plan::default();
        match scope.addr {
            Some(a) => {
                plan.what = format!("'{a}' from {what}");
                if spare(&a) {
                    plan.spared_addrs.push(a);
                } else {
                    plan.targets.push(Target::ListDelete {
                        list: scope.list.clone(),
                        addr: a,
                    });
                    plan.list_entries = 1;
                    plan.sample.push(format!("{a} in {what}"));
                }
            }
            None => {
                plan.what = format!("every entry of {what}");
                let spared: Vec<IpAddr> = scope.held.iter().copied().filter(spare).collect();
                if spared.is_empty() {
                    plan.targets.push(Target::ListFlush(scope.list.clone()));
                    plan.list_entries = scope.held.len();
                } else {
                    plan.warnings.push(format!(
                        "flushing {what} would remove your own SSH address: the other entries are removed one by one instead"
                    ));
                    for a in scope.held.iter().filter(|a| !spare(a)) {
                        plan.targets.push(Target::ListDelete {
                            list: scope.list.clone(),
                            addr: *a,
                        });
                        plan.list_entries += 1;
                    }
                    plan.what = format!("every entry of {what} except your SSH address");
                    plan.spared_addrs = spared;
                }
                plan.sample.extend(
                    scope
                        .held
                        .iter()
                        .filter(|a| !spare(a))
                        .take(5)
                        .map(|a| format!("{a} in {what}")),
                );
            }
        }
        plan.list = Some(Box::new(scope));
        plan
    }
}

/// Perform one list target in the calling thread's namespace (the code behind `ctscope
/// recent delete/flush`). Other targets are not this module's: `Ok(false)`.
pub fn run(t: &Target) -> Result<bool, RecentError> {
    let dir = Path::new(procfs::DIR);
    match t {
        Target::ListDelete { list, addr } => match list.set() {
            None => procfs::delete(dir, list_name(list), *addr),
            Some(s) => nftset::delete(&s, &addr.to_string()),
        },
        Target::ListFlush(list) => match list.set() {
            None => procfs::flush(dir, list_name(list)),
            Some(s) => nftset::flush(&s),
        },
        _ => return Ok(false),
    }
    .map(|()| true)
}

fn list_name(l: &ListRef) -> &str {
    match l {
        ListRef::Xt(n) => n,
        ListRef::Nft { name, .. } => name,
    }
}

/// Run a plan's list targets inside `ns` and report as any plan does: removed, already
/// gone (the address had left the list), refused (with the first errors).
pub fn execute(ns: &Namespace, plan: &Plan) -> Report {
    let targets: Vec<Target> = plan
        .targets
        .iter()
        .filter(|t| t.is_list())
        .cloned()
        .collect();
    let done = netns::run_in(ns, move || {
        Ok(targets
            .iter()
            .map(|t| run(t).map_err(|e| e.to_string()))
            .collect::<Vec<_>>())
    });
    let mut report = Report::default();
    let results = match done {
        Ok(r) => r,
        Err(e) => return Report::refused_all(plan, e.to_string()),
    };
    for (t, r) in plan.targets.iter().filter(|t| t.is_list()).zip(results) {
        match r {
            Ok(_) => {
                report.removed += match t {
                    Target::ListFlush(_) => plan.list_entries,
                    _ => 1,
                };
                if let Target::ListFlush(l) = t {
                    report
                        .flushed
                        .push(format!("{} ({})", l.describe(), plan.list_entries));
                }
            }
            Err(e) if e.contains("is not in list") => report.already_gone += 1,
            Err(e) => {
                report.refused += 1;
                report.permission |= e.contains("ermission denied") || e.contains("not permitted");
                if report.errors.len() < 3 && !report.errors.contains(&e) {
                    report.errors.push(e);
                }
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::SshSession;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn ctx(client: &str) -> Context {
        Context {
            ssh: Some(SshSession {
                client: ip(client),
                client_port: 50000,
                server: ip("10.0.0.1"),
                server_port: 22,
            }),
            ..Context::default()
        }
    }

    #[test]
    fn the_admins_own_address_is_spared_unless_included() {
        let store = Store::new();
        let list = ListRef::Xt("seenbackend".into());
        let held = vec![ip("10.0.0.5"), ip("10.0.0.9")];
        // Delete of the admin's own address: nothing planned until included.
        let s = ListScope::new(
            list.clone(),
            Some(ip("10.0.0.9")),
            held.clone(),
            &store,
            &ctx("10.0.0.9"),
        );
        let p = Plan::list(s.clone(), false);
        assert!(
            p.targets.is_empty() && p.spared_addrs == [ip("10.0.0.9")],
            "{p:?}"
        );
        let p = p.replan(
            &store,
            &Context {
                include_ssh: true,
                ..ctx("10.0.0.9")
            },
        );
        assert_eq!(
            p.targets,
            [Target::ListDelete {
                list: list.clone(),
                addr: ip("10.0.0.9")
            }]
        );
        // A flush holding it becomes deletes of the others; included, a flush.
        let s = ListScope::new(list.clone(), None, held.clone(), &store, &ctx("10.0.0.9"));
        let p = Plan::list(s.clone(), false);
        assert_eq!(
            p.targets,
            [Target::ListDelete {
                list: list.clone(),
                addr: ip("10.0.0.5")
            }]
        );
        assert_eq!(p.list_entries, 1);
        assert!(!p.warnings.is_empty());
        let p = Plan::list(s, true);
        assert_eq!(p.targets, [Target::ListFlush(list.clone())]);
        assert_eq!(p.list_entries, 2);
        // Someone else's session: nothing to spare.
        let s = ListScope::new(list.clone(), None, held, &store, &ctx("192.0.2.1"));
        assert!(s.mine.is_empty());
        assert_eq!(Plan::list(s, false).targets, [Target::ListFlush(list)]);
    }

    /// With no session known, every source of a live flow to a local sshd may be the
    /// admin: such an address in the list is spared too.
    #[test]
    fn with_no_session_known_sshd_clients_are_spared() {
        use crate::model::tuple::{proto, Family};
        use crate::model::{Event, Record};
        use crate::model::{Flow, Tuple};
        let mut t = Tuple {
            family: Family::Ipv4,
            proto: proto::TCP,
            sport: 50000,
            dport: 22,
            ..Tuple::default()
        };
        t.set_src_ip(ip("10.0.0.9"));
        t.set_dst_ip(ip("10.0.0.1"));
        let mut store = Store::new();
        store.apply(Event::New, Record::Flow(Flow::new(t)), 0);
        let ctx = Context {
            sshd: vec![crate::ssh::Listener {
                addr: None,
                port: 22,
            }],
            ..Context::default()
        };
        let list = ListRef::Xt("seenbackend".into());
        let held = vec![ip("10.0.0.5"), ip("10.0.0.9")];
        let s = ListScope::new(list.clone(), None, held, &store, &ctx);
        assert_eq!(s.mine, [ip("10.0.0.9")]);
        let p = Plan::list(s, false);
        assert_eq!(
            p.targets,
            [Target::ListDelete {
                list,
                addr: ip("10.0.0.5")
            }]
        );
        assert_eq!(p.spared_addrs, [ip("10.0.0.9")]);
    }
}
