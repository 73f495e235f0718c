//! Per-partition processing state: the dedup set and the KPI windows of the catalog.
//!
//! Contract: pure and deterministic — the same input records in the same order give the same
//! state and the same emitted updates (sorted), whatever the wall clock says. Windows are
//! tumbling windows by event time; a partition's watermark is the largest event time it has
//! seen; a window is final once the watermark passes its end plus the allowed lateness, and an
//! event for a final window is counted as late-dropped for that KPI, never silently. Segment
//! values are admitted per window: the first by rank up to a dimension's cap ([`admission`],
//! ADR 0013), so that every partition agrees once readers merge them; the others fold into
//! `__other__` and are counted. Every segmented KPI also has an exact all-segments total
//! (segment values [`ALL`]), kept as a window of its own: a count or sum adds up, a
//! distinct-users total keeps its own set (a user in several segments counts once), a ratio's
//! total divides its sides' totals. Events update only their segment windows, which note what
//! they gained; emission folds that into the totals first ([`emit`]), so a total costs once per
//! changed segment window and emission, not once per event. Deduplication is bounded by a time
//! window ([`Dedup`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use northstar_schemas::Event;
use serde::{Deserialize, Serialize};

use smallvec::SmallVec;

use crate::catalog::{
    scalar_fixed_point, Aggregation, Catalog, EventView, Matches, ALL, MAX_SEGMENTS, OTHER,
};
use crate::dedup::Dedup;
use crate::members::MemberKey;
pub use acc::Acc;
use acc::{Contribution, Unfolded, Window, CLEAN};
use admission::{Group, GroupKey, Groups, Slot};
pub use emit::{Emitted, Source};
pub use evolve::KpiMeta;
use holders::{Holders, OTHER_HOLDER};
use interner::Interner;

/// A segment dimension read from one event: its name and its value.
type FieldSlot<'a> = (&'a str, Slot<'a>);

/// Interned segment values of one window, in the KPI's dimension order; unused slots hold
/// [`NO_VALUE`].
type SegmentIds = [u32; MAX_SEGMENTS];

/// An unused segment slot.
const NO_VALUE: u32 = u32::MAX;

/// Interned values below which the interner is never compacted.
const MIN_COMPACT_AT: usize = 4096;

/// The id of [`OTHER`] in every partition's interner.
const OTHER_ID: u32 = 0;

/// The id of [`ALL`] (never interned: a client's value cannot be spelled like it).
const ALL_ID: u32 = u32::MAX - 1;

/// The segment ids of a KPI's all-segments total with `dims` dimensions.
fn total_segment(dims: usize) -> SegmentIds {
    let mut ids = [NO_VALUE; MAX_SEGMENTS];
    ids[..dims].fill(ALL_ID);
    ids
}

/// (kpi index, window index, window start ms, segment value ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WindowKey {
    kpi: usize,
    window: usize,
    start: i64,
    segment: SegmentIds,
}

/// Hashed as four words (once or twice per event, KPI and window: the derived hash writes
/// seven values and the array's length).
impl std::hash::Hash for WindowKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        const _: () = assert!(MAX_SEGMENTS == 4, "WindowKey's hash packs four segment ids");
        let pair = |a: u32, b: u32| u64::from(a) | (u64::from(b) << 32);
        state.write_u64((self.kpi as u64) ^ ((self.window as u64) << 32));
        state.write_i64(self.start);
        state.write_u64(pair(self.segment[0], self.segment[1]));
        state.write_u64(pair(self.segment[2], self.segment[3]));
    }
}

/// The serializable part of a partition's state (what a checkpoint stores). Windows are taken
/// right after an emission, so none is dirty.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateSnapshot {
    dedup: Dedup,
    /// The KPIs of the catalog the snapshot was taken with, by index (what `windows` and
    /// `admitted` refer to).
    kpis: Vec<KpiMeta>,
    windows: Vec<(WindowKey, Acc)>,
    /// The interned segment values, in id order.
    segment_values: Vec<String>,
    /// The segment windows whose value was evicted from its group ([`admission`]): empty,
    /// emitted as 0 until they close.
    evicted: Vec<WindowKey>,
    watermark_ms: i64,
    /// Events dropped as too late, by KPI name (totals since the partition started).
    late_dropped: Vec<(String, u64)>,
}

