//! Dedup segments: the remembered ids of a partition stored incrementally, as immutable
//! objects that each hold the (fingerprint, first seen) writes of one range of input offsets.
//!
//! Contract: a checkpoint adds one level-0 segment holding what the dedup set wrote since the
//! previous checkpoint (its journal), never the whole set. Segments are tiered: once a level
//! holds [`FAN_IN`] segments they are merged into one of the next level (a later write of a
//! fingerprint wins, ids expired at the merge's end offset are left out), up to [`TOP`], whose
//! segments are never merged again. A segment whose newest id has expired is dropped whole.
//! So every write is stored at most `TOP + 1` times whatever the size of the set (the cost
//! per event is flat), a partition has at most `2 · (FAN_IN - 1)` segments below the top plus
//! one top segment per `FAN_IN²` checkpoints of the dedup window, and applying the segments of
//! a chain in order, then dropping expired ids, gives back the set (`Chain` is pure; the
//! property test below checks it against the live set). Names carry the offset range and the
//! writer, so two writers never write the same object.

use serde::{Deserialize, Serialize};

/// Segments of one level merged into one of the next.
pub const FAN_IN: usize = 16;
/// The highest level: its segments only expire.
pub const TOP: u8 = 2;

const MAGIC: &[u8; 8] = b"NSDEDUP1";
const ENTRY: usize = 12;

/// One stored segment, as a manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRef {
    pub level: u8,
    /// The writes of input offsets `from..to`.
    pub from: i64,
    pub to: i64,
    /// The instance that wrote it ([`super::writer`]).
    pub writer: String,
    /// Entries stored.
    pub ids: u64,
    /// The newest first-seen time stored (unix seconds): the segment expires after it.
    pub max_at: u32,
}

impl SegmentRef {
    /// The object name within the partition's directory.
    pub fn name(&self) -> String {
        format!("s{:020}-{:020}.{}.seg", self.from, self.to, self.writer)
    }

    /// A segment holding `entries`.
    pub fn of(level: u8, from: i64, to: i64, writer: &str, entries: &[(u64, u32)]) -> Self {
        let max_at = entries.iter().map(|e| e.1).max().unwrap_or(0);
        Self::new(level, from, to, writer, entries.len() as u64, max_at)
    }

    pub fn new(level: u8, from: i64, to: i64, writer: &str, ids: u64, max_at: u32) -> Self {
        Self {
            level,
            from,
            to,
            writer: writer.to_string(),
            ids,
            max_at,
        }
    }
}

/// Writes segment bytes entry by entry: a magic, 12 bytes per entry (little endian), an XXH3
/// checksum.
pub struct Encoder {
    out: Vec<u8>,
    ids: u64,
    max_at: u32,
}

impl Encoder {
    pub fn with_capacity(entries: usize) -> Self {
        let mut out = Vec::with_capacity(MAGIC.len() + entries * ENTRY + 8);
        out.extend_from_slice(MAGIC);
        Self {
            out,
            ids: 0,
            max_at: 0,
        }
    }

    pub fn push(&mut self, fp: u64, at: u32) {
        self.out.extend_from_slice(&fp.to_le_bytes());
        self.out.extend_from_slice(&at.to_le_bytes());
        self.ids += 1;
        self.max_at = self.max_at.max(at);
    }

    /// The bytes, the entry count and the newest time.
    pub fn finish(mut self) -> (Vec<u8>, u64, u32) {
        let sum = xxhash_rust::xxh3::xxh3_64(&self.out);
        self.out.extend_from_slice(&sum.to_le_bytes());
        (self.out, self.ids, self.max_at)
    }
}

/// The bytes of a segment holding `entries`.
pub fn encode(entries: &[(u64, u32)]) -> Vec<u8> {
    let mut enc = Encoder::with_capacity(entries.len());
    for &(fp, at) in entries {
        enc.push(fp, at);
    }
    enc.finish().0
}

/// The entries part of a segment's bytes, after checking them.
fn body(bytes: &[u8]) -> Result<&[u8], String> {
    let body_len = bytes
        .len()
        .checked_sub(8)
        .filter(|n| *n >= MAGIC.len() && (n - MAGIC.len()).is_multiple_of(ENTRY))
        .ok_or_else(|| format!("{} bytes is not a dedup segment", bytes.len()))?;
    let (body, sum) = bytes.split_at(body_len);
    if &body[..MAGIC.len()] != MAGIC {
        return Err("not a dedup segment (magic)".into());
    }
    let want = u64::from_le_bytes(sum.try_into().map_err(|_| "checksum")?);
    if xxhash_rust::xxh3::xxh3_64(body) != want {
        return Err("checksum mismatch".into());
    }
    Ok(&body[MAGIC.len()..])
}

