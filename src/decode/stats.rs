//! Decode the statistics replies: one `IPCTNL_MSG_CT_GET_STATS_CPU` or
//! `IPCTNL_MSG_EXP_GET_STATS_CPU` message per CPU (the CPU number in nfgenmsg's `res_id`,
//! see `ctnetlink_ct_stat_cpu_fill_info`), and the single `IPCTNL_MSG_CT_GET_STATS` reply.
//! Bytes in, `model::stats` records out; unknown attributes (counters a newer kernel adds)
//! are skipped, a malformed one is an error.

use super::attr::{be32, Attrs};
use super::DecodeError;
use crate::abi::*;
use crate::model::stats::{CpuCounters, ExpectCpuCounters, Global};

/// The nfgenmsg `res_id` and the attribute area of a whole message (header included).
fn split(msg: &[u8]) -> Result<(u16, &[u8]), DecodeError> {
    let need = NLMSG_HDRLEN + NFGENMSG_LEN;
    let nfgen = msg.get(NLMSG_HDRLEN..need).ok_or(DecodeError::Truncated {
        need,
        have: msg.len(),
    })?;
    let len = msg
        .get(..4)
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .unwrap_or(0)
        .clamp(need, msg.len());
    Ok((u16::from_be_bytes([nfgen[2], nfgen[3]]), &msg[need..len]))
}

/// One CPU's connection counters from one `IPCTNL_MSG_CT_GET_STATS_CPU` reply message.
pub fn cpu(msg: &[u8]) -> Result<CpuCounters, DecodeError> {
    const CTX: &str = "ct stats cpu";
    let (cpu, body) = split(msg)?;
    let mut c = CpuCounters {
        cpu,
        ..Default::default()
    };
    for a in Attrs::new(body, CTX) {
        let (kind, p) = a?;
        let slot = match kind {
            CTA_STATS_FOUND => &mut c.found,
            CTA_STATS_INVALID => &mut c.invalid,
            CTA_STATS_INSERT => &mut c.insert,
            CTA_STATS_INSERT_FAILED => &mut c.insert_failed,
            CTA_STATS_DROP => &mut c.drop,
            CTA_STATS_EARLY_DROP => &mut c.early_drop,
            CTA_STATS_ERROR => &mut c.error,
            CTA_STATS_SEARCH_RESTART => &mut c.search_restart,
            CTA_STATS_CLASH_RESOLVE => &mut c.clash_resolve,
            CTA_STATS_CHAIN_TOOLONG => &mut c.chaintoolong,
            _ => continue,
        };
        *slot = be32(CTX, kind, p)?;
    }
    Ok(c)
}

/// One CPU's expectation counters from one `IPCTNL_MSG_EXP_GET_STATS_CPU` reply message.
pub fn expect_cpu(msg: &[u8]) -> Result<ExpectCpuCounters, DecodeError> {
    const CTX: &str = "exp stats cpu";
    let (cpu, body) = split(msg)?;
    let mut c = ExpectCpuCounters {
        cpu,
        ..Default::default()
    };
    for a in Attrs::new(body, CTX) {
        let (kind, p) = a?;
        let slot = match kind {
            CTA_STATS_EXP_NEW => &mut c.expect_new,
            CTA_STATS_EXP_CREATE => &mut c.expect_create,
            CTA_STATS_EXP_DELETE => &mut c.expect_delete,
            _ => continue,
        };
        *slot = be32(CTX, kind, p)?;
    }
    Ok(c)
}

/// The `IPCTNL_MSG_CT_GET_STATS` reply: entries and `nf_conntrack_max`. Both attributes
/// are required; a reply without them is malformed, not zero.
pub fn global(msg: &[u8]) -> Result<Global, DecodeError> {
    const CTX: &str = "ct stats";
    let (_, body) = split(msg)?;
    let (mut entries, mut max) = (None, None);
    for a in Attrs::new(body, CTX) {
        let (kind, p) = a?;
        match kind {
            CTA_STATS_GLOBAL_ENTRIES => entries = Some(be32(CTX, kind, p)?),
            CTA_STATS_GLOBAL_MAX_ENTRIES => max = Some(be32(CTX, kind, p)?),
            _ => {}
        }
    }
    match (entries, max) {
        (Some(entries), Some(max_entries)) => Ok(Global {
            entries,
            max_entries,
        }),
        _ => Err(DecodeError::Other(
            "ct stats reply without CTA_STATS_GLOBAL_ENTRIES/MAX_ENTRIES",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::attr::nla;
    use super::*;

    fn message(res_id: u16, attrs: &[Vec<u8>]) -> Vec<u8> {
        let mut body: Vec<u8> = vec![2, 0];
        body.extend_from_slice(&res_id.to_be_bytes());
        for a in attrs {
            body.extend_from_slice(a);
        }
        let mut m = Vec::new();
        m.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&0x0104u16.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(&body);
        m
    }

    #[test]
    fn cpu_counters_take_cpu_from_res_id_and_skip_unknown() {
        let m = message(
            3,
            &[
                nla(CTA_STATS_FOUND, &7u32.to_be_bytes()),
                nla(CTA_STATS_INSERT_FAILED, &2u32.to_be_bytes()),
                nla(CTA_STATS_CHAIN_TOOLONG, &9u32.to_be_bytes()),
                nla(99, &1u32.to_be_bytes()),
            ],
        );
        let c = cpu(&m).unwrap();
        assert_eq!(
            (c.cpu, c.found, c.insert_failed, c.chaintoolong, c.drop),
            (3, 7, 2, 9, 0)
        );
    }

    #[test]
    fn malformed_counter_and_short_message_are_errors() {
        let m = message(0, &[nla(CTA_STATS_DROP, &[1, 2])]);
        assert!(cpu(&m).is_err());
        assert!(cpu(&m[..10]).is_err());
        let m = message(0, &[nla(CTA_STATS_GLOBAL_ENTRIES, &5u32.to_be_bytes())]);
        assert!(global(&m).is_err());
    }

    #[test]
    fn global_and_expect_counters() {
        let m = message(
            0,
            &[
                nla(CTA_STATS_GLOBAL_ENTRIES, &5u32.to_be_bytes()),
                nla(CTA_STATS_GLOBAL_MAX_ENTRIES, &65536u32.to_be_bytes()),
            ],
        );
        assert_eq!(
            global(&m).unwrap(),
            Global {
                entries: 5,
                max_entries: 65536
            }
        );
        let m = message(1, &[nla(CTA_STATS_EXP_CREATE, &4u32.to_be_bytes())]);
        let e = expect_cpu(&m).unwrap();
        assert_eq!((e.cpu, e.expect_create), (1, 4));
    }
}
