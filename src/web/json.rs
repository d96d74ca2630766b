//! The PRODUCT.md §2 JSON view of a record, as the web API and the live feed send it: the
//! shared view in `crate::record` (one definition for the API, the exports and the USB copy).

use serde_json::Value;

use crate::record::CallRecord;

/// The record as the §2 JSON object, names in the documented order.
pub fn record_json(r: &CallRecord) -> Value {
    r.to_json()
}
