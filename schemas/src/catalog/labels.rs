//! Prometheus label names of segment dimensions, and the reserved segment values.
//!
//! Contract: [`label_name`] maps a dimension path to a valid Prometheus label name that is
//! never one of [`RESERVED_LABELS`]; the catalog refuses two different paths with the same
//! label name (checked by [`super::Catalog::parse`]), so one label always means one field.
//! [`escape_value`] keeps a client's value from ever reading as one of the markers
//! [`OTHER`], [`NONE`] and [`ALL`]; it is injective, so two client values never merge.

use std::borrow::Cow;

/// The segment value that values past a dimension's cap fold into.
pub const OTHER: &str = "__other__";
/// The segment value of a missing or non-scalar field.
pub const NONE: &str = "__none__";
/// The segment value of the exact all-segments total computed by the processor (every
/// dimension of a total carries it).
pub const ALL: &str = "__all__";

/// Label names the exposition, the dashboards or Prometheus itself use; a dimension whose
/// sanitised path is one of them is prefixed with `dim_`.
pub const RESERVED_LABELS: [&str; 9] = [
    "kpi",
    "window",
    "segment",
    "instance",
    "job",
    "pod",
    "le",
    "quantile",
    "alertname",
];

/// The `segment` label of a series: its values joined by ` / ` (`iOS / pro`), `all` for the
/// all-segments total and for a KPI without segments.
pub fn segment_label(values: &[String]) -> String {
    if values.iter().all(|v| v == ALL) {
        return "all".into();
    }
    values.join(" / ")
}

/// A valid label name for a segment dimension (`context.os.name` → `context_os_name`).
pub fn label_name(dim: &str) -> String {
    let mut s: String = dim
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) || s.starts_with("__") {
        s.insert_str(0, "dim_");
    }
    if RESERVED_LABELS.contains(&s.as_str()) {
        s.insert_str(0, "dim_");
    }
    s
}

/// A client's segment value as stored: a value spelled like a marker, after any number of
/// leading underscores (`__all__`, `___other__`), gets one more leading underscore.
#[inline]
pub fn escape_value(value: &str) -> Cow<'_, str> {
    // Once per event and segment dimension: most values cannot be a marker.
    if !value.starts_with("__") {
        return Cow::Borrowed(value);
    }
    let core = value.trim_start_matches('_');
    let marker = [OTHER, NONE, ALL]
        .iter()
        .any(|m| m.strip_prefix("__") == Some(core));
    if marker && value.len() >= core.len() + 2 {
        Cow::Owned(format!("_{value}"))
    } else {
        Cow::Borrowed(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_are_valid_and_unreserved() {
        assert_eq!(label_name("context.os.name"), "context_os_name");
        assert_eq!(label_name("properties.plan-type"), "properties_plan_type");
        assert_eq!(label_name("9x"), "dim_9x");
        assert_eq!(label_name("__x"), "dim___x");
        for r in RESERVED_LABELS {
            assert_eq!(label_name(r), format!("dim_{r}"));
        }
    }

    #[test]
    fn segment_labels() {
        assert_eq!(segment_label(&[]), "all");
        assert_eq!(segment_label(&[ALL.into(), ALL.into()]), "all");
        assert_eq!(segment_label(&["iOS".into(), "pro".into()]), "iOS / pro");
    }

    #[test]
    fn markers_are_escaped_injectively() {
        assert_eq!(escape_value("iOS"), "iOS");
        assert_eq!(escape_value("_all_"), "_all_");
        assert_eq!(escape_value("all__"), "all__");
        assert_eq!(escape_value("__all__"), "___all__");
        assert_eq!(escape_value("___all__"), "____all__");
        assert_eq!(escape_value("__other__"), "___other__");
        assert_eq!(escape_value("__none__"), "___none__");
        let inputs = ["__all__", "___all__", "____all__", "x"];
        let out: std::collections::HashSet<String> = inputs
            .iter()
            .map(|v| escape_value(v).into_owned())
            .collect();
        assert_eq!(out.len(), inputs.len());
        assert!(out.iter().all(|v| v != ALL && v != OTHER && v != NONE));
    }
}
