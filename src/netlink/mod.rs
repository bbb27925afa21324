//! The only code that touches sockets: ctnetlink dump, subscribe, delete, flush, and
//! ENOBUFS recovery. Each request lives in its own file and names its conntrack(8)
//! equivalent. It hands raw message bytes to callers; decoding is `decode`'s job, and it
//! must not know about the store or any presentation.
//!
//! `Conn` is the request socket (dump, get, delete, flush); `events::Subscription` is the
//! separate multicast socket. Both are opened in a network namespace by `netns`.

pub mod delete;
pub mod dump;
pub mod events;
pub mod flush;
pub mod get;
pub mod netns;
pub mod request;
pub mod special;
pub mod stats;

use std::io;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use crate::abi::*;
use crate::error::{Error, Result};
pub use netns::Namespace;
use request::Request;

/// Receive buffer for request replies. A dump datagram holds many messages (the kernel
/// fills up to its own buffer size, ~32 KiB); 1 MiB leaves room for large ones without
/// `MSG_TRUNC` games.
const RECV_BUF: usize = 1 << 20;

/// Which conntrack table a request is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// The connection table (`NFNL_SUBSYS_CTNETLINK`).
    Flows,
    /// The expectation table (`NFNL_SUBSYS_CTNETLINK_EXP`).
    Expects,
}

impl Table {
    fn subsys(self) -> u8 {
        match self {
            Table::Flows => NFNL_SUBSYS_CTNETLINK,
            Table::Expects => NFNL_SUBSYS_CTNETLINK_EXP,
        }
    }
}

/// The fixed part of one netlink message, read in host byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NlHeader {
    pub len: u32,
    pub nl_type: u16,
    pub flags: u16,
    pub seq: u32,
    pub pid: u32,
}

impl NlHeader {
    /// Parse the header at the start of `b`, or `None` if fewer than 16 bytes are there.
    pub fn parse(b: &[u8]) -> Option<NlHeader> {
        if b.len() < NLMSG_HDRLEN {
            return None;
        }
        let u32_at = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Some(NlHeader {
            len: u32_at(0),
            nl_type: u16::from_ne_bytes([b[4], b[5]]),
            flags: u16::from_ne_bytes([b[6], b[7]]),
            seq: u32_at(8),
            pid: u32_at(12),
        })
    }
}

/// Split one received datagram into its netlink messages (each including its header).
/// A message whose length field is impossible ends the walk with an error value: the rest
/// of the datagram cannot be framed.
pub fn split(datagram: &[u8]) -> impl Iterator<Item = Result<(NlHeader, &[u8])>> + '_ {
    let mut rest = datagram;
    std::iter::from_fn(move || {
        if rest.len() < NLMSG_HDRLEN {
            return None;
        }
        let h = NlHeader::parse(rest)?;
        let len = h.len as usize;
        if len < NLMSG_HDRLEN || len > rest.len() {
            let have = rest.len();
            rest = &[];
            return Some(Err(Error::Other(format!(
                "malformed netlink reply: message length {len}, {have} bytes left"
            ))));
        }
        let msg = &rest[..len];
        rest = &rest[((len + 3) & !3).min(rest.len())..];
        Some(Ok((h, msg)))
    })
}

/// The errno carried by an `NLMSG_ERROR` message (0 is an ACK), as a positive number.
/// `i32::MIN` has no positive counterpart (no kernel sends it, a fuzzer did); it reads as
/// `i32::MAX`, an errno no one knows, as `decode::message` does.
pub fn error_code(msg: &[u8]) -> Option<i32> {
    let b = msg.get(NLMSG_HDRLEN..NLMSG_HDRLEN + 4)?;
    Some(
        i32::from_ne_bytes([b[0], b[1], b[2], b[3]])
            .checked_neg()
            .unwrap_or(i32::MAX),
    )
}

/// A ctnetlink request socket bound in one network namespace.
pub struct Conn {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("seq", &self.seq).finish()
    }
}

