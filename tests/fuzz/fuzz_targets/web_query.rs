//! Fuzz target: the web API's query-string and settings-form parsers. Any query string must give
//! parameters or a 400 naming a parameter (never a panic, never an unnamed error); any JSON body
//! for `PUT /api/config` must either be refused naming a field or produce a config text that
//! `Config::parse` judges (accepts, or refuses naming the key) — never a panic.
#![no_main]

use cdrbox::web::query::{Params, FILTER_PARAMS};
use jiff::tz::TimeZone;
use libfuzzer_sys::fuzz_target;

const PAGE: &[&str] = &["limit", "offset", "sort", "profile", "sla"];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Params::parse(text, &[FILTER_PARAMS, PAGE]) {
        Err(e) => assert!(!e.param.is_empty() || text.is_empty(), "unnamed error: {e}"),
        Ok(p) => {
            let tz = TimeZone::get("Europe/Berlin").unwrap_or(TimeZone::UTC);
            for r in [
                p.filter(&tz).map(|_| ()),
                p.sort().map(|_| ()),
                p.page().map(|_| ()),
                p.profile(&["standard".into(), "excel".into()]).map(|_| ()),
            ] {
                if let Err(e) = r {
                    assert!(!e.param.is_empty(), "unnamed error: {e}");
                }
            }
        }
    }
    if let Ok(changes) = serde_json::from_str::<serde_json::Value>(text) {
        if let Ok(new_text) =
            cdrbox::web::settings::apply_changes(cdrbox::config::DEFAULT_TOML, &changes)
        {
            let _ = cdrbox::config::Config::parse(&new_text, "fuzz");
        }
    }
});
