//! Segment admission per window in one partition (ADR 0013).
//!
//! Contract: per (admission class, window length, start) and dimension, a partition keeps the
//! up to `cap` values it counted in that window that come first by
//! [`northstar_schemas::catalog::admission::rank`], each with exact windows of its own; the
//! other values fold into [`OTHER`]. A value that ranks before the last of a full set evicts
//! it: the evicted value's windows are merged into their `__other__` windows and left empty
//! (emitted as 0 until they close, so a reader replaces what they held), and it cannot come
//! back in that window (every value kept ranks before it). A reader that merges every
//! partition's records by [`northstar_schemas::catalog::Admitted`] gets exact values for the
//! globally admitted values and for `__other__`: a globally admitted value ranks among the
//! first `cap` of every partition that saw it, so none of them evicted it. Totals are not
//! touched: an eviction moves counts between segments of the same group. Which windows are
//! evicted is checkpointed; the kept values are rebuilt from the windows on restore (every
//! kept value has a window), and evicted down to the cap if a catalog edit merged classes.

use std::borrow::Cow;
use std::collections::HashMap;

use northstar_schemas::catalog::value_hash;
use smallvec::SmallVec;

use super::acc::{Acc, Unfolded, Window, CLEAN};
use super::{total_segment, Interner, PartitionState, WindowKey, OTHER_ID};

/// (admission class, window length ms, window start ms).
pub(super) type GroupKey = (usize, i64, i64);

/// A segment dimension read from one event: its value's id once interned (or the value
/// before), and the value's hash.
#[derive(Debug)]
pub(super) struct Slot<'a> {
    pub(super) id: Result<u32, Cow<'a, str>>,
    pub(super) hash: u64,
}

impl<'a> Slot<'a> {
    pub(super) fn new(raw: Cow<'a, str>, interner: &Interner) -> Self {
        let hash = value_hash(&raw);
        let id = interner.get(&raw).ok_or(raw);
        Slot { id, hash }
    }
}

/// The admission state of one window group.
#[derive(Debug, Clone)]
pub(super) struct Group {
    key: GroupKey,
    /// Per dimension: the kept values as (hash, id), in rank order.
    dims: SmallVec<[Vec<(u64, u32)>; 2]>,
    /// The group's segment windows that are not evicted.
    live: Vec<WindowKey>,
}

impl Group {
    fn new(key: GroupKey, dims: usize) -> Self {
        Group {
            key,
            dims: (0..dims).map(|_| Vec::new()).collect(),
            live: Vec::new(),
        }
    }

    /// The kept windows of KPI `kpi`, window `window`.
    pub(super) fn live_of(&self, kpi: usize, window: usize) -> Vec<WindowKey> {
        self.live
            .iter()
            .filter(|k| k.kpi == kpi && k.window == window)
            .copied()
            .collect()
    }

    /// Every kept window.
    pub(super) fn live_of_all(&self) -> impl Iterator<Item = WindowKey> + '_ {
        self.live.iter().copied()
    }

    /// Every value id the group refers to.
    pub(super) fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.dims.iter().flatten().map(|&(_, id)| id)
    }

    pub(super) fn remap(
        &mut self,
        map: &impl Fn(u32) -> u32,
        key: &impl Fn(WindowKey) -> WindowKey,
    ) {
        for set in &mut self.dims {
            for (_, id) in set.iter_mut() {
                *id = map(*id);
            }
        }
        for k in &mut self.live {
            *k = key(*k);
        }
    }
}

