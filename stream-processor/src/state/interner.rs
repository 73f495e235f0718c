//! Interned segment values of one partition, and forgetting the ones nothing refers to any
//! more; rebuilding who holds each distinct user after a restore.
//!
//! Contract: an id names one value for as long as a window, a window group or a holder refers
//! to it; [`PartitionState::compact_interner`] renumbers the live ones and drops the rest, at
//! the start of an emission, once the interner doubled since the last time (O(1) per value).

use super::MIN_COMPACT_AT;
use super::{
    Acc, Group, PartitionState, WindowKey, ALL, ALL_ID, NO_VALUE, OTHER, OTHER_HOLDER, OTHER_ID,
};

/// Segment values of one partition, each stored once and referred to by id (only values kept
/// by a window group are interned; [`PartitionState::compact_interner`] forgets the others).
#[derive(Debug, Clone)]
pub(super) struct Interner {
    ids: rustc_hash::FxHashMap<String, u32>,
    pub(super) values: Vec<String>,
}

impl Interner {
    pub(super) fn new() -> Self {
        Self::from_values(vec![OTHER.to_string()])
    }

    pub(super) fn from_values(values: Vec<String>) -> Self {
        let ids = values
            .iter()
            .enumerate()
            .map(|(i, v)| (v.clone(), i as u32))
            .collect();
        Self { ids, values }
    }

    pub(super) fn get(&self, value: &str) -> Option<u32> {
        self.ids.get(value).copied()
    }

    pub(super) fn intern(&mut self, value: String) -> u32 {
        if let Some(id) = self.get(&value) {
            return id;
        }
        let id = self.values.len() as u32;
        self.ids.insert(value.clone(), id);
        self.values.push(value);
        id
    }

    pub(super) fn value(&self, id: u32) -> &str {
        if id == ALL_ID {
            return ALL;
        }
        self.values.get(id as usize).map_or("", String::as_str)
    }
}

impl PartitionState {
    /// Forgets the interned values no window or group refers to any more (values of closed
    /// windows, evicted values once their windows closed) and renumbers the others: called
    /// at the start of an emission once the interner doubled since the last time, so it costs
    /// O(1) per interned value.
    pub(super) fn compact_interner(&mut self) {
        let mut used = vec![false; self.interner.values.len()];
        used[OTHER_ID as usize] = true;
        let ids = self
            .windows
            .keys()
            .flat_map(|k| k.segment)
            .chain(self.groups.values().flat_map(Group::ids));
        for id in ids {
            if let Some(u) = used.get_mut(id as usize) {
                *u = true;
            }
        }
        let mut new_id = vec![NO_VALUE; used.len()];
        let mut values = Vec::new();
        for (old, value) in std::mem::take(&mut self.interner.values)
            .into_iter()
            .enumerate()
        {
            if used[old] {
                new_id[old] = values.len() as u32;
                values.push(value);
            }
        }
        let map = |id: u32| new_id.get(id as usize).copied().unwrap_or(id);
        let key = |k: WindowKey| WindowKey {
            segment: k.segment.map(map),
            ..k
        };
        self.interner = Interner::from_values(values);
        self.windows = std::mem::take(&mut self.windows)
            .into_iter()
            .map(|(k, w)| (key(k), w))
            .collect();
        for keys in self.closing.values_mut() {
            keys.iter_mut().for_each(|k| *k = key(*k));
        }
        self.dirty_keys.iter_mut().for_each(|k| *k = key(*k));
        for g in self.groups.values_mut() {
            g.remap(&map, &key);
        }
        for h in self.holders.values_mut() {
            h.remap(&map);
        }
        self.compact_at = (2 * self.interner.values.len()).max(MIN_COMPACT_AT);
    }

    /// Rebuilds which value holds each member of the distinct-users windows with one
    /// dimension (after a restore): from the kept windows' sets.
    pub(super) fn rebuild_holders(&mut self) {
        self.holders.clear();
        let mut keys: Vec<WindowKey> = self
            .groups
            .values()
            .flat_map(|g| g.live_of_all())
            .filter(|k| self.suffixed[k.kpi])
            .collect();
        keys.sort_unstable();
        for key in keys {
            let Some(Acc::Distinct(set)) = self.windows.get(&key).map(|w| &w.acc) else {
                continue;
            };
            let holder = match key.segment[0] {
                OTHER_ID => OTHER_HOLDER,
                id => (
                    northstar_schemas::catalog::value_hash(self.interner.value(id)),
                    id,
                ),
            };
            let h = self
                .holders
                .entry((key.kpi, key.window, key.start))
                .or_default();
            for &m in set {
                h.hold(m, holder, &self.interner);
            }
            h.changed = false;
        }
    }
}
