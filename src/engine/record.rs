//! Recordings: the raw netlink messages of a session with their timestamps, so any command
//! can run again with `--replay FILE`, without root. This file owns the on-disk format
//! (writer and reader) and nothing else: no decoding, no sockets.
//!
//! Format, all integers little-endian:
//! ```text
//! header:  magic "CTSCOPE\0REC" + version u8 (=1) | start u64 (ns since the Unix epoch)
//! frame:   t u64 (ns since start) | kind u8 | len u32 | len bytes
//! ```
//! Kinds: 1 dump-begin and 3 dump-end (payload: one byte, the tables: 1 flows | 2 expects),
//! 2 dump-msg and 4 event-msg (payload: one netlink message, header included),
//! 5 overrun (no payload: the kernel dropped events here),
//! 6 recheck-msg (payload: one netlink message: the kernel's answer to a re-check of a flow
//! whose timeout passed, or the DELETE synthesized when it had none; housekeeping, not an
//! event the kernel multicast).

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use crate::error::{Error, Result};

const MAGIC: &[u8; 11] = b"CTSCOPE\0REC";
const VERSION: u8 = 1;
const HEADER_LEN: u64 = 11 + 1 + 8;
/// Larger than any ctnetlink message; a bigger length means a corrupt file.
const MAX_FRAME: u32 = 1 << 20;

/// Bit for the flow table in dump-begin/dump-end payloads.
pub const TABLE_FLOWS: u8 = 1;
/// Bit for the expectation table.
pub const TABLE_EXPECTS: u8 = 2;

/// What a frame records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A full dump starts; payload: table bits.
    DumpBegin = 1,
    /// One entry of a dump.
    DumpMsg = 2,
    /// The dump ended; payload: table bits.
    DumpEnd = 3,
    /// One event the kernel multicast (recordings made before kind 6 also hold re-check
    /// replies here).
    EventMsg = 4,
    /// The kernel reported ENOBUFS.
    Overrun = 5,
    /// The answer to a re-check (`conntrack -G`), or a synthesized DELETE when the flow
    /// was gone: store housekeeping, kept apart from the kernel's events.
    RecheckMsg = 6,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::DumpBegin,
            2 => Kind::DumpMsg,
            3 => Kind::DumpEnd,
            4 => Kind::EventMsg,
            5 => Kind::Overrun,
            6 => Kind::RecheckMsg,
            _ => return None,
        })
    }
}

/// One frame read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Nanoseconds since the recording started.
    pub t: u64,
    pub kind: Kind,
    pub bytes: Vec<u8>,
}

/// Appends frames to a recording.
pub struct Writer<W: Write = BufWriter<File>> {
    out: W,
    path: String,
}

impl Writer<BufWriter<File>> {
    /// Create (truncate) `path` and write the header, stamped with the current time.
    pub fn create(path: &Path) -> Result<Writer> {
        let name = path.display().to_string();
        let file = File::create(path).map_err(|e| rec_err(&name, format!("cannot create: {e}")))?;
        Writer::new(BufWriter::new(file), name, now_epoch_ns())
    }
}

impl<W: Write> Writer<W> {
    /// Write the header to `out`; `name` is used in error messages, `start` is the
    /// recording's start in ns since the epoch.
    pub fn new(mut out: W, name: String, start: u64) -> Result<Writer<W>> {
        let mut h = Vec::with_capacity(HEADER_LEN as usize);
        h.extend_from_slice(MAGIC);
        h.push(VERSION);
        h.extend_from_slice(&start.to_le_bytes());
        out.write_all(&h)
            .map_err(|e| rec_err(&name, format!("cannot write: {e}")))?;
        Ok(Writer { out, path: name })
    }

    /// Append one frame at `t` ns since the start.
    pub fn frame(&mut self, t: u64, kind: Kind, bytes: &[u8]) -> Result<()> {
        let mut h = [0u8; 13];
        h[..8].copy_from_slice(&t.to_le_bytes());
        h[8] = kind as u8;
        h[9..].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
        self.out
            .write_all(&h)
            .and_then(|_| self.out.write_all(bytes))
            .map_err(|e| rec_err(&self.path, format!("cannot write: {e}")))
    }

    /// Flush buffered frames to the file (done after each batch so a killed recorder
    /// leaves a readable file).
    pub fn flush(&mut self) -> Result<()> {
        self.out
            .flush()
            .map_err(|e| rec_err(&self.path, format!("cannot write: {e}")))
    }

    /// The underlying writer (tests read back an in-memory recording).
    pub fn into_inner(mut self) -> Result<W> {
        self.flush()?;
        Ok(self.out)
    }
}

/// Reads frames back in order.
pub struct Reader<R: Read = BufReader<File>> {
    input: R,
    path: String,
    offset: u64,
    start: u64,
}

impl Reader<BufReader<File>> {
    /// Open `path` and check its header.
    pub fn open(path: &Path) -> Result<Reader> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|e| rec_err(&name, format!("cannot open: {e}")))?;
        Reader::new(BufReader::new(file), name)
    }
}

