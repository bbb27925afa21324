//! The conntrack(8) selection flags on the command line, built from the one table
//! `filter::selectors::SELECTORS` (so `--help`, the README table and the filter terms come
//! from the same rows), plus `-F/--filter EXPR`. Parses only; `commands::compile_filter`
//! turns the result into a `Filter`.

use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};

use crate::filter::selectors::{Selector, SELECTORS};
use crate::filter::ConntrackFlags;

const HEADING: &str = "Selection (conntrack(8) flags; all must match)";

/// conntrack(8)-style selection, compiled into the filter language.
#[derive(Debug, Clone, Default)]
pub struct FilterArgs {
    /// `-F/--filter`: an expression in the dashboard's filter language.
    pub filter: Option<String>,
    /// Every selector given, in table order.
    pub flags: ConntrackFlags,
}

impl FilterArgs {
    /// `--helper NAME`, if given.
    pub fn helper(&self) -> Option<&str> {
        self.flags.value("helper")
    }

    /// Whether `--helper` is the only selection given.
    pub fn only_helper(&self) -> bool {
        self.filter.is_none()
            && self.flags.given.len() == 1
            && self.flags.given[0].0.long == "helper"
    }
}

fn arg_of(s: &'static Selector) -> Arg {
    let mut a = Arg::new(s.long)
        .long(s.long)
        .help(s.help)
        .help_heading(HEADING);
    if let Some(c) = s.short {
        a = a.short(c);
    }
    if !s.aliases.is_empty() {
        a = a.visible_aliases(s.aliases.iter().copied());
    }
    if s.value.is_empty() {
        return a.action(ArgAction::SetTrue);
    }
    a = a.value_name(s.value);
    if s.optional {
        a = a.num_args(0..=1).default_missing_value("");
    }
    a.action(if s.repeat {
        ArgAction::Append
    } else {
        ArgAction::Set
    })
}

impl Args for FilterArgs {
    fn augment_args(cmd: Command) -> Command {
        let cmd = cmd.arg(
            Arg::new("filter")
                .long("filter")
                .short('F')
                .value_name("EXPR")
                .help(
                    "Filter expression, e.g. \"helper=ftp and dport=3306\" (the dashboard's `/` \
                     language; a /regex/ or bare word searches the line ctscope prints)",
                )
                .help_heading(HEADING)
                .action(ArgAction::Set),
        );
        SELECTORS.iter().fold(cmd, |cmd, s| cmd.arg(arg_of(s)))
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for FilterArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = ConntrackFlags::default();
        for s in SELECTORS {
            if s.value.is_empty() {
                if m.get_flag(s.long) {
                    flags.given.push((s, None));
                }
                continue;
            }
            let Some(values) = m.get_many::<String>(s.long) else {
                continue;
            };
            let values: Vec<&String> = values.collect();
            let joined = values
                .iter()
                .map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(",");
            // `-n` alone is any source NAT: the bare word, not an empty value.
            let value = (!(s.optional && joined.is_empty())).then_some(joined);
            flags.given.push((s, value));
        }
        Ok(FilterArgs {
            filter: m.get_one::<String>("filter").cloned(),
            flags,
        })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

/// conntrack's `-e/--event-mask` for `watch`: which kernel events to print. conntrack
/// subscribes only to those multicast groups; ctscope keeps following all of them (its
/// table must stay whole) and leaves the other lines out. Housekeeping lines follow the
/// same mask by what they change (add is NEW, update is UPDATES, remove is DESTROY).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventMask {
    pub new: bool,
    pub update: bool,
    pub destroy: bool,
}

impl Default for EventMask {
    fn default() -> EventMask {
        EventMask {
            new: true,
            update: true,
            destroy: true,
        }
    }
}

impl EventMask {
    /// `ALL`, or a comma-separated list of `NEW`, `UPDATES` (also `UPDATE`), `DESTROY`,
    /// any case, as conntrack(8) takes them.
    pub fn parse(s: &str) -> Result<EventMask, crate::Error> {
        let mut m = EventMask {
            new: false,
            update: false,
            destroy: false,
        };
        for w in s.split(',') {
            match w.trim().to_ascii_uppercase().as_str() {
                "ALL" => m = EventMask::default(),
                "NEW" => m.new = true,
                "UPDATES" | "UPDATE" => m.update = true,
                "DESTROY" => m.destroy = true,
                _ => {
                    return Err(crate::Error::usage(format!(
                        "unknown event '{w}' (NEW, UPDATES, DESTROY or ALL, comma separated)"
                    )))
                }
            }
        }
        Ok(m)
    }

    /// Whether a watch line with this `event` (`new`, `update`, `destroy`, `sweep`) and
    /// sweep `change` (`add`, `update`, `remove`) is printed.
    pub fn allows(&self, event: &str, change: Option<&str>) -> bool {
        match (event, change) {
            ("new", _) | ("sweep", Some("add")) => self.new,
            ("update", _) | ("sweep", Some("update")) => self.update,
            ("destroy", _) | ("sweep", Some("remove")) => self.destroy,
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_mask_words_as_conntrack() {
        let m = EventMask::parse("new,Destroy").unwrap();
        assert!(m.allows("new", None) && m.allows("destroy", None));
        assert!(!m.allows("update", None) && !m.allows("sweep", Some("update")));
        assert!(m.allows("sweep", Some("remove")));
        assert_eq!(EventMask::parse("ALL").unwrap(), EventMask::default());
        assert!(EventMask::parse("new,bogus")
            .unwrap_err()
            .to_string()
            .contains("'bogus'"));
    }
}