/// The id of `slot`'s value in the rank-ordered `set` capped at `cap`: kept, newly kept
/// (interned; second element: the value it evicted, if any), or [`OTHER_ID`].
#[inline]
fn admit_in(
    set: &mut Vec<(u64, u32)>,
    interner: &mut Interner,
    slot: &mut Slot<'_>,
    cap: usize,
) -> (u32, Option<u32>) {
    // Kept values first: one pass over the (few) hashes.
    if let Ok(mine) = slot.id {
        if let Some(&(_, id)) = set.iter().find(|&&(h, id)| h == slot.hash && id == mine) {
            return (id, None);
        }
    }
    let found = {
        let mine = slot.id.as_ref().ok().copied();
        let value = match &slot.id {
            Ok(id) => interner.value(*id),
            Err(raw) => raw.as_ref(),
        };
        set.binary_search_by(|&(h, id)| {
            h.cmp(&slot.hash).then_with(|| {
                if Some(id) == mine {
                    std::cmp::Ordering::Equal
                } else {
                    interner.value(id).cmp(value)
                }
            })
        })
    };
    let pos = match found {
        Ok(i) => return (set[i].1, None),
        Err(pos) if pos >= cap => return (OTHER_ID, None),
        Err(pos) => pos,
    };
    let id = match &mut slot.id {
        Ok(id) => *id,
        Err(raw) => {
            let id = interner.intern(std::mem::take(raw).into_owned());
            slot.id = Ok(id);
            id
        }
    };
    set.insert(pos, (slot.hash, id));
    let evicted = (set.len() > cap)
        .then(|| set.pop().map(|(_, e)| e))
        .flatten();
    (id, evicted)
}

/// Every window group of a partition: a slab, indexed by key, with the group each (KPI,
/// window) used last remembered, since an event's windows are nearly always the newest ones
/// (one comparison per window instead of a hash lookup).
#[derive(Debug, Default)]
pub(super) struct Groups {
    slab: Vec<Option<Group>>,
    index: HashMap<GroupKey, u32, rustc_hash::FxBuildHasher>,
    free: Vec<u32>,
    /// Per (KPI, window) slot: the slab index it used last.
    recent: Vec<u32>,
}

impl Groups {
    /// Groups for `slots` (KPI, window) pairs.
    pub(super) fn new(slots: usize) -> Self {
        Groups {
            recent: vec![u32::MAX; slots],
            ..Groups::default()
        }
    }

    /// The group `gk` (created with `dims` dimensions if new), for (KPI, window) slot `slot`.
    #[inline]
    fn get_or_insert(&mut self, slot: usize, gk: GroupKey, dims: usize) -> &mut Group {
        let cached = self.recent.get(slot).copied().unwrap_or(u32::MAX);
        let hit = self
            .slab
            .get(cached as usize)
            .and_then(Option::as_ref)
            .is_some_and(|g| g.key == gk);
        let i = if hit {
            cached
        } else {
            let i = match self.index.get(&gk) {
                Some(&i) => i,
                None => {
                    let group = Some(Group::new(gk, dims));
                    let i = match self.free.pop() {
                        Some(i) => {
                            self.slab[i as usize] = group;
                            i
                        }
                        None => {
                            self.slab.push(group);
                            (self.slab.len() - 1) as u32
                        }
                    };
                    self.index.insert(gk, i);
                    i
                }
            };
            if let Some(r) = self.recent.get_mut(slot) {
                *r = i;
            }
            i
        };
        #[allow(clippy::expect_used)]
        self.slab[i as usize]
            .as_mut()
            .expect("an indexed group is in the slab")
    }

    pub(super) fn get(&self, gk: &GroupKey) -> Option<&Group> {
        let i = *self.index.get(gk)?;
        self.slab.get(i as usize)?.as_ref()
    }

    pub(super) fn get_mut(&mut self, gk: &GroupKey) -> Option<&mut Group> {
        let i = *self.index.get(gk)?;
        self.slab.get_mut(i as usize)?.as_mut()
    }

    pub(super) fn remove(&mut self, gk: &GroupKey) {
        if let Some(i) = self.index.remove(gk) {
            self.slab[i as usize] = None;
            self.free.push(i);
        }
    }

