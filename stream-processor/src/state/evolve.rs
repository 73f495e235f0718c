//! Catalog evolution: which KPIs of a checkpoint carry over to the catalog the processor runs
//! with, and from which event time the others' windows are complete.
//!
//! Contract: a KPI's windows, admitted segment values and completeness carry over exactly when
//! the checkpoint holds a KPI of the same name with the same semantic fingerprint
//! ([`kpi_fingerprint`]: filter, aggregation, windows, segments and cap — see
//! `Catalog::kpi_semantics`); a description, owner, unit or alert edit changes nothing. A KPI
//! that is new, renamed or changed starts empty, and its windows that may have had input before
//! the checkpoint — every window starting at or before the checkpoint's watermark, the largest
//! event time read until then — are incomplete ([`KpiMeta::full_input_after_ms`]); windows starting
//! later have seen all their input and are exact. A ratio is complete where both its sides
//! are. KPIs of the checkpoint that the catalog no longer has are dropped. See ADR 0007.

use serde::{Deserialize, Serialize};

use crate::catalog::{Aggregation, Catalog};
use crate::dedup::fingerprint_parts;

/// What a checkpoint records about one KPI of the catalog it was taken with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KpiMeta {
    pub name: String,
    /// [`kpi_fingerprint`] of the KPI then.
    pub fingerprint: u64,
    /// Windows starting after this event time (ms) saw all their input; `i64::MIN`: all did.
    pub full_input_after_ms: i64,
}

/// A stable fingerprint (XXH3) of what KPI `k` of `catalog` computes; a distinct-user KPI (or
/// a ratio of one) under keyed member fingerprints also depends on the member key's id
/// (`members`, 0: unkeyed, the fingerprint of earlier versions).
pub fn kpi_fingerprint(catalog: &Catalog, k: usize, members: u64) -> u64 {
    let semantics = catalog.kpi_semantics(k);
    let distinct = |i: usize| matches!(catalog.kpis[i].aggregation, Aggregation::DistinctUsers);
    let counts_members = match catalog.kpis[k].aggregation {
        Aggregation::DistinctUsers => true,
        Aggregation::Ratio {
            numerator,
            denominator,
        } => distinct(numerator) || distinct(denominator),
        _ => false,
    };
    if members == 0 || !counts_members {
        return fingerprint_parts(&[&semantics]);
    }
    fingerprint_parts(&[&semantics, &format!("members:{members:016x}")])
}

/// The meta of every KPI of `catalog`, with its completeness (`members`: the member key's id).
pub fn catalog_meta(catalog: &Catalog, full_input_after_ms: &[i64], members: u64) -> Vec<KpiMeta> {
    catalog
        .kpis
        .iter()
        .enumerate()
        .map(|(k, kpi)| KpiMeta {
            name: kpi.name.clone(),
            fingerprint: kpi_fingerprint(catalog, k, members),
            full_input_after_ms: full_input_after_ms.get(k).copied().unwrap_or(i64::MIN),
        })
        .collect()
}

/// How a checkpoint's KPIs map onto the current catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// For each KPI index of the checkpoint: its index in the current catalog, if it carries over.
    pub old_to_new: Vec<Option<usize>>,
    /// For each KPI of the current catalog: the checkpoint's KPI index it continues, if any.
    pub new_to_old: Vec<Option<usize>>,
    /// For each KPI of the current catalog: windows starting after this are complete.
    pub full_input_after_ms: Vec<i64>,
}

impl Mapping {
    /// Names of the current catalog's KPIs that start empty (new, renamed or changed).
    pub fn restarted<'a>(&self, catalog: &'a Catalog) -> Vec<&'a str> {
        self.new_to_old
            .iter()
            .zip(&catalog.kpis)
            .filter(|(old, _)| old.is_none())
            .map(|(_, k)| k.name.as_str())
            .collect()
    }

    /// Of the checkpoint's KPI names `old` (by index), those whose state was dropped: the
    /// current catalog no longer has them, or changed them.
    pub fn dropped<'a>(&self, old: &'a [String]) -> Vec<&'a str> {
        self.old_to_new
            .iter()
            .zip(old)
            .filter(|(new, _)| new.is_none())
            .map(|(_, name)| name.as_str())
            .collect()
    }
}

