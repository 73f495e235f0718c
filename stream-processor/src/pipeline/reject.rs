//! Rejecting one record: its dead letter, with the failure record of `northstar_schemas::failure`.
//!
//! Contract:
//! - Every rejected record becomes exactly one dead letter, counted once in
//!   `northstar_processor_invalid_total{reason, type}`; its headers carry the source position,
//!   the reason, the detail and the failure record (type, every problem, the enforced plan, the
//!   event's ids and the recovery count read from the input's `northstar.recovery` header).
//! - Its bytes are the input's untouched, except that the enforced plan's PII actions are
//!   applied first to a decoded event (the dead letter then holds the rewritten encoding), and
//!   that a consent letter holds no bytes, no key and no identity: it only accounts for the
//!   event.

use northstar_schemas::failure::{EventRef, Failure, FailureType, Source};
use northstar_schemas::headers::{self, dead_letter_headers, header_str};
use northstar_schemas::Event;
use rdkafka::message::{BorrowedMessage, Message};

use super::{Dest, Pipeline, PipelineError};
use crate::metrics;
use crate::validate::Invalid;

/// The component name in failure records.
const COMPONENT: &str = "stream-processor";

impl Pipeline {
    /// Dead-letters `msg` for `invalid`; `event` is what could be decoded of it.
    pub(super) async fn reject(
        &mut self,
        msg: &BorrowedMessage<'_>,
        p: &str,
        invalid: Invalid,
        event: Option<Event>,
    ) -> Result<(), PipelineError> {
        let consent = invalid.failure_type == FailureType::Consent;
        metrics::INVALID
            .with_label_values(&[p, invalid.reason, invalid.failure_type.as_str()])
            .inc();
        let failure = self.failure(msg, invalid, event.as_ref());
        let hdrs = dead_letter_headers(&failure);
        let rewritten = match event {
            Some(mut e) if !consent => match self.gate.pseudonymise(&mut e) {
                true => Some(self.encode_clean(&e)?),
                false => None,
            },
            _ => None,
        };
        let (key, payload) = if consent {
            (None, None)
        } else {
            (msg.key(), rewritten.as_deref().or(msg.payload()))
        };
        self.enqueue(Dest::DeadLetter, key, payload, hdrs).await
    }

    /// The failure record of `msg`, rejected for `invalid`.
    fn failure(
        &self,
        msg: &BorrowedMessage<'_>,
        invalid: Invalid,
        event: Option<&Event>,
    ) -> Failure {
        let source = Source {
            topic: msg.topic().to_string(),
            partition: msg.partition(),
            offset: msg.offset(),
        };
        let consent = invalid.failure_type == FailureType::Consent;
        let mut f = Failure::new(invalid.failure_type, COMPONENT, source, invalid.problems);
        f.reason = invalid.reason.to_string();
        f.plan = self.gate.plan_ref();
        f.event = match event.map(EventRef::of) {
            Some(r) if consent => r.anonymous(),
            Some(r) => r,
            None => EventRef::default(),
        };
        let hdrs = msg.headers();
        f.recovery_count = headers::recovery_count(hdrs);
        f.replay_of = hdrs
            .and_then(|h| header_str(h, headers::REPLAY_OF))
            .map(str::to_string);
        f
    }
}
