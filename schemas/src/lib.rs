//! The Northstar event contract, shared by every service.
//!
//! Contract: every record on every Northstar topic is Confluent wire format (magic byte 0, a
//! big-endian schema id, then the Avro datum); [`Event`] is the one Rust type for the event
//! envelope and [`KpiAggregate`] the one for windowed KPI values; every record a service derives
//! from another carries the source position headers of [`headers`]. The KPI [`catalog`] is the
//! one model of what is computed, exposed and alerted on, shared by the processor, the metrics
//! sink and the dashboard generator; the tracking [`plan`] is the one model of what events may
//! carry, for validation, the lake and the docs.

pub mod aggregate;
pub mod catalog;
pub mod client;
pub mod decoder;
mod envelope_binary;
pub mod event;
pub mod failure;
pub mod headers;
pub mod json_path;
pub mod plan;
pub mod registry;
pub mod suppression;
pub mod synthetic;
pub mod wire;

pub use aggregate::KpiAggregate;
/// The Avro library the contract is built on, re-exported so services use the same version.
pub use apache_avro;
pub use client::{RegistryAuth, RegistryClient, RegistryClientError};
pub use decoder::{EventDecoder, Undecodable};
pub use event::{Event, EventType};
pub use wire::WireError;

/// The Avro schema text of the event envelope, version 1.
pub const EVENT_SCHEMA_V1: &str = include_str!("../avro/event-v1.avsc");
/// The Avro schema text of a KPI aggregate, version 1 (before `allowedLateness`).
pub const KPI_AGGREGATE_SCHEMA_V1: &str = include_str!("../avro/kpi-aggregate-v1.avsc");
/// The Avro schema text of a KPI aggregate, version 2 (before `complete`).
pub const KPI_AGGREGATE_SCHEMA_V2: &str = include_str!("../avro/kpi-aggregate-v2.avsc");
/// The Avro schema text of a KPI aggregate, version 3 (before `othersFrom`).
pub const KPI_AGGREGATE_SCHEMA_V3: &str = include_str!("../avro/kpi-aggregate-v3.avsc");
/// The Avro schema text of a KPI aggregate, version 4: what the processor writes and the
/// metrics sink reads (v1 records decode with `allowedLateness` 0, v1 and v2 records as complete,
/// `fullInputAfter` the minimum; records before v4 with `othersFrom` 0).
pub const KPI_AGGREGATE_SCHEMA: &str = include_str!("../avro/kpi-aggregate-v4.avsc");

/// The registry subject of a topic's record values (Confluent's TopicNameStrategy).
pub fn value_subject(topic: &str) -> String {
    format!("{topic}-value")
}

/// A record could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("avro: {0}")]
    Avro(String),
    #[error("field {field}: {problem}")]
    Field {
        field: &'static str,
        problem: String,
    },
}

impl From<apache_avro::Error> for CodecError {
    fn from(e: apache_avro::Error) -> Self {
        CodecError::Avro(e.to_string())
    }
}
