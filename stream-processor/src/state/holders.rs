//! Which value holds each user of a distinct-users window with one segment dimension, so that a
//! reader's `__other__` counts every user once (ADR 0013).
//!
//! Contract: per (KPI, window, start) of a distinct-users KPI with one segment dimension, each
//! member counted is held by the value that ranks last among the values whose window holds it
//! (`__other__` ranks after every value). [`Holders::held_from`] is the number of members held by
//! a value or one ranking after it: the distinct users of that value, of every value the
//! partition keeps after it and of its `__other__`, together. A reader that admits none of
//! them counts exactly that in `__other__` for this partition (the record's `othersFrom`):
//! what the partition's records mapped to `__other__` hold, each user once. Per event O(1)
//! (plus the values held, at most the cap + 1); an eviction O(members). Pure, no IO.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use crate::dedup::IdentityHasher;

use super::{Interner, OTHER_ID};

/// A value as a holder: its hash and id ([`OTHER_ID`] ranks after every value).
pub(super) type Holder = (u64, u32);

/// The holder of `__other__`'s members.
pub(super) const OTHER_HOLDER: Holder = (u64::MAX, OTHER_ID);

/// Whether `a` ranks after `b` (by hash, then by value).
fn after(a: Holder, b: Holder, interner: &Interner) -> bool {
    if a.1 == b.1 || b.1 == OTHER_ID {
        return false;
    }
    a.1 == OTHER_ID || (a.0, interner.value(a.1)) > (b.0, interner.value(b.1))
}

#[derive(Debug, Default, Clone)]
pub(super) struct Holders {
    /// Member fingerprint → its holder.
    of: HashMap<u64, Holder, BuildHasherDefault<IdentityHasher>>,
    /// Members held, per holder.
    held: Vec<(Holder, u64)>,
    /// Whether a member changed holder since the last emission (every value's `othersFrom`
    /// can have changed then).
    pub(super) changed: bool,
}

impl Holders {
    /// Notes `member` counted under `holder`.
    pub(super) fn hold(&mut self, member: u64, holder: Holder, interner: &Interner) {
        let old = match self.of.entry(member) {
            Entry::Vacant(e) => {
                e.insert(holder);
                None
            }
            Entry::Occupied(mut e) => {
                if !after(holder, *e.get(), interner) {
                    return;
                }
                Some(e.insert(holder))
            }
        };
        if let Some(old) = old {
            self.add(old, -1);
        }
        self.add(holder, 1);
        self.changed = true;
    }

    fn add(&mut self, holder: Holder, n: i64) {
        match self.held.iter_mut().position(|(h, _)| h.1 == holder.1) {
            Some(i) => {
                let left = self.held[i].1.saturating_add_signed(n);
                if left == 0 {
                    self.held.swap_remove(i);
                } else {
                    self.held[i].1 = left;
                }
            }
            None if n > 0 => self.held.push((holder, n.unsigned_abs())),
            None => {}
        }
    }

    /// `evicted`'s members move to `__other__` (its window was merged into it).
    pub(super) fn evict(&mut self, evicted: u32) {
        let Some(i) = self.held.iter().position(|(h, _)| h.1 == evicted) else {
            return;
        };
        let (_, n) = self.held.swap_remove(i);
        for h in self.of.values_mut() {
            if h.1 == evicted {
                *h = OTHER_HOLDER;
            }
        }
        self.add(OTHER_HOLDER, i64::try_from(n).unwrap_or(i64::MAX));
        self.changed = true;
    }

    /// Members held by `holder` or a value ranking after it.
    pub(super) fn held_from(&self, holder: Holder, interner: &Interner) -> u64 {
        self.held
            .iter()
            .filter(|(h, _)| h.1 == holder.1 || after(*h, holder, interner))
            .map(|(_, n)| n)
            .sum()
    }

    /// Renumbers the values (interner compaction).
    pub(super) fn remap(&mut self, map: &impl Fn(u32) -> u32) {
        for h in self.of.values_mut() {
            h.1 = map(h.1);
        }
        for (h, _) in &mut self.held {
            h.1 = map(h.1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_member_counts_once_from_the_last_value_holding_it() {
        let mut interner = Interner::new();
        let a = (1, interner.intern("a".into()));
        let b = (2, interner.intern("b".into()));
        let c = (3, interner.intern("c".into()));
        let mut h = Holders::default();
        // u1 under a and c, u2 under b, u3 under a and __other__, u4 under c.
        for (m, v) in [
            (1, a),
            (1, c),
            (2, b),
            (3, a),
            (3, OTHER_HOLDER),
            (4, c),
            (1, a),
        ] {
            h.hold(m, v, &interner);
        }
        assert_eq!(h.held_from(a, &interner), 4, "everyone");
        assert_eq!(h.held_from(b, &interner), 4, "u1 (c), u2, u3 (other), u4");
        assert_eq!(h.held_from(c, &interner), 3, "u1, u3, u4");
        assert_eq!(h.held_from(OTHER_HOLDER, &interner), 1, "u3");
        h.evict(c.1);
        assert_eq!(h.held_from(OTHER_HOLDER, &interner), 3, "c's users moved");
        assert_eq!(h.held_from(b, &interner), 4);
    }
}