fn entry(c: &[u8]) -> (u64, u32) {
    let fp = u64::from_le_bytes(c[..8].try_into().unwrap_or_default());
    let at = u32::from_le_bytes(c[8..ENTRY].try_into().unwrap_or_default());
    (fp, at)
}

/// The entries of a segment's bytes, in stored order.
pub fn decode(bytes: &[u8]) -> Result<Vec<(u64, u32)>, String> {
    Ok(body(bytes)?.chunks_exact(ENTRY).map(entry).collect())
}

/// Sorts a journal by fingerprint, keeping each one's newest write (times only move
/// forward, so the newest is the latest): the order segments below the top are stored in.
pub fn sort_journal(journal: &mut Vec<(u64, u32)>) {
    journal.sort_unstable();
    journal.dedup_by(|later, earlier| {
        let same = later.0 == earlier.0;
        if same {
            earlier.1 = earlier.1.max(later.1);
        }
        same
    });
}

/// Merges sorted segments (bytes, in offset order) into one sorted segment: a later write of
/// a fingerprint wins, ids first seen before `cutoff` are left out. Memory: the inputs and
/// the output, 12 bytes per entry each. Returns the bytes, the entry count and the newest time.
pub fn merge(inputs: &[Vec<u8>], cutoff: u32) -> Result<(Vec<u8>, u64, u32), String> {
    use std::cmp::Reverse;
    let bodies: Vec<&[u8]> = inputs.iter().map(|b| body(b)).collect::<Result<_, _>>()?;
    let total = bodies.iter().map(|b| b.len() / ENTRY).sum();
    let mut enc = Encoder::with_capacity(total);
    // (fingerprint, input, position): equal fingerprints pop the earlier input first.
    let mut heap: std::collections::BinaryHeap<Reverse<(u64, usize, usize)>> = bodies
        .iter()
        .enumerate()
        .filter(|(_, b)| !b.is_empty())
        .map(|(i, b)| Reverse((entry(b).0, i, 0)))
        .collect();
    let mut pending: Option<(u64, u32)> = None;
    while let Some(Reverse((fp, i, pos))) = heap.pop() {
        let (_, at) = entry(&bodies[i][pos * ENTRY..]);
        match pending {
            Some((p, _)) if p == fp => pending = Some((fp, at)),
            _ => {
                if let Some((p, a)) = pending.filter(|e| e.1 >= cutoff) {
                    enc.push(p, a);
                }
                pending = Some((fp, at));
            }
        }
        if (pos + 1) * ENTRY < bodies[i].len() {
            let next = entry(&bodies[i][(pos + 1) * ENTRY..]).0;
            heap.push(Reverse((next, i, pos + 1)));
        }
    }
    if let Some((p, a)) = pending.filter(|e| e.1 >= cutoff) {
        enc.push(p, a);
    }
    Ok(enc.finish())
}

/// A merge the chain needs: `chain.segments[range]` into one segment of `level`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merge {
    pub range: std::ops::Range<usize>,
    pub level: u8,
}

/// The segments of one partition's newest checkpoint, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chain {
    pub segments: Vec<SegmentRef>,
}

impl Chain {
    /// Drops the segments whose every id is older than `cutoff`; returns them.
    pub fn expire(&mut self, cutoff: u32) -> Vec<SegmentRef> {
        let (keep, gone) = std::mem::take(&mut self.segments)
            .into_iter()
            .partition(|s| s.max_at >= cutoff);
        self.segments = keep;
        gone
    }

    /// The next merge due, lowest level first (levels are in non-increasing order along the
    /// chain, so a level's segments are contiguous).
    pub fn due(&self) -> Option<Merge> {
        (0..TOP).find_map(|level| {
            let start = self.segments.iter().position(|s| s.level == level)?;
            let n = self.segments[start..]
                .iter()
                .take_while(|s| s.level == level)
                .count();
            (n >= FAN_IN).then_some(Merge {
                range: start..start + n,
                level: level + 1,
            })
        })
    }

    /// Replaces a merge's inputs by its output (`None`: every id had expired).
    pub fn apply(&mut self, merge: &Merge, output: Option<SegmentRef>) -> Vec<SegmentRef> {
        self.segments.splice(merge.range.clone(), output).collect()
    }

