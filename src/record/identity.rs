//! The record's identity key: what makes two events the same call detail
//! record, so the journal stores each exactly once. Pure code, no I/O.

use super::time::wall_clock_key;
use super::{CallRecord, ENVELOPE_FIELDS};

/// Identity key (same PBX + (UniqueID, Sequence) when Sequence is mapped, else the same full
/// field content; UniqueID alone repeats across parallel dials, transfers and queue legs) over
/// raw wire fields: SHA-256 of length-prefixed parts,
/// truncated to 16 bytes. Fields are compared by raw bytes, so changing the configured charset
/// never changes an identity.
pub fn compute_identity<'a>(pbx: &str, fields: &[(&'a [u8], &'a [u8])]) -> [u8; 16] {
    use sha2::{Digest, Sha256};
    fn part(h: &mut Sha256, b: &[u8]) {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    }
    let is = |k: &[u8], name: &str| k.eq_ignore_ascii_case(name.as_bytes());
    let get = |name: &str| fields.iter().find(|(k, _)| is(k, name)).map(|(_, v)| *v);
    let mut h = Sha256::new();
    match get("Sequence").filter(|v| !v.is_empty()) {
        Some(seq) => {
            part(&mut h, b"cdrbox-identity-v1:sequence");
            part(&mut h, pbx.as_bytes());
            part(&mut h, get("UniqueID").unwrap_or(b""));
            part(&mut h, seq);
        }
        None => {
            part(&mut h, b"cdrbox-identity-v1:fields");
            part(&mut h, pbx.as_bytes());
            for (k, v) in fields {
                if ENVELOPE_FIELDS.iter().any(|e| is(k, e)) {
                    continue;
                }
                part(&mut h, &k.to_ascii_lowercase());
                part(&mut h, v);
            }
        }
    }
    let digest = h.finalize();
    // The first 4 bytes are the StartTime wall clock (seconds since 2000-01-01, big-endian),
    // so identities sort by time: the journal's UNIQUE index then grows at its tail like the
    // table does, and a commit dirties a few index pages instead of one random page per row
    // (on a months-old journal that is ~4 KiB of flash per CDR). The wall clock comes from the
    // raw bytes, not the configured zone, so a duplicate always maps to the same identity;
    // 96 bits of SHA-256 remain for telling records apart.
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&wall_clock_key(get("StartTime").unwrap_or(b"")).to_be_bytes());
    out[4..].copy_from_slice(&digest[..12]);
    out
}

impl CallRecord {
    /// The identity as 32 lowercase hex digits.
    pub fn identity_hex(&self) -> String {
        crate::hex::encode(&self.identity)
    }
}
