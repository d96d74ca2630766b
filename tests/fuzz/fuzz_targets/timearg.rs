//! Fuzz target: user-typed time bounds (`--from`/`--to`, `?from=`). Any text, in zones with and
//! without DST, must give a value or an error naming the accepted forms; never a panic. A bare
//! date as an upper bound must end after it starts as a lower bound.
#![no_main]

use cdrbox::timearg::{parse_time, Bound};
use jiff::tz::TimeZone;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for zone in [
        "UTC",
        "Europe/Moscow",
        "America/New_York",
        "Australia/Lord_Howe",
    ] {
        let Ok(tz) = TimeZone::get(zone) else {
            continue;
        };
        let lo = parse_time(text, &tz, Bound::Lower);
        let hi = parse_time(text, &tz, Bound::Upper);
        if let Err(e) = &lo {
            assert!(
                e.contains("@<unix seconds>"),
                "error does not name the forms: {e}"
            );
        }
        if let (Ok(lo), Ok(hi)) = (lo, hi) {
            assert!(hi >= lo, "{text:?} in {zone}: upper {hi} < lower {lo}");
        }
    }
});
