//! The filter language (the dashboard's `/` bar and `--filter`): any text is parsed;
//! errors render with their caret; a filter that parses is evaluated on real flows and
//! expectations captured from the kernel (the repository's byte fixtures).
#![no_main]

use std::sync::OnceLock;

use ctscope::decode::{self, Message};
use ctscope::model::Record;
use ctscope::filter::Filter;

fn records() -> &'static [Record] {
    static R: OnceLock<Vec<Record>> = OnceLock::new();
    R.get_or_init(|| {
        let bufs: [&[u8]; 7] = [
            include_bytes!("../../tests/fixtures/tcp_v4.bin"),
            include_bytes!("../../tests/fixtures/tcp_v6.bin"),
            include_bytes!("../../tests/fixtures/nat.bin"),
            include_bytes!("../../tests/fixtures/labels.bin"),
            include_bytes!("../../tests/fixtures/related.bin"),
            include_bytes!("../../tests/fixtures/expect.bin"),
            include_bytes!("../../tests/fixtures/expect_v6.bin"),
        ];
        bufs.iter()
            .flat_map(|b| decode::messages(b))
            .filter_map(|m| match m {
                Ok(Message::Record { record, .. }) => Some(record),
                _ => None,
            })
            .collect()
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    match Filter::parse(src) {
        Ok(f) => {
            for now in [0, 7, u32::MAX] {
                for r in records() {
                    match r {
                        Record::Flow(fl) => {
                            let _ = f.match_flow(fl, now);
                        }
                        Record::Expect(e) => {
                            let _ = f.match_expect(e, now);
                        }
                    }
                }
            }
        }
        Err(e) => {
            let _ = e.render(src);
        }
    }
});
