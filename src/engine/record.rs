//! Recordings: the raw netlink messages of a session with their timestamps, so any command
//! can run again with `--replay FILE`, without root. This file owns the on-disk format
//! (writer and reader) and nothing else: no decoding, no sockets.
//!
//! Format, all integers little-endian:
//! ```text
//! header:  magic "CTSCOPE\0REC" + version u8 (=2) | start u64 (ns since the Unix epoch)
//! frame:   t u64 (ns since start) | kind u8 | len u32 | len bytes
//! ```
//! Kinds: 1 dump-begin and 3 dump-end (payload: one byte, the tables: 1 flows | 2 expects),
//! 2 dump-msg and 4 event-msg (payload: one netlink message, header included),
//! 5 overrun (no payload: the kernel dropped events here),
//! 6 recheck-msg (payload: one netlink message: the kernel's answer to a re-check of a flow
//! whose timeout passed, or the DELETE synthesized when it had none; housekeeping, not an
//! event the kernel multicast),
//! 7 recent (payload: one JSON object, a recency snapshot in the shape of
//! `ctscope recent --json` without `admitted`, which a replay derives from its own flows;
//! see `recent::recorded`).
//!
//! Versions: 1 has kinds 1-6; 2 adds kind 7 and changes nothing else, so this build reads
//! both (a version-1 file simply has no recency state). Writers stamp 2, so a build that
//! reads only version 1 refuses a new file at its header, with a message naming the
//! version, instead of stopping at the first kind-7 frame halfway through a replay.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use crate::error::{Error, Result};

const MAGIC: &[u8; 11] = b"CTSCOPE\0REC";
const VERSION: u8 = 2;
/// The oldest version this build reads (see the module doc).
const OLDEST_VERSION: u8 = 1;
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
    /// A recency snapshot (xt_recent lists, nft sets, knock machines): JSON, see
    /// `recent::recorded`. Version 2 on.
    Recent = 7,
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
            7 => Kind::Recent,
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
    /// Create `path` and write the header, stamped with the current time.
    ///
    /// A recording holds every flow of the table (who talks to whom), so it is created
    /// 0600, and the path is never followed through a symlink (`O_NOFOLLOW`): a link
    /// planted in a shared directory must not redirect a root-run recorder onto another
    /// file. An existing file is refused unless `force`; with `force` a regular file is
    /// truncated and narrowed to 0600.
    pub fn create(path: &Path, force: bool) -> Result<Writer> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let name = shown(path);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
        if force {
            opts.create(true);
        } else {
            // O_CREAT|O_EXCL: fails on any existing name, a symlink (even dangling) included.
            opts.create_new(true);
        }
        let file = opts.open(path).map_err(|e| {
            let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
            let (reason, hint) = if is_link {
                (
                    "is a symbolic link: refused, a recording is never written through a link"
                        .to_string(),
                    Some("give the real path"),
                )
            } else if e.kind() == io::ErrorKind::AlreadyExists {
                (
                    "already exists".to_string(),
                    Some("pass --force to overwrite it, or choose another name"),
                )
            } else {
                (format!("cannot create: {e}"), None)
            };
            Error::Recording {
                path: name.clone(),
                reason,
                hint,
            }
        })?;
        let meta = file
            .metadata()
            .map_err(|e| rec_err(&name, format!("cannot create: {e}")))?;
        if !meta.is_file() {
            return Err(rec_err(&name, "is not a regular file: refused".into()));
        }
        if force {
            file.set_len(0)
                .and_then(|_| file.set_permissions(std::fs::Permissions::from_mode(0o600)))
                .map_err(|e| rec_err(&name, format!("cannot overwrite: {e}")))?;
        }
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
        let name = shown(path);
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
        if !(OLDEST_VERSION..=VERSION).contains(&h[11]) {
            return Err(rec_err(
                &name,
                format!(
                    "at offset 11: format version {} is not supported (this build reads {OLDEST_VERSION} to {VERSION})",
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
        rec_err(&self.path, format!("{OFFSET_WORDS}{offset}: {reason}"))
    }
}

/// The byte offset named by a reader error (`… at offset N: …`), for the dashboard's
/// header: the engine hands errors on as text (`EngineEvent::Fatal`), and this is the one
/// place that knows how the reader spells the offset.
pub fn damaged_at(message: &str) -> Option<u64> {
    let rest = &message[message.find(OFFSET_WORDS)? + OFFSET_WORDS.len()..];
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..digits].parse().ok()
}

const OFFSET_WORDS: &str = "at offset ";

/// A file name for messages: names are chosen by whoever wrote the directory, so they
/// are escaped like any outside string.
fn shown(path: &Path) -> String {
    crate::escape::escape(&path.display().to_string()).into_owned()
}

fn rec_err(path: &str, reason: String) -> Error {
    Error::Recording {
        path: path.to_owned(),
        reason,
        hint: None,
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
        assert_eq!(damaged_at(&e), Some(65));
        assert_eq!(damaged_at("engine stopped: socket closed"), None);
    }

    /// Recordings are private, never written through a link, never overwritten unasked.
    #[test]
    fn files_are_created_0600_without_following_links_or_overwriting() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("ctscope-rec-create-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let path = dir.join("a.ctrec");
        Writer::create(&path, false).unwrap().into_inner().unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        let e = Writer::create(&path, false).err().unwrap().to_string();
        assert!(e.contains("already exists") && e.contains("--force"), "{e}");

        // --force truncates and narrows an existing world-readable file.
        std::fs::write(&path, vec![7u8; 1000]).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        Writer::create(&path, true).unwrap().into_inner().unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), HEADER_LEN);
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);

        // A planted link is refused, with and without --force, and its target untouched.
        let target = dir.join("victim");
        std::fs::write(&target, b"precious").unwrap();
        let link = dir.join("link.ctrec");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        for force in [false, true] {
            let e = Writer::create(&link, force).err().unwrap().to_string();
            assert!(e.contains("symbolic link"), "{e}");
        }
        let dangling = dir.join("dangling.ctrec");
        std::os::unix::fs::symlink(dir.join("nowhere"), &dangling).unwrap();
        assert!(Writer::create(&dangling, false).is_err());
        assert!(!dir.join("nowhere").exists());
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Version 1 files (no recency frames) still read; a newer version is refused at the
    /// header, naming it.
    #[test]
    fn version_one_reads_and_unknown_versions_are_refused() {
        let mut bytes = sample();
        assert_eq!(bytes[11], 2);
        bytes[11] = 1;
        let mut r = Reader::new(&bytes[..], "old".into()).unwrap();
        assert_eq!(r.next_frame().unwrap().unwrap().kind, Kind::DumpBegin);
        for v in [0u8, 3] {
            bytes[11] = v;
            let e = Reader::new(&bytes[..], "x".into())
                .err()
                .unwrap()
                .to_string();
            assert!(
                e.contains(&format!("format version {v} is not supported"))
                    && e.contains("offset 11"),
                "{e}"
            );
        }
        let mut w = Writer::new(Vec::new(), "mem".into(), 1).unwrap();
        w.frame(7, Kind::Recent, b"{}").unwrap();
        let bytes = w.into_inner().unwrap();
        let f = Reader::new(&bytes[..], "x".into())
            .unwrap()
            .next_frame()
            .unwrap()
            .unwrap();
        assert_eq!((f.t, f.kind, &f.bytes[..]), (7, Kind::Recent, &b"{}"[..]));
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
