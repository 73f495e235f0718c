//! A hand-written Avro binary reader/writer for the v1 event envelope (the hot path).
//!
//! Contract: byte-for-byte the Avro binary encoding of `avro/event-v1.avsc` — the same bytes
//! apache-avro's generic writer produces, and it reads whatever that writer produces (checked by
//! the tests against apache-avro). Only for data written with exactly the v1 schema; other
//! writer schemas go through apache-avro's schema resolution. Never panics on bad bytes.

use crate::{CodecError, Event, EventType};

pub(crate) fn put_long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_long(out, s.len() as i64);
    out.extend_from_slice(s.as_bytes());
}

fn put_opt_str(out: &mut Vec<u8>, s: &Option<String>) {
    match s {
        None => put_long(out, 0),
        Some(s) => {
            put_long(out, 1);
            put_str(out, s);
        }
    }
}

fn put_opt_long(out: &mut Vec<u8>, v: Option<i64>) {
    match v {
        None => put_long(out, 0),
        Some(v) => {
            put_long(out, 1);
            put_long(out, v);
        }
    }
}

/// Appends the Avro datum of `e` to `out`.
pub fn write(e: &Event, out: &mut Vec<u8>) {
    put_long(out, e.kind as i64);
    put_str(out, &e.message_id);
    put_opt_str(out, &e.user_id);
    put_opt_str(out, &e.anonymous_id);
    put_opt_str(out, &e.event);
    put_opt_str(out, &e.name);
    put_opt_str(out, &e.group_id);
    put_opt_str(out, &e.previous_id);
    put_long(out, e.timestamp);
    put_opt_long(out, e.original_timestamp);
    put_opt_long(out, e.sent_at);
    put_long(out, e.received_at);
    put_str(out, &e.context);
    put_str(out, &e.properties);
    put_str(out, &e.traits);
    put_str(out, &e.integrations);
    put_str(out, &e.source_id);
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn bad(field: &'static str, problem: &str) -> CodecError {
    CodecError::Field {
        field,
        problem: problem.to_string(),
    }
}

impl<'a> Reader<'a> {
    fn long(&mut self, field: &'static str) -> Result<i64, CodecError> {
        let mut z: u64 = 0;
        let mut shift = 0;
        loop {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| bad(field, "truncated varint"))?;
            self.pos += 1;
            if shift == 63 && b > 1 {
                return Err(bad(field, "varint overflows 64 bits"));
            }
            z |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 63 {
                return Err(bad(field, "varint too long"));
            }
        }
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    fn string(&mut self, field: &'static str) -> Result<String, CodecError> {
        let len = self.long(field)?;
        let len = usize::try_from(len).map_err(|_| bad(field, "negative string length"))?;
        let end = self
            .pos
            .checked_add(len)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| bad(field, "truncated string"))?;
        let s = std::str::from_utf8(&self.buf[self.pos..end])
            .map_err(|_| bad(field, "string is not UTF-8"))?;
        self.pos = end;
        Ok(s.to_string())
    }

    fn branch(&mut self, field: &'static str) -> Result<bool, CodecError> {
        match self.long(field)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(bad(field, "union branch out of range")),
        }
    }

    fn opt_string(&mut self, field: &'static str) -> Result<Option<String>, CodecError> {
        if self.branch(field)? {
            self.string(field).map(Some)
        } else {
            Ok(None)
        }
    }

    fn opt_long(&mut self, field: &'static str) -> Result<Option<i64>, CodecError> {
        if self.branch(field)? {
            self.long(field).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// Reads a datum written with exactly the v1 schema; the whole input must be consumed.
pub fn read(datum: &[u8]) -> Result<Event, CodecError> {
    let mut r = Reader { buf: datum, pos: 0 };
    let kind = usize::try_from(r.long("type")?)
        .ok()
        .and_then(|i| EventType::ALL.get(i).copied())
        .ok_or_else(|| bad("type", "enum index out of range"))?;
    let e = Event {
        kind,
        message_id: r.string("messageId")?,
        user_id: r.opt_string("userId")?,
        anonymous_id: r.opt_string("anonymousId")?,
        event: r.opt_string("event")?,
        name: r.opt_string("name")?,
        group_id: r.opt_string("groupId")?,
        previous_id: r.opt_string("previousId")?,
        timestamp: r.long("timestamp")?,
        original_timestamp: r.opt_long("originalTimestamp")?,
        sent_at: r.opt_long("sentAt")?,
        received_at: r.long("receivedAt")?,
        context: r.string("context")?,
        properties: r.string("properties")?,
        traits: r.string("traits")?,
        integrations: r.string("integrations")?,
        source_id: r.string("sourceId")?,
    };
    if r.pos != datum.len() {
        return Err(CodecError::Avro(format!(
            "{} trailing bytes after the datum",
            datum.len() - r.pos
        )));
    }
    Ok(e)
}
