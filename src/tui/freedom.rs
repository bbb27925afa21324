//! How much of an expectation's tuple came from the payload: the TUI's reading of the
//! netfilter authors' table (Fixed / In CMD / Full), computed from what the kernel holds.
//!
//! A masked-out field is Full; a field equal to an endpoint of the master connection is
//! Fixed; anything else was parsed from the payload and is In CMD (forgeable). This is the
//! live rule of the helper-risk issue; when `crate::risk` lands, `classify` becomes a thin
//! call into it. It must not render or touch the store.

use crate::model::{Expectation, Tuple};

/// Degree of freedom of one tuple field, least to most dangerous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Freedom {
    /// Taken from the master connection: not a candidate for forgery.
    Fixed,
    /// Parsed from the payload: a candidate for forgery.
    InCmd,
    /// Any value at all (masked out).
    Full,
}

impl Freedom {
    /// The text badge; colour is never the only signal.
    pub fn badge(self) -> &'static str {
        match self {
            Freedom::Fixed => "FIXED",
            Freedom::InCmd => "IN-CMD",
            Freedom::Full => "FULL",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Freedom::Fixed => "Fixed",
            Freedom::InCmd => "In CMD",
            Freedom::Full => "Full",
        }
    }
}

/// Freedom of each field of an expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields {
    pub src: Freedom,
    pub sport: Freedom,
    pub dst: Freedom,
    pub dport: Freedom,
}

impl Fields {
    /// The risk an admin should read at a glance: the worst of source address, destination
    /// address and destination port. The source port is left out because every helper in
    /// the authors' table leaves it open (0-65535): counting it would mark everything Full.
    pub fn overall(&self) -> Freedom {
        self.src.max(self.dst).max(self.dport)
    }
}

fn addr_freedom(v: &[u8; 16], mask: &[u8; 16], master: &Tuple) -> Freedom {
    if mask.iter().all(|b| *b == 0) {
        Freedom::Full
    } else if *v == master.src || *v == master.dst {
        Freedom::Fixed
    } else {
        Freedom::InCmd
    }
}

fn port_freedom(v: u16, mask: u16, master: &Tuple) -> Freedom {
    if mask == 0 {
        Freedom::Full
    } else if v == master.sport || v == master.dport {
        Freedom::Fixed
    } else {
        Freedom::InCmd
    }
}

/// Classify every field of `e` from the live data.
pub fn classify(e: &Expectation) -> Fields {
    let m = &e.master;
    Fields {
        src: addr_freedom(&e.tuple.src, &e.mask.src, m),
        sport: port_freedom(e.tuple.sport, e.mask.sport, m),
        dst: addr_freedom(&e.tuple.dst, &e.mask.dst, m),
        dport: port_freedom(e.tuple.dport, e.mask.dport, m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tuple::proto;
    use crate::model::Family;

    fn t(src: u8, sport: u16, dst: u8, dport: u16) -> Tuple {
        let mut x = Tuple {
            family: Family::Ipv4,
            proto: proto::TCP,
            sport,
            dport,
            ..Tuple::default()
        };
        x.src[..4].copy_from_slice(&[10, 0, 0, src]);
        x.dst[..4].copy_from_slice(&[10, 0, 0, dst]);
        x
    }

    #[test]
    fn passive_ftp_is_in_cmd_port_only() {
        let master = t(2, 40000, 1, 21);
        let tuple = t(2, 0, 1, 50123);
        let mut mask = t(255, 0, 255, 0xffff);
        mask.src[..4].copy_from_slice(&[255; 4]);
        mask.dst[..4].copy_from_slice(&[255; 4]);
        let e = Expectation::new(tuple, mask, master);
        let f = classify(&e);
        assert_eq!(f.src, Freedom::Fixed);
        assert_eq!(f.dst, Freedom::Fixed);
        assert_eq!(f.sport, Freedom::Full);
        assert_eq!(f.dport, Freedom::InCmd);
        assert_eq!(f.overall(), Freedom::InCmd);
    }

    #[test]
    fn irc_dcc_source_any_is_full() {
        let master = t(2, 40000, 1, 6667);
        let tuple = t(0, 0, 2, 5000);
        let mut mask = t(0, 0, 0, 0xffff);
        mask.src = [0; 16];
        mask.dst[..4].copy_from_slice(&[255; 4]);
        let e = Expectation::new(tuple, mask, master);
        assert_eq!(classify(&e).overall(), Freedom::Full);
    }
}