    pub(super) fn clear(&mut self) {
        self.slab.clear();
        self.index.clear();
        self.free.clear();
        self.recent.fill(u32::MAX);
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &Group> {
        self.slab.iter().flatten()
    }

    pub(super) fn values_mut(&mut self) -> impl Iterator<Item = &mut Group> {
        self.slab.iter_mut().flatten()
    }
}

/// Where `(hash, value)` goes in a rank-ordered set.
fn position(set: &[(u64, u32)], interner: &Interner, hash: u64, value: &str) -> usize {
    set.partition_point(|&(h, id)| (h, interner.value(id)) < (hash, value))
}

impl PartitionState {
    /// The group key of window `key`.
    pub(super) fn group_key(&self, key: &WindowKey) -> GroupKey {
        let ms = self.catalog.kpis[key.kpi].windows[key.window].millis;
        (self.classes[key.kpi], ms, key.start)
    }

    /// The ids of the values at `slots` of `fields` in the dimensions of group `gk` (an event
    /// of a KPI with `dims` dimensions capped at `cap`): kept, newly kept (interned), or
    /// [`OTHER_ID`]; the values they evicted, by dimension, go to `evicted`. One group lookup
    /// per window, one binary search by rank per dimension.
    #[inline]
    pub(super) fn admit(
        &mut self,
        (slot, gk): (usize, GroupKey),
        (dims, cap): (usize, usize),
        slots: &[usize],
        fields: &mut [super::FieldSlot<'_>],
        evicted: &mut SmallVec<[(usize, u32); 2]>,
    ) -> super::SegmentIds {
        let Self {
            groups, interner, ..
        } = self;
        let group = groups.get_or_insert(slot, gk, dims);
        let mut segment = [super::NO_VALUE; super::MAX_SEGMENTS];
        for (di, set) in group.dims.iter_mut().enumerate().take(dims) {
            let slot = &mut fields[slots[di]].1;
            let (id, gone) = admit_in(set, interner, slot, cap);
            segment[di] = id;
            if let Some(e) = gone {
                evicted.push((di, e));
            }
        }
        segment
    }

    /// Notes a new segment window of its group.
    pub(super) fn note_live(&mut self, gk: GroupKey, key: WindowKey) {
        if let Some(g) = self.groups.get_mut(&gk) {
            g.live.push(key);
        }
    }

    /// Moves what the windows of group `gk` with `evicted` in dimension `dim` hold into their
    /// `__other__` windows, and leaves them empty.
    pub(super) fn evict(&mut self, gk: GroupKey, dim: usize, evicted: u32) {
        let Some(group) = self.groups.get_mut(&gk) else {
            return;
        };
        let (gone, kept): (Vec<WindowKey>, Vec<WindowKey>) = std::mem::take(&mut group.live)
            .into_iter()
            .partition(|k| k.segment[dim] == evicted);
        group.live = kept;
        for (k, kpi) in self.catalog.kpis.iter().enumerate() {
            if !self.suffixed[k] || self.classes[k] != gk.0 {
                continue;
            }
            let Some(w) = kpi.windows.iter().position(|w| w.millis == gk.1) else {
                continue;
            };
            if let Some(h) = self.holders.get_mut(&(k, w, gk.2)) {
                h.evict(evicted);
            }
        }
        for from in gone {
            let mut to = from;
            to.segment[dim] = OTHER_ID;
            self.retire(gk, from, to);
        }
    }

    /// Empties window `from` into `to` (created if new): its total keeps what it had.
    fn retire(&mut self, gk: GroupKey, from: WindowKey, to: WindowKey) {
        self.settle_total(from);
        let aggregation = &self.catalog.kpis[from.kpi].aggregation;
        let Some(w) = self.windows.get_mut(&from) else {
            return;
        };
        let held = std::mem::replace(&mut w.acc, Acc::empty(aggregation));
        if w.dirty == CLEAN {
            w.dirty = self.dirty_keys.len() as u32;
            self.dirty_keys.push(from);
            self.unfolded.push(Unfolded::Nothing);
        }
        let mut created = false;
        let target = self.windows.entry(to).or_insert_with(|| {
            created = true;
            Window::new(Acc::empty(aggregation))
        });
        let moved = held.amount();
        target.acc.absorb(held);
        if target.dirty == CLEAN {
            target.dirty = self.dirty_keys.len() as u32;
            self.dirty_keys.push(to);
            self.unfolded.push(target.acc.unfolded());
        } else if let Unfolded::Since(base) = &mut self.unfolded[target.dirty as usize] {
            // What moved in is in the total already.
            *base += moved;
        }
        if created {
            self.index_new(to);
            self.note_live(gk, to);
        }
    }

    /// Folds what segment window `key` gained since the last emission into its total now.
    pub(super) fn settle_total(&mut self, key: WindowKey) {
        let Some(dirty) = self.windows.get(&key).map(|w| w.dirty) else {
            return;
        };
        if dirty == CLEAN {
            return;
        }
        let gained = std::mem::take(&mut self.unfolded[dirty as usize]);
        if matches!(gained, Unfolded::Nothing) {
            return;
        }
        let kpi = &self.catalog.kpis[key.kpi];
        let total = WindowKey {
            segment: total_segment(kpi.segments.len()),
            ..key
        };
        let aggregation = kpi.aggregation.clone();
        self.add_to(total, &aggregation, super::Contribution::None, false);
        if let [Some(segment), Some(total)] = self.windows.get_disjoint_mut([&key, &total]) {
            total.acc.fold(&gained, &segment.acc);
        }
    }

    /// The segment windows that were evicted (what a checkpoint records).
    pub(super) fn evicted_windows(&self) -> Vec<WindowKey> {
        let live: std::collections::HashSet<&WindowKey> =
            self.groups.values().flat_map(|g| &g.live).collect();
        let mut out: Vec<WindowKey> = self
            .windows
            .keys()
            .filter(|k| self.is_segment_window(k) && !live.contains(k))
            .copied()
            .collect();
        out.sort_unstable();
        out
    }

    fn is_segment_window(&self, key: &WindowKey) -> bool {
        let dims = self.catalog.kpis[key.kpi].segments.len();
        dims > 0 && key.segment != total_segment(dims)
    }

    /// Rebuilds every group from the windows that are not `evicted` (after a restore), then
    /// evicts down to the caps where a set is over (classes merged by a catalog edit).
    pub(super) fn rebuild_groups(&mut self, evicted: &[WindowKey]) {
        self.groups.clear();
        let evicted: std::collections::HashSet<&WindowKey> = evicted.iter().collect();
        let mut keys: Vec<WindowKey> = self
            .windows
            .keys()
            .filter(|k| self.is_segment_window(k) && !evicted.contains(k))
            .copied()
            .collect();
        keys.sort_unstable();
        for key in keys {
            let gk = self.group_key(&key);
            let dims = self.catalog.kpis[key.kpi].segments.len();
            let Self {
                groups, interner, ..
            } = self;
            let slot = self.window_slots[key.kpi] + key.window;
            let group = groups.get_or_insert(slot, gk, dims);
            group.live.push(key);
            for (set, &id) in group.dims.iter_mut().zip(&key.segment[..dims]) {
                if id == OTHER_ID || set.iter().any(|&(_, m)| m == id) {
                    continue;
                }
                let value = interner.value(id);
                let hash = value_hash(value);
                let pos = position(set, interner, hash, value);
                set.insert(pos, (hash, id));
            }
        }
        let mut over: Vec<(GroupKey, usize, u32)> = Vec::new();
        for g in self.groups.values() {
            let gk = &g.key;
            let cap = self.catalog.kpis[gk.0].max_segment_values;
            for (d, set) in g.dims.iter().enumerate() {
                over.extend(set.iter().skip(cap).map(|&(_, id)| (*gk, d, id)));
            }
        }
        over.sort_unstable();
        for (gk, d, id) in over {
            if let Some(set) = self.groups.get_mut(&gk).map(|g| &mut g.dims[d]) {
                set.retain(|&(_, m)| m != id);
            }
            self.evict(gk, d, id);
        }
    }
}
