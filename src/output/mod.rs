//! Headless output for scripts: text akin to conntrack(8), one JSON array, or NDJSON, all
//! from the serde views in `view`. It owns formatting and the broken-pipe rule (a closed
//! stdout, as in `ctscope list | head`, is a clean stop, exit 0). It must not read the
//! kernel, filter, or decide what to list: callers hand it views.
//!
//! ```no_run
//! # use ctscope::output::{Format, Outcome, Writer, view::FlowView};
//! # let flows: Vec<ctscope::model::Flow> = vec![];
//! let mut w = Writer::new(std::io::stdout().lock(), Format::Json);
//! for f in &flows {
//!     if w.flow(&FlowView::of(f, 0))? == Outcome::Closed {
//!         return Ok(()); // reader went away: exit 0
//!     }
//! }
//! w.finish()?;
//! # Ok::<(), std::io::Error>(())
//! ```

pub mod extended;
pub mod prom;
pub mod save;
pub mod stats;
pub mod text;
pub mod verdict;
pub mod view;

pub use view::{EntryView, ExpectView, FlowView, ResyncLine, Stamp, TupleView, WatchLine};

use std::io::{self, Write};

/// The output format of a headless command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One line per entry, akin to conntrack(8).
    Text,
    /// One JSON array of every entry (`--json`).
    Json,
    /// One JSON object per line (`--ndjson`).
    Ndjson,
    /// `-o extended`: the text line with the layer-3 name and number in front.
    Extended,
    /// `-o save`: `conntrack -I` lines that `conntrack -R` loads (flows only).
    Save,
}

impl Format {
    /// One line per entry (text, extended, save) rather than JSON.
    pub fn is_line(self) -> bool {
        matches!(self, Format::Text | Format::Extended | Format::Save)
    }
}

/// Whether the reader is still there.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Continue,
    /// The reader closed the pipe (EPIPE): stop writing and exit 0.
    Closed,
}

/// Writes entries in one `Format` to any `impl Write` (stdout, a file, a test buffer).
///
/// Wrap stdout in a `BufWriter` or lock it; `finish` flushes. I/O errors other than a broken
/// pipe are returned as errors.
pub struct Writer<W: Write> {
    out: W,
    format: Format,
    items: usize,
    closed: bool,
    scratch: Vec<u8>,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W, format: Format) -> Writer<W> {
        Writer {
            out,
            format,
            items: 0,
            closed: false,
            scratch: Vec::with_capacity(512),
        }
    }

    /// Write one flow (`conntrack -L` line, or a JSON object). Text and extended lines of
    /// a judged (RELATED) flow end with ctscope's verdict (`verdict::suffix`).
    pub fn flow(&mut self, v: &FlowView) -> io::Result<Outcome> {
        let format = self.format;
        self.item(v, || flow_line(format, v))
    }

    /// Write one expectation (`conntrack -L expect` line with the verdict, or a JSON
    /// object). `save` has no expectation form: callers refuse it first.
    pub fn expectation(&mut self, v: &ExpectView) -> io::Result<Outcome> {
        self.item(v, || expect_line(v))
    }

    /// Write either kind.
    pub fn entry(&mut self, v: &EntryView) -> io::Result<Outcome> {
        let format = self.format;
        self.item(v, || match v {
            EntryView::Flow(f) => flow_line(format, f),
            EntryView::Expect(e) => expect_line(e),
        })
    }

    /// Write one watch event (`conntrack -E` line, or an object with `event` and `kind`).
    pub fn watch(&mut self, w: &WatchLine) -> io::Result<Outcome> {
        let r = self.item(w, || {
            let (freedom, findings) = match &w.entry {
                EntryView::Flow(f) => (f.freedom.as_ref(), f.findings.as_ref()),
                EntryView::Expect(e) => (e.freedom.as_ref(), e.findings.as_ref()),
            };
            text::watch(w) + &verdict::suffix(freedom, findings)
        })?;
        // Events are read as they happen: do not leave them in a buffer.
        if r == Outcome::Continue && self.format != Format::Json {
            return self.guard(|out| out.flush());
        }
        Ok(r)
    }

    /// Write one resync marker (`[RESYNC] begin …` in text, an object with
    /// `"event":"resync"` in JSON).
    pub fn resync(&mut self, r: &ResyncLine) -> io::Result<Outcome> {
        let out = self.item(r, || text::resync(r))?;
        if out == Outcome::Continue && self.format != Format::Json {
            return self.guard(|out| out.flush());
        }
        Ok(out)
    }

    /// End the output: close the JSON array (`[]` when empty) and flush.
    pub fn finish(&mut self) -> io::Result<Outcome> {
        if self.format == Format::Json {
            let tail: &[u8] = if self.items == 0 { b"[]\n" } else { b"\n]\n" };
            if self.guard(|out| out.write_all(tail))? == Outcome::Closed {
                return Ok(Outcome::Closed);
            }
        }
        self.guard(|out| out.flush())
    }

    /// Entries written so far.
    pub fn count(&self) -> usize {
        self.items
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    fn item<T: serde::Serialize>(
        &mut self,
        v: &T,
        line: impl FnOnce() -> String,
    ) -> io::Result<Outcome> {
        if self.closed {
            return Ok(Outcome::Closed);
        }
        self.scratch.clear();
        match self.format {
            Format::Text | Format::Extended | Format::Save => {
                self.scratch.extend_from_slice(line().as_bytes());
                self.scratch.push(b'\n');
            }
            Format::Json => {
                self.scratch
                    .extend_from_slice(if self.items == 0 { b"[\n" } else { b",\n" });
                serde_json::to_writer(&mut self.scratch, v).map_err(io::Error::other)?;
            }
            Format::Ndjson => {
                serde_json::to_writer(&mut self.scratch, v).map_err(io::Error::other)?;
                self.scratch.push(b'\n');
            }
        }
        self.items += 1;
        let Writer { out, scratch, .. } = self;
        let r = out.write_all(scratch);
        self.settle(r)
    }

    fn guard(&mut self, f: impl FnOnce(&mut W) -> io::Result<()>) -> io::Result<Outcome> {
        if self.closed {
            return Ok(Outcome::Closed);
        }
        let r = f(&mut self.out);
        self.settle(r)
    }

    fn settle(&mut self, r: io::Result<()>) -> io::Result<Outcome> {
        match r {
            Ok(()) => Ok(Outcome::Continue),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(Outcome::Closed)
            }
            Err(e) => Err(e),
        }
    }
}