/// A snapshot in checkpoint format 3 (before admission per window): segment values were
/// admitted per partition and KPI for good (`admitted`, ignored now).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateSnapshotV3 {
    dedup: Dedup,
    kpis: Vec<KpiMeta>,
    windows: Vec<(WindowKey, Acc)>,
    segment_values: Vec<String>,
    admitted: Vec<Vec<Vec<u32>>>,
    watermark_ms: i64,
    late_dropped: Vec<(String, u64)>,
}

/// A snapshot in checkpoint format 2 (before per-KPI fingerprints): the same fields without
/// [`StateSnapshot::kpis`] (the whole catalog had one fingerprint, in the envelope).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateSnapshotV2 {
    dedup: Dedup,
    windows: Vec<(WindowKey, Acc)>,
    segment_values: Vec<String>,
    admitted: Vec<Vec<Vec<u32>>>,
    watermark_ms: i64,
    late_dropped: Vec<(String, u64)>,
}

impl StateSnapshot {
    /// The dedup set (a manifest's holds no ids: they are added from its segments).
    pub fn dedup_mut(&mut self) -> &mut Dedup {
        &mut self.dedup
    }

    /// The names of the KPIs the snapshot holds state for.
    pub fn kpi_names(&self) -> Vec<String> {
        self.kpis.iter().map(|m| m.name.clone()).collect()
    }
}

impl StateSnapshotV2 {
    /// The snapshot in the current format, its KPIs described by `kpis` (by index).
    pub fn upgrade(self, kpis: Vec<KpiMeta>) -> StateSnapshot {
        StateSnapshotV3 {
            dedup: self.dedup,
            kpis,
            windows: self.windows,
            segment_values: self.segment_values,
            admitted: self.admitted,
            watermark_ms: self.watermark_ms,
            late_dropped: self.late_dropped,
        }
        .upgrade()
    }
}

impl StateSnapshotV3 {
    /// The snapshot in the current format: no window was evicted (the values each window
    /// holds become its groups' kept values; windows open at the upgrade keep what the old
    /// rule admitted).
    pub fn upgrade(self) -> StateSnapshot {
        StateSnapshot {
            dedup: self.dedup,
            kpis: self.kpis,
            windows: self.windows,
            segment_values: self.segment_values,
            evicted: Vec::new(),
            watermark_ms: self.watermark_ms,
            late_dropped: self.late_dropped,
        }
    }
}

/// One KPI value to emit, with its strings ([`PartitionState::drain_updates`]; the pipeline
/// encodes an [`Emitted`] through [`PartitionState::view`] instead).
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub kpi: usize,
    /// Window length in ms (ratios use their sides' windows of the same length).
    pub window_ms: i64,
    pub window_label: String,
    pub start_ms: i64,
    /// Values in the order of the KPI's segment dimensions.
    pub segment: Vec<String>,
    pub value: f64,
    /// For ratios: the numerator and denominator values (0 otherwise).
    pub numerator: f64,
    pub denominator: f64,
    pub is_final: bool,
    /// Windows starting at or before this event time (ms) may have had input before the KPI
    /// was added or changed ([`evolve`]): their values miss it. `i64::MIN`: none.
    pub full_input_after_ms: i64,
    /// The record's `othersFrom` ([`holders`]).
    pub others_from: f64,
}

impl Update {
    /// The aggregate record of this update, computed from input `source_partition` of
    /// `source_topic` up to `source_offset`, with the partition's watermark and lateness: the
    /// record [`PartitionState::view`] lends, as an owned value.
    pub fn into_aggregate(
        self,
        catalog: &Catalog,
        progress: Progress,
        source_topic: &str,
        source_partition: i32,
        source_offset: i64,
    ) -> northstar_schemas::KpiAggregate {
        let kpi = &catalog.kpis[self.kpi];
        northstar_schemas::KpiAggregate {
            kpi: kpi.name.clone(),
            kind: kpi.aggregation.kind().into(),
            window: self.window_label,
            window_start: self.start_ms,
            window_end: self.start_ms + self.window_ms,
            segment: kpi
                .segments
                .iter()
                .map(|d| d.name.clone())
                .zip(self.segment)
                .collect(),
            value: self.value,
            numerator: self.numerator,
            denominator: self.denominator,
            is_final: self.is_final,
            full_input_after_ms: self.full_input_after_ms,
            watermark: progress.watermark_ms.max(0),
            source_topic: source_topic.to_string(),
            source_partition,
            source_offset,
            allowed_lateness_ms: progress.lateness_ms,
            others_from: self.others_from,
        }
    }
}

