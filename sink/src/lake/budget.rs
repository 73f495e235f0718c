//! The lake sink's budgets: buffered bytes over all partitions, `event_name` directories per
//! clean-topic partition, and the schedule of a flush that failed against the object store.
//!
//! Contract: pure functions of what they are given, so that the decisions replay exactly.
//! [`admit`] decides from the partition's admitted names, which the ledger entry of the
//! partition's last flush records, and the order of its records: a flush repeated after a
//! crash or a failed upload starts from the same entry and reads the same records, so it puts
//! every row under the same directory again (the files' names and contents do not change).
//! [`over_budget`] picks the partitions to flush, largest first, until the rest fits.
//! [`backoff`] (`northstar_runtime::backoff`) doubles from 1 s to a minute.

use std::collections::BTreeSet;

/// The `event_name` directory value of the names past the cap (`event_name=__other__`); their
/// rows keep their exact name in the `event` and `name` columns.
pub const CATCH_ALL_NAME: &str = "__other__";

/// Whether `name` gets its own `event_name` directory: it already has one, or fewer than
/// `cap` names have one (it is then added to `names`).
pub fn admit(names: &mut BTreeSet<String>, cap: usize, name: &str) -> bool {
    if names.contains(name) {
        return true;
    }
    if names.len() < cap {
        names.insert(name.to_string());
        return true;
    }
    false
}

/// The partitions to flush so that the buffered bytes fit in `budget`: the largest first,
/// leaving out those in `busy` (flushing already, or waiting to repeat a flush).
pub fn over_budget(parts: &[(i32, usize)], budget: usize, busy: &[i32]) -> Vec<i32> {
    let mut total: usize = parts.iter().map(|&(_, b)| b).sum();
    let mut candidates: Vec<(i32, usize)> = parts
        .iter()
        .copied()
        .filter(|(p, b)| *b > 0 && !busy.contains(p))
        .collect();
    candidates.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut due = Vec::new();
    for (p, bytes) in candidates {
        if total <= budget {
            break;
        }
        total -= bytes;
        due.push(p);
    }
    due
}

/// How long a partition waits before repeating a flush that failed `failures` times in a row
/// (the services' common backoff).
pub use northstar_runtime::backoff::backoff;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_past_the_cap_share_the_catch_all() {
        let mut names = BTreeSet::new();
        assert!(admit(&mut names, 2, "Signed Up"));
        assert!(admit(&mut names, 2, "Order Completed"));
        assert!(!admit(&mut names, 2, "typo_1"));
        assert!(admit(&mut names, 2, "Signed Up"), "admitted names stay");
        assert_eq!(names.len(), 2);
    }

    #[test]
    fn the_largest_partitions_are_flushed_first() {
        let parts = [(0, 50), (1, 200), (2, 120)];
        assert_eq!(over_budget(&parts, 400, &[]), Vec::<i32>::new());
        assert_eq!(over_budget(&parts, 300, &[]), vec![1]);
        assert_eq!(over_budget(&parts, 100, &[]), vec![1, 2]);
        assert_eq!(over_budget(&parts, 100, &[1]), vec![2, 0]);
    }

    proptest! {
        /// Whatever the order of names, at most `cap` get directories, each admitted name keeps
        /// its own directory, and the same records from the same start decide the same way.
        #[test]
        fn admission_is_bounded_and_replays(
            start in proptest::collection::btree_set("[a-e]{1,2}", 0..4),
            seq in proptest::collection::vec("[a-f]{1,2}", 0..60),
            cap in 1usize..8,
        ) {
            let run = || {
                let mut names = start.clone();
                let decisions: Vec<bool> = seq.iter().map(|n| admit(&mut names, cap, n)).collect();
                (names, decisions)
            };
            let (names, decisions) = run();
            prop_assert!(names.len() <= cap.max(start.len()));
            prop_assert!(start.iter().all(|n| names.contains(n)));
            for (n, admitted) in seq.iter().zip(&decisions) {
                prop_assert_eq!(*admitted, names.contains(n));
            }
            prop_assert_eq!(run(), (names, decisions));
        }

        /// What is left after the chosen flushes fits the budget, unless only busy partitions
        /// remain; nothing is chosen that is busy or empty.
        #[test]
        fn the_budget_holds(
            sizes in proptest::collection::vec(0usize..1000, 0..8),
            budget in 0usize..3000,
            busy_mask in 0u8..=255,
        ) {
            let parts: Vec<(i32, usize)> =
                sizes.iter().enumerate().map(|(i, &b)| (i as i32, b)).collect();
            let busy: Vec<i32> = (0..8).filter(|i| busy_mask & (1 << i) != 0).collect();
            let due = over_budget(&parts, budget, &busy);
            let left: usize = parts.iter().filter(|(p, _)| !due.contains(p)).map(|&(_, b)| b).sum();
            let busy_bytes: usize = parts.iter().filter(|(p, _)| busy.contains(p)).map(|&(_, b)| b).sum();
            prop_assert!(left <= budget.max(busy_bytes));
            for p in &due {
                prop_assert!(!busy.contains(p));
                prop_assert!(parts[*p as usize].1 > 0);
            }
        }
    }
}
