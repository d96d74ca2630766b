//! Regression tests for what the fuzz targets (`tests/fuzz/`) found, replayed on stable Rust
//! with the same checks, so `cargo test` keeps them fixed without nightly or cargo-fuzz.

use cdrbox::record::{CallRecord, PbxContext, DEFAULT_TRUNK_PATTERN};

fn ctx() -> PbxContext {
    PbxContext::new("fuzz", "Europe/Moscow", "utf-8", &[DEFAULT_TRUNK_PATTERN]).unwrap()
}

/// `export_roundtrip` found an event whose header `AccountCode` appears twice (the stream was
/// spliced; a `[mappings]` entry named like a standard field does the same). The JSON view
/// writes the name twice and a JSON reader keeps one; the journal stores the pairs losslessly.
#[test]
fn a_custom_field_name_sent_twice_reads_back_last_wins_in_json() {
    let seed = include_bytes!("fuzz/seeds/export_roundtrip/duplicate_custom_name");
    let r = CallRecord::from_raw(&seed[1..], &ctx(), 0).expect("the seed derives a record");
    let names: Vec<&str> = r.custom_fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names.iter().filter(|n| **n == "AccountCode").count(),
        2,
        "the record keeps both: {names:?}"
    );
    let j = r.to_json();
    let back = CallRecord::from_json(&j).unwrap();
    assert_eq!(back.to_json(), j);
    let back_names: Vec<&str> = back.custom_fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        back_names.iter().filter(|n| **n == "AccountCode").count(),
        1,
        "JSON keeps one"
    );
    // The JSON text, as exported, carries both (readers keep the last).
    let text = serde_json::to_string(&cdrbox::record::JsonRecord(&r)).unwrap();
    assert_eq!(text.matches("\"AccountCode\"").count(), 2, "{text}");
}

/// Found by the `web_query` fuzz target (crash-ec90efd4…): `?=24_` gave a 400 whose `param` was
/// empty, so the message named nothing to fix.
#[test]
fn web_query_parameter_without_a_name_is_named() {
    use cdrbox::web::query::{Params, FILTER_PARAMS};
    let err = Params::parse("=24_", &[FILTER_PARAMS]).unwrap_err();
    assert_eq!(err.param, "query");
    assert!(
        err.message.contains("no name") && err.message.contains("=24_"),
        "{err}"
    );
}

/// Found by `web_query` next: a nameless parameter whose value has a bad escape (`=%zz`) also
/// produced an empty `param`.
#[test]
fn web_query_nameless_bad_escape_is_named() {
    use cdrbox::web::query::{Params, FILTER_PARAMS};
    let err = Params::parse("=%zz", &[FILTER_PARAMS]).unwrap_err();
    assert_eq!(err.param, "query", "{err}");
}