/// How far a partition's event time has progressed: its watermark and the allowed lateness
/// (windows ending at or before `watermark_ms - lateness_ms` are final).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub watermark_ms: i64,
    pub lateness_ms: i64,
}

/// What processing one event did to the windows.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Counted {
    /// KPIs whose window for this event was already final (event kept in the lake only).
    pub late_dropped: Vec<usize>,
    /// Whether the event updated a window whose end the watermark had passed.
    pub late_updated: bool,
    /// KPIs for which a segment value folded into `__other__`.
    pub folded: Vec<usize>,
}

/// State of one input partition.
#[derive(Debug)]
pub struct PartitionState {
    catalog: Arc<Catalog>,
    dedup: Dedup,
    /// Open windows (FxHash: keys are small and not attacker-chosen beyond the segment caps).
    windows: HashMap<WindowKey, Window, rustc_hash::FxBuildHasher>,
    /// The windows changed since the last emission (each once): what it emits, so that its
    /// cost follows the changes, not the state's size.
    dirty_keys: Vec<WindowKey>,
    /// For each of `dirty_keys`, what a segment window gained that its total has not yet
    /// (kept beside the list rather than in every window: the state stays as small as
    /// without totals).
    unfolded: Vec<Unfolded>,
    /// Held windows by the watermark at which they become final (start + length + lateness).
    closing: BTreeMap<i64, Vec<WindowKey>>,
    /// Segment values kept by window groups (and by windows not yet closed).
    interner: Interner,
    /// Interned values past which [`PartitionState::compact_interner`] runs.
    compact_at: usize,
    /// Each KPI's admission class ([`northstar_schemas::catalog::admission_classes`]).
    classes: Vec<usize>,
    /// Segment admission per window group ([`admission`]).
    groups: Groups,
    /// Per KPI: the index of its first window among all (KPI, window) pairs.
    window_slots: Vec<usize>,
    /// Per KPI: distinct users with one segment dimension, whose records carry `othersFrom`.
    suffixed: Vec<bool>,
    /// Per (KPI, window, start) of those: which value holds each member ([`holders`]).
    holders: HashMap<(usize, usize, i64), Holders, rustc_hash::FxBuildHasher>,
    watermark_ms: i64,
    /// The watermark at the last [`PartitionState::drain_updates`], and at the one before: what
    /// an emission reports (see [`PartitionState::progress`]).
    drained_watermark_ms: i64,
    reported_watermark_ms: i64,
    /// The watermark the last emitted records carried.
    sent_watermark_ms: i64,
    lateness_ms: i64,
    /// Events dropped as too late, per KPI: durable, so totals stay exact through restores.
    late_dropped: Vec<u64>,
    /// Per KPI: windows starting after this event time (ms) saw all their input
    /// ([`evolve`]).
    full_input_after_ms: Vec<i64>,
    /// Started without the state of the records before its first one
    /// ([`PartitionState::mark_started_mid_stream`]): the first event sets
    /// `full_input_after_ms`.
    mid_stream: bool,
    /// How user ids become the member fingerprints of distinct-user KPIs (`crate::members`).
    members: MemberKey,
}

