//! Admitting one decoded event (size, envelope, clock bounds), judging it by the tracking plan,
//! and accepting it (deduplication, counting, the clean record).
//!
//! Contract: an event is accepted only once the envelope, the clock bounds and the tracking
//! plan let it through (what they refuse goes to `super::reject`); it is counted and written to
//! the clean topic unless its
//! (source, messageId) was seen within the dedup window, and its clean record is the input
//! record unchanged when the input already has the clean schema and no clock was corrected.

use northstar_schemas::headers::source_headers;
use northstar_schemas::wire;
use rdkafka::message::{BorrowedMessage, Message, OwnedHeaders};

use super::{Dest, Pipeline, PipelineError};
use crate::plan_gate::{with_plan_headers, Verdict};
use crate::validate::{validate, Invalid};
use crate::{clock, metrics};

/// How an accepted event's clean record is written.
pub(super) struct Output<'a> {
    pub key: Option<&'a [u8]>,
    /// The event differs from the input (PII applied, anonymised): encode it anew.
    pub rewritten: bool,
    pub headers: OwnedHeaders,
}

impl Pipeline {
    /// The checks before the plan: the record's size, the envelope, the clock bounds (which
    /// may correct `event`'s clocks).
    pub(super) fn admit(
        &self,
        msg: &BorrowedMessage<'_>,
        event: &mut northstar_schemas::Event,
    ) -> Result<clock::Corrected, Invalid> {
        let size = msg.payload().map_or(0, <[u8]>::len);
        if size > self.config.max_event_bytes {
            return Err(Invalid::too_large(size, self.config.max_event_bytes));
        }
        validate(event)?;
        clock::bound(event, msg.timestamp().to_millis(), &self.clock)
    }

    /// The tracking plan's verdict on an admitted event: accepted (pseudonymised, stamped,
    /// maybe flagged), quarantined, or withheld for consent.
    ///
    /// The plan decides before deduplication, so that a quarantined event replayed later with
    /// its message id is not taken for a duplicate.
    pub(super) async fn judge(
        &mut self,
        msg: &BorrowedMessage<'_>,
        p: &str,
        mut event: northstar_schemas::Event,
        corrected: clock::Corrected,
    ) -> Result<(), PipelineError> {
        let rejected = match self.gate.judge(&event) {
            Verdict::Withheld { purpose, said } => Invalid::consent(purpose, said.as_deref()),
            Verdict::Anonymise { stamp, purpose } => {
                let flags = format!("consent_anonymised:{purpose}");
                let v = Verdict::Pass {
                    stamp,
                    flags: Some(flags),
                };
                let (topic, partition, offset) = (msg.topic(), msg.partition(), msg.offset());
                let hdrs = with_plan_headers(source_headers(topic, partition, offset), &v);
                self.gate.anonymise(&mut event);
                // The input's key is the user id: the anonymised record gets the anonymous one.
                let key = event.anonymous_id.clone().unwrap_or_default();
                let out = Output {
                    key: Some(key.as_bytes()),
                    rewritten: true,
                    headers: hdrs,
                };
                return self.accept(msg, p, event, corrected, out).await;
            }
            Verdict::Quarantine {
                failure_type,
                reason,
                problems,
            } => Invalid {
                failure_type,
                reason,
                problems,
            },
            v => {
                let (topic, partition, offset) = (msg.topic(), msg.partition(), msg.offset());
                let hdrs = with_plan_headers(source_headers(topic, partition, offset), &v);
                // Its PII is applied before any output.
                let out = Output {
                    key: msg.key(),
                    rewritten: self.gate.pseudonymise(&mut event),
                    headers: hdrs,
                };
                return self.accept(msg, p, event, corrected, out).await;
            }
        };
        self.reject(msg, p, rejected, Some(event)).await
    }

    /// A valid event: deduplicated, counted, and written to the clean topic as `out` says.
    pub(super) async fn accept(
        &mut self,
        msg: &BorrowedMessage<'_>,
        p: &str,
        event: northstar_schemas::Event,
        corrected: clock::Corrected,
        out: Output<'_>,
    ) -> Result<(), PipelineError> {
        let Output {
            key,
            rewritten: pseudonymised,
            headers: hdrs,
        } = out;
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
            self.enqueue(Dest::Clean, key, Some(payload), hdrs).await?;
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
}
