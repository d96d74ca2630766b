//! The real Asterisk captures (`tests/fixtures/ami/*.bin`) as call records of the PBX "office"
//! (Europe/Moscow, the zone they were captured in): for the tests that check what people see
//! of real calls (calls grouping, the excel file). The events come from `import_support`.
#![allow(dead_code)]

#[path = "../import_support/mod.rs"]
mod import_support;

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
    import_support::cdr_events(&format!("{name}.bin"))
        .iter()
        .map(|m| CallRecord::from_event(m, &ctx, 1_795_331_400))
        .collect()
}