impl Conn {
    /// Open a request socket in `ns` (the socket keeps that namespace for its lifetime).
    pub fn open(ns: &Namespace) -> Result<Conn> {
        let sock = netns::run_in(ns, open_socket)?;
        Ok(Conn {
            sock,
            seq: initial_seq(),
            buf: vec![0; RECV_BUF],
        })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Send `req` and read the replies that carry its sequence number. Data messages go
    /// to `sink`; the call returns at `NLMSG_DONE` (dumps), at an `NLMSG_ERROR` (ACK or
    /// refusal), or after the first data message of a non-dump reply when `single` is set.
    /// Returns the data messages' header flags OR-ed together (`NLM_F_DUMP_INTR`: the
    /// table changed under the dump; `NLM_F_DUMP_FILTERED`: the kernel applied a filter).
    fn transact(
        &mut self,
        op: &'static str,
        req: Request,
        single: bool,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<u16> {
        let seq = self.next_seq();
        let bytes = req.finish(seq);
        send_all(&self.sock, op, &bytes)?;
        let mut flags = 0u16;
        loop {
            let n = recv_retry(&self.sock, &mut self.buf, 0).map_err(|e| io_err(op, e))?;
            let mut finished = false;
            for item in split(&self.buf[..n]) {
                let (h, msg) = item?;
                // Replies to an earlier request abandoned half-way (an error during a
                // dump) may still be queued: skip anything that is not ours.
                if h.seq != seq {
                    continue;
                }
                flags |= h.flags;
                match h.nl_type {
                    NLMSG_DONE => finished = true,
                    NLMSG_ERROR => {
                        let errno = error_code(msg).unwrap_or(libc::EBADMSG);
                        if errno != 0 {
                            return Err(Error::Netlink { op, errno });
                        }
                        finished = true;
                    }
                    NLMSG_NOOP | NLMSG_OVERRUN => {}
                    _ => {
                        sink(msg);
                        if single {
                            finished = true;
                        }
                    }
                }
            }
            if finished {
                return Ok(flags);
            }
        }
    }

    /// A request answered by an ACK or an error only (delete, flush).
    fn ack(&mut self, op: &'static str, req: Request) -> Result<()> {
        self.transact(op, req, false, &mut |_| {}).map(|_| ())
    }
}

fn initial_seq() -> u32 {
    // Any value works; a time-derived one makes stray replies from a previous process
    // using the same port id unlikely to match.
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(1)
}

/// Create and bind a NETLINK_NETFILTER socket in the calling thread's namespace.
pub(crate) fn open_socket() -> Result<Socket> {
    let mut sock = Socket::new(NETLINK_NETFILTER).map_err(|e| io_err("socket", e))?;
    sock.bind(&SocketAddr::new(0, 0))
        .map_err(|e| io_err("bind", e))?;
    Ok(sock)
}

pub(crate) fn io_err(op: &'static str, source: io::Error) -> Error {
    Error::Io { op, source }
}

fn send_all(sock: &Socket, op: &'static str, bytes: &[u8]) -> Result<()> {
    loop {
        match sock.send(bytes, 0) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(op, e)),
        }
    }
}

/// `recv(2)` into `buf`, retrying on EINTR. Returns the datagram length (capped to `buf`).
pub(crate) fn recv_retry(sock: &Socket, buf: &mut [u8], flags: libc::c_int) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    loop {
        // SAFETY: buf is a valid writable region of buf.len() bytes for the whole call.
        let r = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags) };
        if r >= 0 {
            return Ok((r as usize).min(buf.len()));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_walks_aligned_messages_and_rejects_bad_lengths() {
        let a = Request::new(1, 0, 0, 2).finish(5);
        let mut b = Request::new(1, 2, 0, 10);
        b.put_u8(1, 9);
        let b = b.finish(6);
        let mut dgram = a.clone();
        dgram.extend_from_slice(&b);
        let got: Vec<_> = split(&dgram).map(|r| r.unwrap().0.seq).collect();
        assert_eq!(got, [5, 6]);

        let mut bad = a.clone();
        bad[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        let r: Vec<_> = split(&bad).collect();
        assert_eq!(r.len(), 1);
        assert!(r[0].is_err());
    }

    #[test]
    fn error_code_is_positive_errno() {
        let mut m = vec![0u8; 20];
        m[16..20].copy_from_slice(&(-libc::ENOENT).to_ne_bytes());
        assert_eq!(error_code(&m), Some(libc::ENOENT));
        m[16..20].copy_from_slice(&i32::MIN.to_ne_bytes());
        assert_eq!(error_code(&m), Some(i32::MAX));
        assert_eq!(error_code(&m[..19]), None);
    }
}
