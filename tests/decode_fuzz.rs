//! Fuzz-ish robustness of the decoder: every fixture truncated at every length, fixtures
//! with random byte flips, and random buffers (raw, and behind a valid ctnetlink header so
//! the attribute walker is reached). The decoder must never panic, must always make
//! progress, and a truncated message must be an `Err`. A small deterministic xorshift
//! keeps runs reproducible (a failure prints its seed and iteration). No kernel access.

use ctscope::decode::{self, Message};
use ctscope::model::Record;
use ctscope::output::{text, ExpectView, FlowView};

const FIXTURES: &[&str] = &[
    "tcp_v4",
    "tcp_v6",
    "udp",
    "icmp",
    "icmpv6",
    "sctp",
    "gre",
    "nat",
    "zone",
    "zone_dir",
    "zone_reply",
    "labels",
    "acct_ts",
    "related",
    "helper_master",
    "expect",
    "expect_v6",
    "expect_nat",
    "nat_master",
    "events_flow",
    "events_expect",
    "done",
    "error",
];

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}.bin", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Decode every message of `buf` and render what decodes, so output code is exercised
/// with hostile values too. Returns (messages ok, ended in error).
fn exercise(buf: &[u8]) -> (usize, bool) {
    agree(buf);
    let mut ok = 0;
    let mut failed = false;
    for m in decode::messages(buf) {
        match m {
            Ok(Message::Record { record, .. }) => {
                ok += 1;
                match record {
                    Record::Flow(f) => {
                        let v = FlowView::of(&f, 7);
                        let _ = text::flow(&v);
                        serde_json::to_vec(&v).expect("a view always serialises");
                    }
                    Record::Expect(e) => {
                        let v = ExpectView::of(&e, 7);
                        let _ = text::expectation(&v);
                        serde_json::to_vec(&v).expect("a view always serialises");
                    }
                }
            }
            Ok(_) => ok += 1,
            Err(_) => failed = true,
        }
    }
    (ok, failed)
}

/// `decode::message_into` says what `decode::message` says about every message.
fn agree(buf: &[u8]) {
    if let Err(e) = decode::agree(buf) {
        panic!("{e}");
    }
}

/// Offsets where each message of a well-formed buffer ends.
fn boundaries(buf: &[u8]) -> Vec<usize> {
    let mut ends = vec![0];
    let mut at = 0;
    while at < buf.len() {
        let (_, used) = decode::message(&buf[at..]).expect("fixtures decode");
        at += used;
        ends.push(at);
    }
    ends
}

#[test]
fn every_truncation_is_an_error_unless_on_a_boundary() {
    for name in FIXTURES {
        let buf = fixture(name);
        let ends = boundaries(&buf);
        let total = ends.len() - 1;
        for n in 0..buf.len() {
            let cut = &buf[..n];
            let (ok, failed) = exercise(cut);
            let whole = ends.iter().filter(|e| **e <= n && **e > 0).count();
            assert_eq!(
                ok, whole,
                "{name} cut at {n}: messages before the cut decode"
            );
            assert_eq!(
                failed,
                !ends.contains(&n),
                "{name} cut at {n}: a cut inside a message is an error"
            );
            if ends.contains(&n) {
                continue;
            }
            // The single message containing the cut, decoded alone, is an error too.
            let start = *ends.iter().filter(|e| **e <= n).max().unwrap_or(&0);
            assert!(decode::message(&buf[start..n]).is_err(), "{name} at {n}");
        }
        assert_eq!(exercise(&buf), (total, false), "{name} whole");
    }
}

#[test]
fn random_byte_flips_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let bufs: Vec<Vec<u8>> = FIXTURES.iter().map(|n| fixture(n)).collect();
    let mut decoded_after_flip = 0;
    for i in 0..40_000 {
        let mut b = bufs[rng.below(bufs.len())].clone();
        let flips = 1 + rng.below(6);
        for _ in 0..flips {
            let at = rng.below(b.len());
            // Bias toward the small values that make interesting lengths and types.
            b[at] ^= if rng.below(2) == 0 {
                1 << rng.below(8)
            } else {
                rng.next() as u8
            };
        }
        let r = std::panic::catch_unwind(|| exercise(&b));
        assert!(r.is_ok(), "panic at iteration {i}");
        if r.unwrap().0 > 0 {
            decoded_after_flip += 1;
        }
    }
    // Sanity: the flips must not all break framing, or attribute code went untested.
    assert!(decoded_after_flip > 10_000, "{decoded_after_flip}");
}

#[test]
fn random_buffers_never_panic() {
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    for _ in 0..20_000 {
        let len = rng.below(300);
        let b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        exercise(&b);
    }
}

#[test]
fn random_attributes_behind_a_valid_header_never_panic() {
    let mut rng = XorShift(0xdead_beef_cafe_f00d);
    for _ in 0..40_000 {
        let body_len = rng.below(256);
        let total = 20 + body_len;
        let mut b = Vec::with_capacity(total);
        b.extend_from_slice(&(total as u32).to_ne_bytes());
        let subsys = 1 + rng.below(2) as u16;
        let msg = [0u16, 2][rng.below(2)];
        b.extend_from_slice(&((subsys << 8) | msg).to_ne_bytes());
        b.extend_from_slice(&[0x400u16, 0x2, 0][rng.below(3)].to_ne_bytes());
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&[[2u8, 10][rng.below(2)], 0, 0, 0]);
        // Plausible attributes: small lengths and types, sometimes nested, then noise.
        while b.len() + 4 <= total {
            let room = total - b.len();
            let len = (4 + rng.below(40)).min(room);
            let kind = (rng.below(28) as u16) | if rng.below(2) == 0 { 0x8000 } else { 0 };
            b.extend_from_slice(&(len as u16).to_ne_bytes());
            b.extend_from_slice(&kind.to_ne_bytes());
            for _ in 4..len {
                b.push(if rng.below(3) == 0 {
                    rng.below(20) as u8
                } else {
                    rng.next() as u8
                });
            }
        }
        b.resize(total, 0);
        exercise(&b);
    }
}

#[test]
fn every_fixture_is_fuzzed() {
    let dir = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "bin") {
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            assert!(
                FIXTURES.contains(&stem.as_str()),
                "{stem} missing from FIXTURES"
            );
        }
    }
}