    /// The segment a merge of `range` writes, holding `ids` entries up to `max_at`.
    pub fn merged_ref(&self, merge: &Merge, writer: &str, ids: u64, max_at: u32) -> SegmentRef {
        let inputs = &self.segments[merge.range.clone()];
        let from = inputs.first().map_or(0, |s| s.from);
        let to = inputs.last().map_or(0, |s| s.to);
        SegmentRef::new(merge.level, from, to, writer, ids, max_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedup::Dedup;

    #[test]
    fn bytes_round_trip_and_damage_is_refused() {
        let entries = vec![(1u64, 7u32), (u64::MAX, u32::MAX), (42, 0)];
        let bytes = encode(&entries);
        assert_eq!(bytes.len(), 8 + 3 * 12 + 8);
        assert_eq!(decode(&bytes), Ok(entries));
        let mut bad = bytes.clone();
        bad[10] ^= 1;
        assert_eq!(decode(&bad), Err("checksum mismatch".into()));
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        assert_eq!(decode(&encode(&[])), Ok(Vec::new()));
    }

    #[test]
    fn levels_merge_at_the_fan_in_and_the_top_never_does() {
        let mut chain = Chain::default();
        for i in 0..(FAN_IN * FAN_IN * 2) as i64 {
            chain
                .segments
                .push(SegmentRef::of(0, i, i + 1, "w", &[(i as u64, 1)]));
            while let Some(m) = chain.due() {
                let out = chain.merged_ref(&m, "w", 1, 1);
                chain.apply(&m, Some(out));
            }
            assert!(chain.segments.windows(2).all(|w| w[0].level >= w[1].level));
            assert!(chain.segments.windows(2).all(|w| w[0].to <= w[1].from));
            for level in 0..TOP {
                let n = chain.segments.iter().filter(|s| s.level == level).count();
                assert!(n < FAN_IN, "level {level} holds {n}");
            }
        }
        assert_eq!(chain.segments.len(), 2, "two top segments, nothing below");
        assert_eq!((chain.segments[1].from, chain.segments[1].to), (256, 512));
    }

    proptest::proptest! {
        /// Whatever the times and checkpoint points, the chain's segments applied in order
        /// (after merges and expiry) give back the live set's unexpired ids.
        #[test]
        fn a_chain_restores_the_live_set(
            window in 1u32..300,
            events in proptest::collection::vec((0u64..500, 0u32..2_000), 1..1_500),
            every in 1usize..40,
        ) {
            let mut live = Dedup::new(window);
            let mut chain = Chain::default();
            let mut store: std::collections::HashMap<String, Vec<u8>> = Default::default();
            let mut last = 0i64;
            for (i, &(id, at)) in events.iter().enumerate() {
                live.check_fingerprint(id.wrapping_mul(0x9E37_79B9_7F4A_7C15), 1_700_000_000 + at);
                let offset = i as i64 + 1;
                if !(offset as usize).is_multiple_of(every) && i + 1 != events.len() {
                    continue;
                }
                let mut journal = live.take_journal();
                sort_journal(&mut journal);
                if !journal.is_empty() {
                    let seg = SegmentRef::of(0, last, offset, "w", &journal);
                    store.insert(seg.name(), encode(&journal));
                    chain.segments.push(seg);
                }
                last = offset;
                let cutoff = live.cutoff_secs();
                while let Some(m) = chain.due() {
                    let inputs: Vec<Vec<u8>> = chain.segments[m.range.clone()].iter().map(|s| store[&s.name()].clone()).collect();
                    let (out, ids, max_at) = merge(&inputs, cutoff).expect("merge");
                    let stored = decode(&out).expect("decode");
                    proptest::prop_assert!(stored.windows(2).all(|w| w[0].0 < w[1].0), "sorted, unique");
                    let r = (ids > 0).then(|| chain.merged_ref(&m, "w", ids, max_at));
                    if let Some(r) = &r {
                        store.insert(r.name(), out);
                    }
                    chain.apply(&m, r);
                }
                chain.expire(cutoff);
                let mut restored = live.without_ids();
                for s in &chain.segments {
                    restored.apply(decode(&store[&s.name()]).expect("decode"));
                }
                restored.sweep();
                let mut want: Vec<_> = live.entries().filter(|e| e.1 >= cutoff).collect();
                let mut got: Vec<_> = restored.entries().collect();
                want.sort_unstable();
                got.sort_unstable();
                proptest::prop_assert_eq!(got, want, "at offset {}", offset);
            }
        }
    }
}
