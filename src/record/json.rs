//! The record's JSON view (the API contract: names as VueSIP's `CdrRecord`, so its users read
//! our API directly): streaming serialisation in a fixed
//! field order, and reading it back. Pure code, no I/O.

use serde::Serialize;

use super::identity::compute_identity;
use super::{CallRecord, CdrTime, Direction, Disposition, Origin, STANDARD_FIELDS};

impl CallRecord {
    /// The JSON view (the API contract).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(JsonRecord(self)).unwrap_or(serde_json::Value::Null)
    }

    /// Reads the JSON view back. Raw bytes are not in the JSON: `raw` is empty, `received_utc`
    /// is 0, and `identity` is computed from the fields as if they had arrived as an event
    /// (equal to the wire identity for UTF-8 records with canonical times). Derived fields
    /// (`direction`, `queue`, …) are taken as given, not recomputed.
    pub fn from_json(v: &serde_json::Value) -> Result<CallRecord, RecordJsonError> {
        use serde_json::Value;
        let obj = v.as_object().ok_or(RecordJsonError::NotAnObject)?;
        let s = |name: &'static str| -> Result<String, RecordJsonError> {
            match obj.get(name) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(RecordJsonError::WrongType {
                    field: name,
                    expected: "a string",
                }),
            }
        };
        let opt = |name: &'static str| -> Result<Option<String>, RecordJsonError> {
            match obj.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(RecordJsonError::WrongType {
                    field: name,
                    expected: "a string or null",
                }),
            }
        };
        let int = |name: &'static str| -> Result<Option<i64>, RecordJsonError> {
            match obj.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => n.as_i64().map(Some).ok_or(RecordJsonError::WrongType {
                    field: name,
                    expected: "an integer",
                }),
                Some(_) => Err(RecordJsonError::WrongType {
                    field: name,
                    expected: "an integer",
                }),
            }
        };
        let direction = match opt("direction")? {
            None => Direction::Unknown,
            Some(d) => d.parse().map_err(|_| RecordJsonError::WrongType {
                field: "direction",
                expected: "inbound, outbound, internal or unknown",
            })?,
        };
        let custom_fields = match obj.get("customFields") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    _ => Err(RecordJsonError::WrongType {
                        field: "customFields",
                        expected: "an object of strings",
                    }),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => Err(RecordJsonError::WrongType {
                field: "customFields",
                expected: "an object of strings",
            })?,
        };
        let mut rec = CallRecord {
            pbx: s("pbx")?,
            unique_id: s("uniqueId")?,
            account_code: s("accountCode")?,
            source: s("source")?,
            destination: s("destination")?,
            destination_context: s("destinationContext")?,
            caller_id: s("callerId")?,
            channel: s("channel")?,
            destination_channel: s("destinationChannel")?,
            last_application: s("lastApplication")?,
            last_data: s("lastData")?,
            start: CdrTime::from_rfc3339(&s("startTime")?),
            answer: opt("answerTime")?.map(|a| CdrTime::from_rfc3339(&a)),
            end: CdrTime::from_rfc3339(&s("endTime")?),
            duration: int("duration")?.unwrap_or(0),
            billable_seconds: int("billableSeconds")?.unwrap_or(0),
            disposition: Disposition::parse(&s("disposition")?),
            ama_flags: s("amaFlags")?,
            user_field: s("userField")?,
            direction,
            ring_seconds: int("ringSeconds")?.unwrap_or(0),
            queue: opt("queue")?,
            agent: opt("agent")?,
            linked_id: opt("linkedId")?,
            sequence: int("sequence")?,
            custom_fields,
            raw: Vec::new(),
            received_utc: 0,
            identity: [0; 16],
            origin: match opt("origin")? {
                None => Origin::Ami,
                Some(o) => Origin::ALL.into_iter().find(|x| x.as_str() == o).ok_or(
                    RecordJsonError::WrongType {
                        field: "origin",
                        expected: "ami, master-csv or cdr-db",
                    },
                )?,
            },
        };
        let values = rec.standard_values();
        let mut fields: Vec<(&[u8], &[u8])> = STANDARD_FIELDS
            .iter()
            .zip(values.iter())
            .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
            .collect();
        fields.extend(
            rec.custom_fields
                .iter()
                .map(|(k, v)| (k.as_bytes(), v.as_bytes())),
        );
        rec.identity = compute_identity(&rec.pbx, &fields);
        Ok(rec)
    }
}

/// Why a JSON value is not a record view.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordJsonError {
    #[error("a call record must be a JSON object")]
    NotAnObject,
    #[error("{field}: expected {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
}

/// The JSON names of the record view, in order (a contract: scripts rely on them); also the
/// `standard` CSV columns.
pub const JSON_FIELDS: [&str; 27] = [
    "uniqueId",
    "accountCode",
    "source",
    "destination",
    "destinationContext",
    "callerId",
    "channel",
    "destinationChannel",
    "lastApplication",
    "lastData",
    "startTime",
    "answerTime",
    "endTime",
    "duration",
    "billableSeconds",
    "disposition",
    "amaFlags",
    "userField",
    "pbx",
    "direction",
    "ringSeconds",
    "queue",
    "agent",
    "linkedId",
    "sequence",
    "customFields",
    "origin",
];

/// Serializes a record as its JSON view, streaming (no intermediate `Value`). Custom fields
/// appear in wire order; a name sent twice appears twice (JSON readers keep the last).
pub struct JsonRecord<'a>(pub &'a CallRecord);

/// Custom fields as a JSON object, in order.
pub struct JsonCustomFields<'a>(pub &'a [(String, String)]);

impl Serialize for JsonCustomFields<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl Serialize for JsonRecord<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let r = self.0;
        let mut m = s.serialize_map(Some(JSON_FIELDS.len()))?;
        m.serialize_entry("uniqueId", &r.unique_id)?;
        m.serialize_entry("accountCode", &r.account_code)?;
        m.serialize_entry("source", &r.source)?;
        m.serialize_entry("destination", &r.destination)?;
        m.serialize_entry("destinationContext", &r.destination_context)?;
        m.serialize_entry("callerId", &r.caller_id)?;
        m.serialize_entry("channel", &r.channel)?;
        m.serialize_entry("destinationChannel", &r.destination_channel)?;
        m.serialize_entry("lastApplication", &r.last_application)?;
        m.serialize_entry("lastData", &r.last_data)?;
        m.serialize_entry("startTime", &r.start.rfc3339())?;
        m.serialize_entry("answerTime", &r.answer.as_ref().map(CdrTime::rfc3339))?;
        m.serialize_entry("endTime", &r.end.rfc3339())?;
        m.serialize_entry("duration", &r.duration)?;
        m.serialize_entry("billableSeconds", &r.billable_seconds)?;
        m.serialize_entry("disposition", r.disposition.as_str())?;
        m.serialize_entry("amaFlags", &r.ama_flags)?;
        m.serialize_entry("userField", &r.user_field)?;
        m.serialize_entry("pbx", &r.pbx)?;
        m.serialize_entry("direction", r.direction.as_str())?;
        m.serialize_entry("ringSeconds", &r.ring_seconds)?;
        m.serialize_entry("queue", &r.queue)?;
        m.serialize_entry("agent", &r.agent)?;
        m.serialize_entry("linkedId", &r.linked_id)?;
        m.serialize_entry("sequence", &r.sequence)?;
        m.serialize_entry("customFields", &JsonCustomFields(&r.custom_fields))?;
        m.serialize_entry("origin", r.origin.as_str())?;
        m.end()
    }
}
