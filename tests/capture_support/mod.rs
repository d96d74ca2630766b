//! The real Asterisk captures (`tests/fixtures/ami/*.bin`) as call records of the PBX "office"
//! (Europe/Moscow, the zone they were captured in): for the tests that check what people see
//! of real calls (calls grouping, the excel file).
#![allow(dead_code)]

use bytes::BytesMut;
use cdrbox::ami::{Decoder, Frame};
use cdrbox::record::{CallRecord, PbxContext, DEFAULT_TRUNK_PATTERN};

/// Every `Event: Cdr` of `tests/fixtures/ami/NAME.bin`, in wire order.
pub fn office_records(name: &str) -> Vec<CallRecord> {
    let ctx = PbxContext::new(
        "office",
        "Europe/Moscow",
        "windows-1251",
        &[DEFAULT_TRUNK_PATTERN],
    )
    .expect("the office context");
    let path = format!(
        "{}/tests/fixtures/ami/{name}.bin",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut buf = BytesMut::from(&bytes[..]);
    let mut dec = Decoder::default();
    let mut out = Vec::new();
    while let Some(frame) = dec.decode(&mut buf) {
        if let Frame::Message(m) = frame {
            if m.is_event("Cdr") {
                out.push(CallRecord::from_event(&m, &ctx, 1_795_331_400));
            }
        }
    }
    out
}