impl PartitionState {
    pub fn new(catalog: Arc<Catalog>, lateness_ms: i64, dedup_window_secs: u32) -> Self {
        let classes = northstar_schemas::catalog::admission_classes(&catalog.kpis);
        let mut window_slots: Vec<usize> = catalog
            .kpis
            .iter()
            .scan(0, |next, k| {
                let first = *next;
                *next += k.windows.len();
                Some(first)
            })
            .collect();
        window_slots.push(catalog.kpis.iter().map(|k| k.windows.len()).sum());
        let suffixed = catalog
            .kpis
            .iter()
            .map(|k| matches!(k.aggregation, Aggregation::DistinctUsers) && k.segments.len() == 1)
            .collect();
        let late_dropped = vec![0; catalog.kpis.len()];
        let full_input_after_ms = vec![i64::MIN; catalog.kpis.len()];
        Self {
            catalog,
            dedup: Dedup::new(dedup_window_secs),
            windows: HashMap::default(),
            dirty_keys: Vec::new(),
            unfolded: Vec::new(),
            closing: BTreeMap::new(),
            interner: Interner::new(),
            compact_at: MIN_COMPACT_AT,
            classes,
            groups: Groups::new(window_slots.last().copied().unwrap_or(0)),
            window_slots,
            suffixed,
            holders: HashMap::default(),
            watermark_ms: i64::MIN,
            drained_watermark_ms: i64::MIN,
            reported_watermark_ms: i64::MIN,
            sent_watermark_ms: i64::MIN,
            lateness_ms,
            late_dropped,
            full_input_after_ms,
            mid_stream: false,
            members: MemberKey::UNKEYED,
        }
    }

    /// The state with distinct-user members fingerprinted by `members`.
    pub fn with_members(mut self, members: MemberKey) -> Self {
        self.members = members;
        self
    }

    /// The partition starts empty although records before its first one were processed
    /// before (their state is lost): every window that begins at or before the first event's
    /// time is marked as missing input, for every KPI.
    pub fn mark_started_mid_stream(&mut self) {
        self.mid_stream = true;
    }

    /// The state to checkpoint (call right after [`PartitionState::drain_updates`]).
    pub fn snapshot(&self) -> StateSnapshot {
        self.snapshot_with(self.dedup.clone())
    }

    /// What an incremental checkpoint stores: the snapshot without the remembered ids, and
    /// the dedup writes since the previous one (`checkpoint::segments`). Call right after
    /// [`PartitionState::drain_updates`].
    pub fn checkpoint_parts(&mut self) -> (StateSnapshot, Vec<(u64, u32)>) {
        let journal = self.dedup.take_journal();
        (self.snapshot_with(self.dedup.without_ids()), journal)
    }

    /// The remembered ids with their first-seen time (a restore's new base segment).
    pub fn dedup_entries(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.dedup.entries()
    }

    fn snapshot_with(&self, dedup: Dedup) -> StateSnapshot {
        debug_assert!(
            self.unfolded.iter().all(|u| matches!(u, Unfolded::Nothing)),
            "a snapshot between emissions would miss what the totals have not folded yet"
        );
        let mut windows: Vec<(WindowKey, Acc)> = self
            .windows
            .iter()
            .map(|(k, w)| (*k, w.acc.clone()))
            .collect();
        windows.sort_by_key(|a| a.0);
        StateSnapshot {
            dedup,
            kpis: evolve::catalog_meta(&self.catalog, &self.full_input_after_ms, self.members.id()),
            windows,
            segment_values: self.interner.values.clone(),
            evicted: self.evicted_windows(),
            watermark_ms: self.watermark_ms,
            late_dropped: self
                .catalog
                .kpis
                .iter()
                .zip(&self.late_dropped)
                .filter(|(_, &n)| n > 0)
                .map(|(k, &n)| (k.name.clone(), n))
                .collect(),
        }
    }

    /// The snapshot in checkpoint format 2 (tests of reading older checkpoints).
    #[cfg(test)]
    pub fn snapshot_v2(&self) -> StateSnapshotV2 {
        let s = self.snapshot();
        StateSnapshotV2 {
            dedup: s.dedup,
            windows: s.windows,
            segment_values: s.segment_values,
            admitted: Vec::new(),
            watermark_ms: s.watermark_ms,
            late_dropped: s.late_dropped,
        }
    }

