//! A recording file (`--replay` reads files anyone may hand an admin): the header, every
//! frame, and each frame's netlink payload decoded. Errors must name an offset.
#![no_main]

#[path = "common.rs"]
mod common;

use ctscope::engine::record::Reader;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(mut r) = Reader::new(data, "fuzz".into()) else {
        return;
    };
    let mut frames = 0usize;
    loop {
        match r.next_frame() {
            Ok(Some(f)) => {
                frames += 1;
                assert!(frames <= data.len(), "more frames than bytes");
                common::exercise(&f.bytes);
            }
            Ok(None) => break,
            Err(e) => {
                let m = e.to_string();
                assert!(
                    ctscope::engine::record::damaged_at(&m).is_some(),
                    "a reader error without an offset: {m}"
                );
                break;
            }
        }
    }
});
