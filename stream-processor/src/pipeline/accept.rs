//! Accepting one valid event: deduplication, counting, the clean record.
//!
//! Contract: an event reaches here only once the envelope, the clock bounds and the tracking
//! plan let it through; it is counted and written to the clean topic unless its
//! (source, messageId) was seen within the dedup window, and its clean record is the input
//! record unchanged when the input already has the clean schema and no clock was corrected.

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
        let clamped = corrected.any();
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
            let payload = if same_schema && !clamped {
                input
            } else {
                let datum = self
                    .decoder
                    .codec()
                    .encode(&event)
                    .map_err(|e| PipelineError::Encode(e.to_string()))?;
                encoded = wire::frame(self.clean_schema_id, &datum);
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
}
