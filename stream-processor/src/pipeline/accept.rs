//! Accepting one valid event (deduplication, counting, the clean record) and rejecting one (the
//! dead letter).
//!
//! Contract: an event reaches here only once the envelope, the clock bounds and the tracking
//! plan let it through; it is counted and written to the clean topic unless its
//! (source, messageId) was seen within the dedup window, and its clean record is the input
//! record unchanged when the input already has the clean schema and no clock was corrected.

use northstar_schemas::headers::dead_letter_headers;
use northstar_schemas::wire;
use rdkafka::message::{BorrowedMessage, Message, OwnedHeaders};

use super::{Dest, Pipeline, PipelineError};
use crate::{clock, metrics};

impl Pipeline {
    /// A valid event: deduplicated, counted, and written to the clean topic with `hdrs`.
    pub(super) async fn accept(
        &mut self,
        msg: &BorrowedMessage<'_>,
        p: &str,
        event: northstar_schemas::Event,
        corrected: clock::Corrected,
        pseudonymised: bool,
        hdrs: OwnedHeaders,
    ) -> Result<(), PipelineError> {
        let partition = msg.partition();
        // Corrected clocks go to the lake as well, so that the lake and the KPIs agree.
        if corrected.timestamp {
            metrics::FUTURE_CLAMPED.with_label_values(&[p]).inc();
        }
        if corrected.received_at {
            metrics::RECEIVED_AT_CORRECTED.with_label_values(&[p]).inc();
        }
        let rewritten = corrected.any() || pseudonymised;
        let Some(state) = self.partitions.get_mut(&partition) else {
            return Err(PipelineError::Checkpoint(format!(
                "partition {partition} has no state"
            )));
        };
        if state.is_duplicate(&event.source_id, &event.message_id, event.received_at) {
            if let Some(c) = self.counters.get(&partition) {
                c.duplicates.inc();
            }
        } else {
            let counted = state.count(&event, event.timestamp.div_euclid(1000));
            if counted.late_updated {
                metrics::LATE_UPDATED.with_label_values(&[p]).inc();
            }
            for k in counted.late_dropped {
                let kpi = self.catalog.kpis[k].name.as_str();
                metrics::LATE_DROPPED.with_label_values(&[p, kpi]).inc();
            }
            for k in counted.folded {
                let kpi = self.catalog.kpis[k].name.as_str();
                metrics::SEGMENT_FOLDED.with_label_values(&[p, kpi]).inc();
            }
            // An unchanged event written with the clean topic's schema goes through as is.
            let input = msg.payload().unwrap_or_default();
            let same_schema = wire::split(input).is_ok_and(|(id, _)| id == self.clean_schema_id);
            let encoded;
            let payload = if same_schema && !rewritten {
                input
            } else {
                encoded = self.encode_clean(&event)?;
                &encoded
            };
            self.enqueue(Dest::Clean, msg.key(), Some(payload), hdrs)
                .await?;
            if let Some(c) = self.counters.get(&partition) {
                c.events_out.inc();
            }
        }
        Ok(())
    }

    /// `event` in the clean topic's wire format.
    pub(super) fn encode_clean(
        &self,
        event: &northstar_schemas::Event,
    ) -> Result<Vec<u8>, PipelineError> {
        let datum = self
            .decoder
            .codec()
            .encode(event)
            .map_err(|e| PipelineError::Encode(e.to_string()))?;
        Ok(wire::frame(self.clean_schema_id, &datum))
    }

    /// A rejected record to the dead-letter topic, with its reason: the input bytes, or
    /// `payload` when the event was rewritten (its PII applied).
    pub(super) async fn dead_letter(
        &mut self,
        msg: &BorrowedMessage<'_>,
        p: &str,
        invalid: crate::validate::Invalid,
        payload: Option<Vec<u8>>,
    ) -> Result<(), PipelineError> {
        metrics::INVALID
            .with_label_values(&[p, invalid.reason])
            .inc();
        let (topic, partition, offset) = (msg.topic(), msg.partition(), msg.offset());
        let hdrs = dead_letter_headers(topic, partition, offset, invalid.reason, &invalid.detail);
        let payload = payload.as_deref().or(msg.payload());
        self.enqueue(Dest::DeadLetter, msg.key(), payload, hdrs)
            .await
    }
}
