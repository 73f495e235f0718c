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
        Self {
            level,
            from,
            to,
            writer: writer.to_string(),
            ids: entries.len() as u64,
            max_at: entries.iter().map(|e| e.1).max().unwrap_or(0),
        }
    }
}

/// The bytes of a segment: a magic, 12 bytes per entry (little endian), an XXH3 checksum.
pub fn encode(entries: &[(u64, u32)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + entries.len() * ENTRY + 8);
    out.extend_from_slice(MAGIC);
    for (fp, at) in entries {
        out.extend_from_slice(&fp.to_le_bytes());
        out.extend_from_slice(&at.to_le_bytes());
    }
    let sum = xxhash_rust::xxh3::xxh3_64(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// The entries of a segment's bytes, in stored order.
pub fn decode(bytes: &[u8]) -> Result<Vec<(u64, u32)>, String> {
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
    Ok(body[MAGIC.len()..]
        .chunks_exact(ENTRY)
        .map(|c| {
            let fp = u64::from_le_bytes(c[..8].try_into().unwrap_or_default());
            let at = u32::from_le_bytes(c[8..].try_into().unwrap_or_default());
            (fp, at)
        })
        .collect())
}

/// Merges segments' entries given in offset order: a later write of a fingerprint wins, ids
/// first seen before `cutoff` are left out.
pub fn merge(inputs: impl IntoIterator<Item = Vec<(u64, u32)>>, cutoff: u32) -> Vec<(u64, u32)> {
    let mut latest: std::collections::HashMap<
        u64,
        u32,
        std::hash::BuildHasherDefault<crate::dedup::IdentityHasher>,
    > = Default::default();
    for entries in inputs {
        latest.reserve(entries.len());
        latest.extend(entries);
    }
    latest.into_iter().filter(|e| e.1 >= cutoff).collect()
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

    /// The output a merge of `range` writes, before its entries are known.
    pub fn merged_ref(&self, merge: &Merge, writer: &str, entries: &[(u64, u32)]) -> SegmentRef {
        let inputs = &self.segments[merge.range.clone()];
        let from = inputs.first().map_or(0, |s| s.from);
        let to = inputs.last().map_or(0, |s| s.to);
        SegmentRef::of(merge.level, from, to, writer, entries)
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
                let out = chain.merged_ref(&m, "w", &[(0, 1)]);
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
            let mut store: std::collections::HashMap<String, Vec<(u64, u32)>> = Default::default();
            let mut last = 0i64;
            for (i, &(id, at)) in events.iter().enumerate() {
                live.check_fingerprint(id.wrapping_mul(0x9E37_79B9_7F4A_7C15), 1_700_000_000 + at);
                let offset = i as i64 + 1;
                if !(offset as usize).is_multiple_of(every) && i + 1 != events.len() {
                    continue;
                }
                let journal = live.take_journal();
                if !journal.is_empty() {
                    let seg = SegmentRef::of(0, last, offset, "w", &journal);
                    store.insert(seg.name(), journal);
                    chain.segments.push(seg);
                }
                last = offset;
                let cutoff = live.cutoff_secs();
                while let Some(m) = chain.due() {
                    let inputs = chain.segments[m.range.clone()].iter().map(|s| store[&s.name()].clone());
                    let out = merge(inputs.collect::<Vec<_>>(), cutoff);
                    let r = (!out.is_empty()).then(|| chain.merged_ref(&m, "w", &out));
                    if let Some(r) = &r {
                        store.insert(r.name(), out);
                    }
                    chain.apply(&m, r);
                }
                chain.expire(cutoff);
                let mut restored = live.without_ids();
                for s in &chain.segments {
                    restored.apply(store[&s.name()].iter().copied());
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