/// Maps the checkpoint's KPIs `old` (taken at `watermark_ms`) onto `catalog` (its distinct-user
/// KPIs counted under the member key `members`).
pub fn mapping(catalog: &Catalog, old: &[KpiMeta], watermark_ms: i64, members: u64) -> Mapping {
    let n = catalog.kpis.len();
    let mut old_to_new = vec![None; old.len()];
    let mut new_to_old = vec![None; n];
    let mut full_input_after_ms = vec![watermark_ms; n];
    for k in 0..n {
        let name = &catalog.kpis[k].name;
        let fingerprint = kpi_fingerprint(catalog, k, members);
        if let Some(j) = old
            .iter()
            .position(|m| &m.name == name && m.fingerprint == fingerprint)
        {
            old_to_new[j] = Some(k);
            new_to_old[k] = Some(j);
            full_input_after_ms[k] = old[j].full_input_after_ms;
        }
    }
    // A ratio is computed from its sides' windows at emission: complete where both are.
    for (k, kpi) in catalog.kpis.iter().enumerate() {
        if let Aggregation::Ratio {
            numerator,
            denominator,
        } = kpi.aggregation
        {
            full_input_after_ms[k] =
                full_input_after_ms[numerator].max(full_input_after_ms[denominator]);
        }
    }
    Mapping {
        old_to_new,
        new_to_old,
        full_input_after_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "north_star: signups
kpis:
  - {name: signups, aggregate: count, filter: {event: Signed Up}, description: people who signed up}
  - {name: orders, aggregate: count, filter: {events: [Order Completed]}}
  - {name: conversion, aggregate: {ratio: {numerator: orders, denominator: signups}}}
";

    fn catalog(yaml: &str) -> Catalog {
        Catalog::parse(yaml).expect("catalog")
    }

    fn meta_of(yaml: &str) -> Vec<KpiMeta> {
        let c = catalog(yaml);
        catalog_meta(&c, &vec![i64::MIN; c.kpis.len()], 0)
    }

    fn names(meta: &[KpiMeta]) -> Vec<String> {
        meta.iter().map(|m| m.name.clone()).collect()
    }

    #[test]
    fn a_description_edit_carries_every_kpi_over() {
        let edited = BASE.replace("people who signed up", "accounts created");
        let m = mapping(&catalog(&edited), &meta_of(BASE), 5_000, 0);
        assert_eq!(m.new_to_old, vec![Some(0), Some(1), Some(2)]);
        assert_eq!(m.full_input_after_ms, vec![i64::MIN; 3]);
        assert!(m.restarted(&catalog(&edited)).is_empty());
    }

    #[test]
    fn a_changed_filter_restarts_that_kpi_and_its_ratio_only() {
        let changed = BASE.replace("[Order Completed]", "[Order Completed, Order Refunded]");
        let c = catalog(&changed);
        let m = mapping(&c, &meta_of(BASE), 5_000, 0);
        assert_eq!(m.new_to_old, vec![Some(0), None, None]);
        assert_eq!(m.full_input_after_ms, vec![i64::MIN, 5_000, 5_000]);
        assert_eq!(m.restarted(&c), vec!["orders", "conversion"]);
        assert_eq!(
            m.dropped(&names(&meta_of(BASE))),
            vec!["orders", "conversion"]
        );
    }

    #[test]
    fn added_removed_and_reordered_kpis_map_by_name() {
        let reordered = "north_star: signups\nkpis:\n  - {name: visits, aggregate: count}\n  - \
            {name: signups, aggregate: count, filter: {event: Signed Up}}\n";
        let c = catalog(reordered);
        let m = mapping(&c, &meta_of(BASE), 7, 0);
        assert_eq!(m.new_to_old, vec![None, Some(0)]);
        assert_eq!(m.old_to_new, vec![Some(1), None, None]);
        assert_eq!(m.full_input_after_ms, vec![7, i64::MIN]);
        assert_eq!(
            m.dropped(&names(&meta_of(BASE))),
            vec!["orders", "conversion"]
        );
    }

    #[test]
    fn completeness_survives_later_restores() {
        let old = vec![KpiMeta {
            full_input_after_ms: 1_000,
            ..meta_of(BASE)[0].clone()
        }];
        let m = mapping(&catalog(BASE), &old, 9_000, 0);
        assert_eq!(m.full_input_after_ms[0], 1_000);
        assert_eq!(
            m.full_input_after_ms[1], 9_000,
            "orders is new to that checkpoint"
        );
    }

    #[test]
    fn the_fingerprint_is_stable() {
        // Stored in checkpoints: a change of this value restarts every KPI of every deployment.
        assert_eq!(kpi_fingerprint(&catalog(BASE), 0, 0), 0x7745_ac3e_2f88_900f);
        let edited = BASE.replace("people who signed up", "x");
        assert_eq!(
            kpi_fingerprint(&catalog(BASE), 0, 0),
            kpi_fingerprint(&catalog(&edited), 0, 0)
        );
    }

    #[test]
    fn a_member_key_changes_the_kpis_that_count_members_only() {
        let c = catalog(&format!(
            "{BASE}  - {{name: buyers, aggregate: distinct_users, filter: {{event: Order Completed}}}}
  - {{name: buyer_rate, aggregate: {{ratio: {{numerator: buyers, denominator: signups}}}}}}
"
        ));
        let mut distinct = 0;
        for k in 0..c.kpis.len() {
            let counts_members = match c.kpis[k].aggregation {
                Aggregation::DistinctUsers => true,
                Aggregation::Ratio {
                    numerator,
                    denominator,
                } => [numerator, denominator]
                    .iter()
                    .any(|&i| matches!(c.kpis[i].aggregation, Aggregation::DistinctUsers)),
                _ => false,
            };
            distinct += usize::from(counts_members);
            assert_eq!(
                kpi_fingerprint(&c, k, 0) != kpi_fingerprint(&c, k, 42),
                counts_members,
                "{}",
                c.kpis[k].name
            );
        }
        assert!(distinct > 0, "the test catalog has a distinct-user KPI");
        let m = mapping(
            &c,
            &catalog_meta(&c, &vec![i64::MIN; c.kpis.len()], 0),
            9,
            42,
        );
        assert_eq!(m.restarted(&c).len(), distinct, "flagged, not mixed");
    }
}
