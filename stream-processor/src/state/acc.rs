//! What one window holds: its accumulator, whether it changed since the last emission, and
//! what a changed segment window still owes its all-segments total.
//!
//! Contract: an accumulator only grows by one event's contribution ([`Acc::add`]); a total
//! gains exactly what its segment windows gained since the last emission ([`Acc::fold`]): a
//! count's or sum's difference, a set's new members. Pure, no IO.

use std::collections::HashSet;
use std::hash::BuildHasherDefault;

use serde::{Deserialize, Serialize};

use crate::catalog::{fixed_to_f64, Aggregation};
use crate::dedup::IdentityHasher;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Acc {
    Count(u64),
    /// Fixed point, 6 decimals.
    Sum(i128),
    /// Fingerprints of the distinct ids (already uniformly hashed: no rehashing).
    Distinct(HashSet<u64, BuildHasherDefault<IdentityHasher>>),
}

impl Acc {
    pub(super) fn empty(aggregation: &Aggregation) -> Acc {
        match aggregation {
            Aggregation::Sum(_) => Acc::Sum(0),
            Aggregation::DistinctUsers => Acc::Distinct(HashSet::default()),
            _ => Acc::Count(0),
        }
    }

    pub(super) fn value(&self) -> f64 {
        match self {
            Acc::Count(n) => *n as f64,
            Acc::Sum(s) => fixed_to_f64(*s),
            Acc::Distinct(set) => set.len() as f64,
        }
    }

    /// Adds another count or sum (totals of a group); sets are never merged here.
    pub(super) fn merge(&mut self, other: &Acc) {
        match (self, other) {
            (Acc::Count(a), Acc::Count(b)) => *a += b,
            (Acc::Sum(a), Acc::Sum(b)) => *a += b,
            _ => {}
        }
    }

    /// Takes in everything `other` held (a set's members too): an evicted segment window
    /// moving into its `__other__` window.
    pub(super) fn absorb(&mut self, other: Acc) {
        match (self, other) {
            (Acc::Distinct(into), Acc::Distinct(set)) => into.extend(set),
            (acc, other) => acc.merge(&other),
        }
    }

    /// A count's or sum's value in [`Unfolded::Since`]'s unit (0 for a set).
    pub(super) fn amount(&self) -> i128 {
        match self {
            Acc::Count(n) => i128::from(*n),
            Acc::Sum(s) => *s,
            Acc::Distinct(_) => 0,
        }
    }

    /// Adds one event's contribution; false if it changed nothing (a member already in the
    /// set).
    pub(super) fn add(&mut self, contribution: Contribution) -> bool {
        match (self, contribution) {
            (Acc::Count(n), Contribution::One) => *n += 1,
            (Acc::Sum(s), Contribution::Amount(a)) => *s += a,
            (Acc::Distinct(set), Contribution::Member(m)) => return set.insert(m),
            _ => return false,
        }
        true
    }

    /// Adds what a segment window gained to its total.
    pub(super) fn fold(&mut self, gained: &Unfolded, segment: &Acc) {
        match (self, gained, segment) {
            (Acc::Count(n), Unfolded::Since(base), Acc::Count(now)) => {
                *n += u64::try_from(i128::from(*now) - base).unwrap_or(0);
            }
            (Acc::Sum(s), Unfolded::Since(base), Acc::Sum(now)) => *s += now - base,
            (Acc::Distinct(set), Unfolded::Members(m), _) => set.extend(m.iter().copied()),
            _ => {}
        }
    }

    /// What a segment window's total will need at the next emission, noted when the window
    /// starts changing: a count's or sum's value then, or an empty list of new members.
    pub(super) fn unfolded(&self) -> Unfolded {
        match self {
            Acc::Count(n) => Unfolded::Since(i128::from(*n)),
            Acc::Sum(s) => Unfolded::Since(*s),
            Acc::Distinct(_) => Unfolded::Members(Vec::new()),
        }
    }
}

/// What a changed segment window gained since the last emission that its all-segments total
/// has not yet: for a count or sum, its value before (the total gains the difference), for
/// distinct users, the members new to its set.
#[derive(Debug, Default)]
pub(super) enum Unfolded {
    /// Not a segment window.
    #[default]
    Nothing,
    Since(i128),
    Members(Vec<u64>),
}

#[derive(Debug)]
pub(super) struct Window {
    pub(super) acc: Acc,
    /// Its place in [`PartitionState::dirty_keys`] while it has changed since the last
    /// emission, [`CLEAN`] otherwise.
    pub(super) dirty: u32,
}

/// A window unchanged since the last emission.
pub(super) const CLEAN: u32 = u32::MAX;

impl Window {
    pub(super) fn new(acc: Acc) -> Self {
        Window { acc, dirty: CLEAN }
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Contribution {
    One,
    Amount(i128),
    Member(u64),
    /// Nothing (marks a window changed).
    None,
}
