//! Decoding wire-format event records whatever writer schema produced them.
//!
//! Contract: [`EventDecoder::decode`] resolves the record's schema id through the registry
//! (cached per process; ids are immutable) and decodes into the v1 [`Event`]; it retries while
//! the registry is unreachable (until `give_up` is cancelled) so a transient outage never turns
//! a good record into a rejected one.

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::Schema;
use tokio_util::sync::CancellationToken;

use crate::event::EventCodec;
use crate::{wire, Event, RegistryClient};

/// Why a record is not a decodable event (a permanent property of the record).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct Undecodable {
    /// Stable code: `empty_payload`, `not_wire_format`, `unknown_schema`, `undecodable`.
    pub reason: &'static str,
    pub detail: String,
}

/// Decodes event records, caching writer schemas by id.
#[derive(Debug, Clone)]
pub struct EventDecoder {
    registry: RegistryClient,
    schemas: HashMap<u32, Arc<Schema>>,
    /// Schema ids that are exactly v1 (decoded by the fast reader).
    v1_ids: HashMap<u32, bool>,
    codec: EventCodec,
}

impl EventDecoder {
    pub fn new(registry: RegistryClient) -> Self {
        Self {
            registry,
            schemas: HashMap::new(),
            v1_ids: HashMap::new(),
            codec: EventCodec::new(),
        }
    }

    /// The writer schema `id`; `None` when the registry does not know it (or `give_up` fired).
    async fn writer_schema(&mut self, id: u32, give_up: &CancellationToken) -> Option<Arc<Schema>> {
        if let Some(s) = self.schemas.get(&id) {
            return Some(s.clone());
        }
        let s = self.registry.schema_by_id_retrying(id, give_up).await?;
        self.schemas.insert(id, s.clone());
        Some(s)
    }

    /// Decodes one record value.
    pub async fn decode(
        &mut self,
        payload: Option<&[u8]>,
        give_up: &CancellationToken,
    ) -> Result<Event, Undecodable> {
        let payload = payload.ok_or_else(|| Undecodable {
            reason: "empty_payload",
            detail: "record has no value".into(),
        })?;
        let (id, datum) = wire::split(payload).map_err(|e| Undecodable {
            reason: "not_wire_format",
            detail: e.to_string(),
        })?;
        let schema = self
            .writer_schema(id, give_up)
            .await
            .ok_or_else(|| Undecodable {
                reason: "unknown_schema",
                detail: format!("schema id {id} is not in the registry"),
            })?;
        let is_v1 = *self
            .v1_ids
            .entry(id)
            .or_insert_with(|| self.codec.is_v1(&schema));
        let decoded = if is_v1 {
            self.codec.decode_v1(datum)
        } else {
            self.codec.decode_generic(&schema, datum)
        };
        decoded.map_err(|e| Undecodable {
            reason: "undecodable",
            detail: e.to_string(),
        })
    }

    /// The codec (for re-encoding as v1).
    pub fn codec(&self) -> &EventCodec {
        &self.codec
    }
}
