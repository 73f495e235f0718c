//! Confluent wire format: `0x00`, a 4-byte big-endian schema id, then the Avro binary datum.
//!
//! Contract: [`frame`] and [`split`] are exact inverses; `split` never panics on any input.

/// A payload that is not Confluent wire format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("record is {0} bytes, shorter than the 5-byte wire-format header")]
    TooShort(usize),
    #[error("unknown magic byte {0:#04x} (expected 0x00)")]
    BadMagic(u8),
}

/// The magic byte of Confluent wire format.
pub const MAGIC: u8 = 0;

/// Prepends the wire-format header for `schema_id` to `datum`.
pub fn frame(schema_id: u32, datum: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + datum.len());
    put_header(&mut out, schema_id);
    out.extend_from_slice(datum);
    out
}

/// Appends the wire-format header (magic byte, schema id) to `out`: the datum follows.
pub fn put_header(out: &mut Vec<u8>, schema_id: u32) {
    out.push(MAGIC);
    out.extend_from_slice(&schema_id.to_be_bytes());
}

/// Splits a wire-format record into its schema id and Avro datum.
pub fn split(record: &[u8]) -> Result<(u32, &[u8]), WireError> {
    if record.len() < 5 {
        return Err(WireError::TooShort(record.len()));
    }
    if record[0] != MAGIC {
        return Err(WireError::BadMagic(record[0]));
    }
    let id = u32::from_be_bytes([record[1], record[2], record[3], record[4]]);
    Ok((id, &record[5..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_then_split_round_trips() {
        let framed = frame(0x01020304, b"abc");
        assert_eq!(framed, [0, 1, 2, 3, 4, b'a', b'b', b'c']);
        assert_eq!(split(&framed), Ok((0x01020304, &b"abc"[..])));
    }

    #[test]
    fn rejects_short_and_bad_magic() {
        assert_eq!(split(b"\0\0\0"), Err(WireError::TooShort(3)));
        assert_eq!(split(b"{\"a\":1}"), Err(WireError::BadMagic(b'{')));
    }
}