    /// Rebuilds a state from a snapshot: the dedup set, the watermark and late-drop totals
    /// always, and each KPI's windows where [`evolve::mapping`] carries it over (the mapping is
    /// returned for the log).
    pub fn restore(
        catalog: Arc<Catalog>,
        lateness_ms: i64,
        dedup_window_secs: u32,
        members: MemberKey,
        snap: StateSnapshot,
    ) -> (Self, evolve::Mapping) {
        let mut state =
            PartitionState::new(catalog, lateness_ms, dedup_window_secs).with_members(members);
        let map = evolve::mapping(&state.catalog, &snap.kpis, snap.watermark_ms, members.id());
        state.dedup = snap.dedup;
        state.dedup.set_window(dedup_window_secs);
        state.watermark_ms = snap.watermark_ms;
        // Snapshots are taken right after an emission: it drained at this watermark.
        state.drained_watermark_ms = snap.watermark_ms;
        for (name, n) in snap.late_dropped {
            if let Some(i) = state.catalog.kpis.iter().position(|k| k.name == name) {
                state.late_dropped[i] = n;
            }
        }
        state
            .full_input_after_ms
            .clone_from(&map.full_input_after_ms);
        let carry = |k: WindowKey| {
            let kpi = (*map.old_to_new.get(k.kpi)?)?;
            Some(WindowKey { kpi, ..k })
        };
        state.windows = snap
            .windows
            .into_iter()
            .filter_map(|(k, acc)| Some((carry(k)?, Window::new(acc))))
            .collect();
        let evicted: Vec<WindowKey> = snap.evicted.into_iter().filter_map(carry).collect();
        if snap.segment_values.first().map(String::as_str) == Some(OTHER) {
            state.interner = Interner::from_values(snap.segment_values);
        }
        state.rebuild_totals();
        state.index_closing();
        state.rebuild_groups(&evicted);
        state.rebuild_holders();
        // What a rebuild evicted is emitted with the next records; nothing is owed the totals.
        state
            .unfolded
            .iter_mut()
            .for_each(|u| *u = Unfolded::Nothing);
        (state, map)
    }

    /// Gives every open window group of a segmented KPI its all-segments total where a
    /// checkpoint has none (written before totals existed, or before counts and sums kept
    /// theirs in the state): the sum of its segments' counts or sums, the union of their sets
    /// (exact: every counted event or user is in exactly one segment window of the group).
    fn rebuild_totals(&mut self) {
        let mut missing: BTreeMap<WindowKey, Acc> = BTreeMap::new();
        for (key, w) in &self.windows {
            let kpi = &self.catalog.kpis[key.kpi];
            let total = total_segment(kpi.segments.len());
            if kpi.segments.is_empty() || key.segment == total {
                continue;
            }
            let total_key = WindowKey {
                segment: total,
                ..*key
            };
            if self.windows.contains_key(&total_key) {
                continue;
            }
            let acc = missing
                .entry(total_key)
                .or_insert_with(|| Acc::empty(&kpi.aggregation));
            match (acc, &w.acc) {
                (Acc::Distinct(into), Acc::Distinct(set)) => into.extend(set.iter().copied()),
                (acc, other) => acc.merge(other),
            }
        }
        for (key, acc) in missing {
            self.windows.insert(key, Window::new(acc));
        }
    }

    /// Indexes every held window by when it becomes final (after a restore).
    fn index_closing(&mut self) {
        self.closing.clear();
        let mut keys: Vec<WindowKey> = self.windows.keys().copied().collect();
        keys.sort_unstable();
        for key in keys {
            let at = self.closes_at_key(&key);
            self.closing.entry(at).or_default().push(key);
        }
    }

    fn closes_at_key(&self, key: &WindowKey) -> i64 {
        let len = self.catalog.kpis[key.kpi].windows[key.window].millis;
        self.closes_at(key.start, len)
    }

    /// Adds `contribution` to the window `key`, created (and indexed by when it closes) if new,
    /// and marked changed; for a segment window (`segmented`), also notes it for the total.
    #[inline]
    fn add_to(
        &mut self,
        key: WindowKey,
        aggregation: &Aggregation,
        contribution: Contribution,
        segmented: bool,
    ) -> bool {
        let mut created = false;
        let window = self.windows.entry(key).or_insert_with(|| {
            created = true;
            Window::new(Acc::empty(aggregation))
        });
        if window.dirty == CLEAN {
            window.dirty = self.dirty_keys.len() as u32;
            self.dirty_keys.push(key);
            self.unfolded.push(if segmented {
                window.acc.unfolded()
            } else {
                Unfolded::Nothing
            });
        }
        let dirty = window.dirty as usize;
        if window.acc.add(contribution) && segmented {
            // Only distinct users note anything per event (a count's or sum's difference is
            // taken at the emission).
            if let (Contribution::Member(m), Unfolded::Members(new)) =
                (contribution, &mut self.unfolded[dirty])
            {
                new.push(m);
            }
        }
        if created {
            self.index_new(key);
        }
        created
    }