/// The line of a flow in a line format (JSON formats never call this).
fn flow_line(format: Format, v: &FlowView) -> String {
    match format {
        Format::Save => save::flow(v),
        Format::Extended => {
            extended::flow(v) + &verdict::suffix(v.freedom.as_ref(), v.findings.as_ref())
        }
        _ => text::flow(v) + &verdict::suffix(v.freedom.as_ref(), v.findings.as_ref()),
    }
}

/// An expectation's text line with ctscope's verdict at the end.
fn expect_line(v: &ExpectView) -> String {
    text::expectation(v) + &verdict::suffix(v.freedom.as_ref(), v.findings.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::flow::status;
    use crate::model::tuple::{proto, Family, Tuple};
    use crate::model::Event;
    use crate::model::{Expectation, Flow};

    fn tcp() -> Flow {
        let mut t = Tuple {
            family: Family::Ipv4,
            proto: proto::TCP,
            sport: 40000,
            dport: 21,
            ..Tuple::default()
        };
        t.set_src_ip("10.0.0.1".parse().unwrap());
        t.set_dst_ip("10.0.0.2".parse().unwrap());
        let mut f = Flow::new(t);
        f.state = 3;
        f.status = status::SEEN_REPLY | status::ASSURED | status::CONFIRMED;
        f.timeout = 100;
        f.seen = 10;
        f.id = 42;
        f.use_count = 1;
        f.helper = crate::model::helper::intern("ftp");
        f
    }

    #[test]
    fn flow_json_matches_contract() {
        let v = FlowView::of(&tcp(), 15);
        let j = serde_json::to_value(&v).unwrap();
        assert_eq!(
            j,
            serde_json::json!({
                "family": "ipv4", "proto": "tcp", "state": "ESTABLISHED", "timeout": 95,
                "orig": {"src": "10.0.0.1", "dst": "10.0.0.2", "sport": 40000, "dport": 21},
                "reply": {"src": "10.0.0.2", "dst": "10.0.0.1", "sport": 21, "dport": 40000},
                "status": ["SEEN_REPLY", "ASSURED", "CONFIRMED"], "mark": 0, "zone": 0,
                "id": 42, "use": 1, "helper": "ftp", "master": null, "counters": null,
                "timestamp": null, "labels": []
            })
        );
    }

    #[test]
    fn icmp_and_gre_tuples_use_their_keys() {
        let mut t = Tuple {
            family: Family::Ipv4,
            proto: proto::ICMP,
            sport: 77,
            dport: 8 << 8,
            ..Tuple::default()
        };
        let j = serde_json::to_value(TupleView::of(&t)).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"src":"0.0.0.0","dst":"0.0.0.0","type":8,"code":0,"icmp_id":77})
        );
        t.proto = proto::GRE;
        let j = serde_json::to_value(TupleView::of(&t)).unwrap();
        assert_eq!(j["srckey"], 77);
        assert_eq!(j["dstkey"], 8 << 8);
        assert!(j.get("sport").is_none());
    }

    #[test]
    fn text_line_reads_like_conntrack() {
        let line = text::flow(&FlowView::of(&tcp(), 10));
        assert_eq!(
            line,
            "tcp      6 100 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=21 \
             src=10.0.0.2 dst=10.0.0.1 sport=21 dport=40000 [ASSURED] mark=0 helper=ftp use=1 id=42"
        );
    }

    #[test]
    fn json_array_and_ndjson_framing() {
        let v = FlowView::of(&tcp(), 10);
        let mut w = Writer::new(Vec::new(), Format::Json);
        assert_eq!(w.finish().unwrap(), Outcome::Continue);
        assert_eq!(w.into_inner(), b"[]\n");
        let mut w = Writer::new(Vec::new(), Format::Json);
        let _ = w.flow(&v).unwrap();
        let _ = w.flow(&v).unwrap();
        let _ = w.finish().unwrap();
        let parsed: serde_json::Value = serde_json::from_slice(&w.into_inner()).unwrap();
        assert_eq!(parsed.as_array().unwrap().len(), 2);
        let mut w = Writer::new(Vec::new(), Format::Ndjson);
        let e = Expectation::new(tcp().orig, tcp().orig, tcp().orig);
        let line = WatchLine::new(Event::New, EntryView::Expect(ExpectView::of(&e, 0)));
        let _ = w.watch(&line).unwrap();
        let out = String::from_utf8(w.into_inner()).unwrap();
        assert!(
            out.starts_with(
                r#"{"time":"1970-01-01T00:00:00.000000000Z","event":"new","source":"kernel","kind":"expect","family":"ipv4""#
            ),
            "{out}"
        );
        assert_eq!(out.lines().count(), 1);
    }

    /// conntrack(8)'s words in both formats: `UNREPLIED` where the text says
    /// `[UNREPLIED]`, no ports for a portless protocol, `stop` null while the flow lives,
    /// labels last in the text line.
    #[test]
    fn unreplied_portless_and_live_timestamps() {
        let mut t = tcp().orig;
        t.proto = 2; // igmp: tracked generically, no ports
        t.sport = 0;
        t.dport = 0;
        let mut f = Flow::new(t);
        f.status = status::CONFIRMED;
        f.timeout = 30;
        f.use_count = 1;
        f.extra_mut().timestamp = Some((1_700_000_000_000_000_000, 0));
        f.extra_mut().labels = (1 << 3) | (1 << 70);
        let v = FlowView::of(&f, 0);
        let j = serde_json::to_value(&v).unwrap();
        assert_eq!(j["proto"], 2);
        assert_eq!(j["status"], serde_json::json!(["UNREPLIED", "CONFIRMED"]));
        assert_eq!(
            j["orig"],
            serde_json::json!({"src": "10.0.0.1", "dst": "10.0.0.2"})
        );
        assert_eq!(
            j["reply"],
            serde_json::json!({"src": "10.0.0.2", "dst": "10.0.0.1"})
        );
        assert_eq!(
            j["timestamp"],
            serde_json::json!({"start": 1_700_000_000_000_000_000u64, "stop": null})
        );
        assert_eq!(j["labels"], serde_json::json!([3, 70]));
        assert_eq!(
            text::flow(&v),
            "unknown  2 30 src=10.0.0.1 dst=10.0.0.2 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 \
             mark=0 use=1 id=0 labels=3,70"
        );
        f.status |= status::ASSURED | status::OFFLOAD;
        assert!(text::flow(&FlowView::of(&f, 0)).contains("dst=10.0.0.1 [OFFLOAD] mark=0"));
        f.status &= !(status::ASSURED | status::OFFLOAD);
        f.extra_mut().timestamp = Some((5, 9));
        f.status |= status::SEEN_REPLY;
        let j = serde_json::to_value(FlowView::of(&f, 0)).unwrap();
        assert_eq!(j["timestamp"], serde_json::json!({"start": 5, "stop": 9}));
        assert_eq!(j["status"], serde_json::json!(["SEEN_REPLY", "CONFIRMED"]));
    }

    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
    }

    #[test]
    fn broken_pipe_is_a_clean_stop() {
        let mut w = Writer::new(Broken, Format::Text);
        assert_eq!(w.flow(&FlowView::of(&tcp(), 0)).unwrap(), Outcome::Closed);
        assert_eq!(w.finish().unwrap(), Outcome::Closed);
    }

    #[test]
    fn risk_fields_appear_only_when_set() {
        let mut v = FlowView::of(&tcp(), 0);
        assert!(serde_json::to_value(&v).unwrap().get("freedom").is_none());
        v.freedom = Some(serde_json::json!({"dport": "in_cmd"}));
        v.findings = Some(serde_json::json!([]));
        let j = serde_json::to_value(&v).unwrap();
        assert_eq!(j["freedom"]["dport"], "in_cmd");
        assert!(j["findings"].is_array());
    }

    #[test]
    fn text_watch_and_expectation_lines() {
        let f = tcp();
        let mut master = f.orig;
        master.dport = 21;
        let mut t = f.orig;
        t.sport = 0;
        t.dport = 40100;
        let mut mask = t;
        mask.src = [255; 16];
        mask.dst = [255; 16];
        mask.sport = 0;
        mask.dport = 0xffff;
        let mut e = Expectation::new(t, mask, master);
        e.timeout = 300;
        e.flags = crate::model::expect::flags::PERMANENT;
        let line = text::expectation(&ExpectView::of(&e, 0));
        assert_eq!(
            line,
            "300 proto=6 src=10.0.0.1 dst=10.0.0.2 sport=0 dport=40100 \
             mask-src=255.255.255.255 mask-dst=255.255.255.255 sport=0 dport=65535 \
             master-src=10.0.0.1 master-dst=10.0.0.2 sport=40000 dport=21 PERMANENT class=0"
        );
        let stamp = Stamp {
            time: view::EventTime(1_764_510_803_000_000_001),
            host: Some("fw1".into()),
            netns: None,
        };
        let w = WatchLine::kernel(
            stamp.clone(),
            Event::Destroy,
            EntryView::Flow(FlowView::of(&f, 10)),
        );
        assert!(text::watch(&w)
            .starts_with("2025-11-30T13:53:23.000000001Z [DESTROY] tcp      6 100 ESTABLISHED"));
        let w = WatchLine::new(Event::New, EntryView::Expect(ExpectView::of(&e, 0)));
        assert!(text::watch(&w)
            .starts_with("1970-01-01T00:00:00.000000000Z     [NEW] expect 300 proto=6"));
        let w = WatchLine::sweep(
            stamp.clone(),
            "remove",
            view::source::RESYNC,
            EntryView::Flow(FlowView::of(&f, 10)),
        );
        assert!(
            text::watch(&w)
                .starts_with("2025-11-30T13:53:23.000000001Z   [SWEEP] remove (resync) tcp      6"),
            "{}",
            text::watch(&w)
        );
        let j = serde_json::to_value(&w).unwrap();
        assert_eq!(j["time"], "2025-11-30T13:53:23.000000001Z");
        assert_eq!(j["host"], "fw1");
        assert!(j.get("netns").is_none());
        assert_eq!(
            (&j["event"], &j["change"], &j["source"], &j["kind"]),
            (
                &serde_json::json!("sweep"),
                &serde_json::json!("remove"),
                &serde_json::json!("resync"),
                &serde_json::json!("flow")
            )
        );
    }
}
