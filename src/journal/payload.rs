//! How a `CallRecord` is laid out as a ring-file payload: `[version u8][json_len u32][json of
//! every field except raw][raw bytes]`. The raw event goes in as bytes (JSON would triple it),
//! which keeps a typical record well under one 4 KiB block. Pure code.

use crate::record::CallRecord;

const VERSION: u8 = 1;

/// Why a ring payload could not be turned back into a record.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("ring payload is {0} bytes, too short for its header")]
    Short(usize),
    #[error("ring payload has unknown format version {0}")]
    Version(u8),
    #[error("ring payload says its JSON part is {json} bytes but only {have} follow")]
    Length { json: usize, have: usize },
    #[error("ring payload JSON is not a call record: {0}")]
    Json(#[from] serde_json::Error),
}

/// Encodes a record for the ring.
pub fn encode(record: &CallRecord) -> Vec<u8> {
    let shallow = CallRecord {
        raw: Vec::new(),
        ..record.clone()
    };
    // Serialising a plain data struct into a Vec cannot fail (no maps with non-string keys).
    let json = serde_json::to_vec(&shallow).unwrap_or_default();
    let mut out = Vec::with_capacity(5 + json.len() + record.raw.len());
    out.push(VERSION);
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&record.raw);
    out
}

/// Decodes a ring payload.
pub fn decode(bytes: &[u8]) -> Result<CallRecord, PayloadError> {
    if bytes.len() < 5 {
        return Err(PayloadError::Short(bytes.len()));
    }
    if bytes[0] != VERSION {
        return Err(PayloadError::Version(bytes[0]));
    }
    let mut len = [0u8; 4];
    len.copy_from_slice(&bytes[1..5]);
    let json = u32::from_le_bytes(len) as usize;
    let rest = &bytes[5..];
    if json > rest.len() {
        return Err(PayloadError::Length {
            json,
            have: rest.len(),
        });
    }
    let mut record: CallRecord = serde_json::from_slice(&rest[..json])?;
    record.raw = rest[json..].to_vec();
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::testdata::sample_record;

    #[test]
    fn round_trip_keeps_every_field() {
        let r = sample_record(7);
        let bytes = encode(&r);
        assert_eq!(decode(&bytes).unwrap(), r);
        assert!(bytes.len() < 4096 - 20, "typical record fits one block");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode(&[]).is_err());
        assert!(decode(&[1, 255, 255, 255, 255]).is_err());
        assert!(decode(&[2, 0, 0, 0, 0]).is_err());
        assert!(decode(&[1, 3, 0, 0, 0, b'{', b'}', b'x']).is_err());
    }
}