    /// Indexes a new window by when it closes.
    #[cold]
    fn index_new(&mut self, key: WindowKey) {
        let at = self.closes_at_key(&key);
        self.closing.entry(at).or_default().push(key);
    }

    /// Folds what the changed segment windows gained into their totals (see [`Unfolded`]).
    fn fold_into_totals(&mut self) {
        for i in 0..self.dirty_keys.len() {
            if !matches!(self.unfolded[i], Unfolded::Nothing) {
                self.settle_total(self.dirty_keys[i]);
            }
        }
    }

    /// Records (source, messageId) received at `received_at_micros`; true if it was seen
    /// within the dedup window.
    pub fn is_duplicate(
        &mut self,
        source: &str,
        message_id: &str,
        received_at_micros: i64,
    ) -> bool {
        self.dedup.check(source, message_id, received_at_micros)
    }

    /// Events of KPI `kpi` dropped as too late since the partition started (restored from
    /// checkpoints).
    pub fn late_dropped(&self, kpi: usize) -> u64 {
        self.late_dropped.get(kpi).copied().unwrap_or(0)
    }

    /// Number of remembered message ids.
    pub fn remembered_ids(&self) -> usize {
        self.dedup.len()
    }

    /// Ids first seen before this time (unix seconds) have expired from the dedup set.
    pub fn dedup_cutoff_secs(&self) -> u32 {
        self.dedup.cutoff_secs()
    }

    /// Approximate heap bytes of the dedup set.
    pub fn dedup_bytes(&self) -> usize {
        self.dedup.approx_bytes()
    }

    /// The partition's event-time watermark (ms), `i64::MIN` before the first event.
    pub fn watermark_ms(&self) -> i64 {
        self.watermark_ms
    }

    /// What the updates of the last emission report about event time: the watermark at the
    /// emission *before* it, with the allowed lateness. Every update of this partition for a
    /// window that ended before that was emitted by then, so a reader that has read the
    /// partition's records in order up to this one has them all (an update's own emission can
    /// still be on its way: its watermark says nothing about it).
    pub fn progress(&self) -> Progress {
        Progress {
            watermark_ms: self.reported_watermark_ms,
            lateness_ms: self.lateness_ms,
        }
    }

    /// Windows not yet final.
    pub fn open_windows(&self) -> usize {
        self.windows.len()
    }

    fn closes_at(&self, start: i64, len: i64) -> i64 {
        start.saturating_add(len).saturating_add(self.lateness_ms)
    }

    fn is_final(&self, start: i64, len: i64) -> bool {
        self.watermark_ms != i64::MIN && self.closes_at(start, len) <= self.watermark_ms
    }

    /// The segment values of `ids` for a KPI with `dims` dimensions.
    fn segment_strings(&self, ids: &SegmentIds, dims: usize) -> Vec<String> {
        ids[..dims]
            .iter()
            .map(|&id| self.interner.value(id).to_string())
            .collect()
    }