impl<R: Read> Reader<R> {
    /// Read and check the header from `input`; `name` is used in error messages.
    pub fn new(mut input: R, name: String) -> Result<Reader<R>> {
        let mut h = [0u8; HEADER_LEN as usize];
        read_exact_or(&mut input, &mut h)
            .map_err(|e| rec_err(&name, format!("at offset 0: not a ctscope recording ({e})")))?;
        if &h[..11] != MAGIC {
            return Err(rec_err(
                &name,
                "at offset 0: not a ctscope recording (bad magic)".into(),
            ));
        }
        if h[11] != VERSION {
            return Err(rec_err(
                &name,
                format!(
                    "at offset 11: format version {} is not supported (this build reads {VERSION})",
                    h[11]
                ),
            ));
        }
        let start = u64::from_le_bytes(h[12..20].try_into().unwrap_or_default());
        Ok(Reader {
            input,
            path: name,
            offset: HEADER_LEN,
            start,
        })
    }

    /// When the recording started, in ns since the Unix epoch.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The file name, for messages.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The next frame, `Ok(None)` at a clean end of file. Errors name the file and the
    /// offset of the bad frame.
    pub fn next_frame(&mut self) -> Result<Option<Frame>> {
        let at = self.offset;
        let mut h = [0u8; 13];
        let got = read_fully(&mut self.input, &mut h).map_err(|e| self.err(at, e.to_string()))?;
        if got == 0 {
            return Ok(None);
        }
        if got < h.len() {
            return Err(self.err(at, format!("truncated frame header ({got} of 13 bytes)")));
        }
        let t = u64::from_le_bytes(h[..8].try_into().unwrap_or_default());
        let kind = Kind::from_u8(h[8])
            .ok_or_else(|| self.err(at, format!("unknown frame kind {}", h[8])))?;
        let len = u32::from_le_bytes(h[9..13].try_into().unwrap_or_default());
        if len > MAX_FRAME {
            return Err(self.err(at, format!("frame length {len} is implausible")));
        }
        let mut bytes = vec![0u8; len as usize];
        let got =
            read_fully(&mut self.input, &mut bytes).map_err(|e| self.err(at, e.to_string()))?;
        if got < bytes.len() {
            return Err(self.err(at, format!("truncated frame ({got} of {len} bytes)")));
        }
        self.offset += 13 + u64::from(len);
        Ok(Some(Frame { t, kind, bytes }))
    }

    fn err(&self, offset: u64, reason: String) -> Error {
        rec_err(&self.path, format!("at offset {offset}: {reason}"))
    }
}

fn rec_err(path: &str, reason: String) -> Error {
    Error::Recording {
        path: path.to_owned(),
        reason,
    }
}

/// Read until `buf` is full or EOF; returns how many bytes were read.
fn read_fully(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn read_exact_or(r: &mut impl Read, buf: &mut [u8]) -> io::Result<()> {
    let n = read_fully(r, buf)?;
    if n < buf.len() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{n} bytes"),
        ));
    }
    Ok(())
}

/// Now, in ns since the Unix epoch.
pub fn now_epoch_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut w = Writer::new(Vec::new(), "mem".into(), 1234).unwrap();
        w.frame(0, Kind::DumpBegin, &[TABLE_FLOWS | TABLE_EXPECTS])
            .unwrap();
        w.frame(10, Kind::DumpMsg, &[1, 2, 3, 4]).unwrap();
        w.frame(20, Kind::DumpEnd, &[TABLE_FLOWS | TABLE_EXPECTS])
            .unwrap();
        w.frame(5_000_000_000, Kind::EventMsg, &[9; 40]).unwrap();
        w.frame(6_000_000_000, Kind::Overrun, &[]).unwrap();
        w.into_inner().unwrap()
    }

    #[test]
    fn round_trip() {
        let bytes = sample();
        let mut r = Reader::new(&bytes[..], "mem".into()).unwrap();
        assert_eq!(r.start(), 1234);
        let mut kinds = Vec::new();
        while let Some(f) = r.next_frame().unwrap() {
            kinds.push((f.t, f.kind, f.bytes.len()));
        }
        assert_eq!(
            kinds,
            [
                (0, Kind::DumpBegin, 1),
                (10, Kind::DumpMsg, 4),
                (20, Kind::DumpEnd, 1),
                (5_000_000_000, Kind::EventMsg, 40),
                (6_000_000_000, Kind::Overrun, 0),
            ]
        );
    }

    #[test]
    fn truncation_names_file_and_offset() {
        let bytes = sample();
        // Cut inside the event frame's payload: frames start at 20, 34, 51, 65.
        let cut = &bytes[..65 + 13 + 5];
        let mut r = Reader::new(cut, "rec.bin".into()).unwrap();
        for _ in 0..3 {
            r.next_frame().unwrap().unwrap();
        }
        let e = r.next_frame().unwrap_err().to_string();
        assert!(e.contains("'rec.bin'") && e.contains("offset 65"), "{e}");
    }

    #[test]
    fn bad_magic_and_kind_are_errors() {
        let e = Reader::new(&b"hello world, not a recording"[..], "x".into())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("not a ctscope recording"), "{e}");
        let mut bytes = sample();
        bytes[20 + 8] = 77;
        let mut r = Reader::new(&bytes[..], "x".into()).unwrap();
        let e = r.next_frame().unwrap_err().to_string();
        assert!(
            e.contains("unknown frame kind 77") && e.contains("offset 20"),
            "{e}"
        );
    }
}