    /// Counts one valid, unique event at event time `ts_ms` in every KPI it matches, then
    /// advances the watermark.
    pub fn count(&mut self, event: &Event, ts_ms: i64) -> Counted {
        if self.mid_stream {
            self.mid_stream = false;
            for after in &mut self.full_input_after_ms {
                *after = (*after).max(ts_ms);
            }
        }
        let catalog = self.catalog.clone();
        let mut out = Counted::default();
        let mut view = EventView::new(event);
        // Each segment field is read and looked up once per event, whichever KPIs use it.
        let mut fields: SmallVec<[FieldSlot<'_>; 8]> = SmallVec::new();
        // Each window group's admission of this event's values, once per event.
        let mut decided: SmallVec<[(GroupKey, (SegmentIds, bool)); 8]> = SmallVec::new();
        for (ki, kpi) in catalog.kpis.iter().enumerate() {
            if matches!(kpi.aggregation, Aggregation::Ratio { .. })
                || !kpi.filter.matches(&mut view)
            {
                continue;
            }
            let contribution = match &kpi.aggregation {
                Aggregation::Count => Some(Contribution::One),
                Aggregation::Sum(field) => view
                    .scalar(field)
                    .as_ref()
                    .and_then(scalar_fixed_point)
                    .map(Contribution::Amount),
                Aggregation::DistinctUsers => event
                    .distinct_id()
                    .map(|id| Contribution::Member(self.members.fingerprint(id))),
                Aggregation::Ratio { .. } => None,
            };
            let Some(contribution) = contribution else {
                continue;
            };
            // Where each dimension's value is in `fields`.
            let mut slots = [0_usize; MAX_SEGMENTS];
            for (di, dim) in kpi.segments.iter().enumerate() {
                slots[di] = match fields.iter().position(|(name, _)| *name == dim.name) {
                    Some(pos) => pos,
                    None => {
                        let raw = view.segment_value(&dim.field);
                        fields.push((dim.name.as_str(), Slot::new(raw, &self.interner)));
                        fields.len() - 1
                    }
                };
            }
            let mut dropped = false;
            let mut folded = false;
            for (wi, w) in kpi.windows.iter().enumerate() {
                let start = w.start(ts_ms);
                if self.is_final(start, w.millis) {
                    dropped = true;
                    continue;
                }
                if self.watermark_ms != i64::MIN && start + w.millis <= self.watermark_ms {
                    out.late_updated = true;
                }
                let gk = (self.classes[ki], w.millis, start);
                // KPIs of one class read the same fields and share the decision.
                let (segment, f) = match decided.iter().find(|(k, _)| *k == gk) {
                    Some(&(_, d)) => d,
                    None => {
                        let d = self.segment_in((ki, wi), gk, kpi, &slots, &mut fields);
                        decided.push((gk, d));
                        d
                    }
                };
                folded |= f;
                let key = WindowKey {
                    kpi: ki,
                    window: wi,
                    start,
                    segment,
                };
                // The all-segments total follows at the emission (fold_into_totals).
                let segmented = !kpi.segments.is_empty();
                if self.add_to(key, &kpi.aggregation, contribution, segmented) && segmented {
                    self.note_live(gk, key);
                }
                if let (true, Contribution::Member(m)) = (self.suffixed[ki], contribution) {
                    let holder = match segment[0] {
                        OTHER_ID => OTHER_HOLDER,
                        id => (fields[slots[0]].1.hash, id),
                    };
                    let Self {
                        holders, interner, ..
                    } = self;
                    holders
                        .entry((ki, wi, start))
                        .or_default()
                        .hold(m, holder, interner);
                }
            }
            if folded {
                out.folded.push(ki);
            }
            if dropped {
                self.late_dropped[ki] += 1;
                out.late_dropped.push(ki);
            }
        }
        self.watermark_ms = self.watermark_ms.max(ts_ms);
        out
    }

    /// The segment of an event of `kpi` in window group `gk`, its dimensions' values at
    /// `slots` of `fields`, and whether one folded into [`OTHER`]; values it evicts from the
    /// group are moved out first.
    #[inline]
    fn segment_in(
        &mut self,
        wslot: (usize, usize),
        gk: GroupKey,
        kpi: &northstar_schemas::catalog::Kpi,
        slots: &[usize; MAX_SEGMENTS],
        fields: &mut [FieldSlot<'_>],
    ) -> (SegmentIds, bool) {
        let dims = kpi.segments.len();
        if dims == 0 {
            return ([NO_VALUE; MAX_SEGMENTS], false);
        }
        let mut evicted = SmallVec::new();
        let slot = self.window_slots[wslot.0] + wslot.1;
        let segment = self.admit(
            (slot, gk),
            (dims, kpi.max_segment_values),
            &slots[..dims],
            fields,
            &mut evicted,
        );
        for (di, e) in evicted {
            self.evict(gk, di, e);
        }
        (segment, segment[..dims].contains(&OTHER_ID))
    }
}

mod acc;
mod admission;
mod emit;
pub mod evolve;
mod holders;
mod interner;
#[cfg(test)]
mod tests;
