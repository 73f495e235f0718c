//! A topic's id: which incarnation of a topic name the brokers serve (Kafka's topic id, a UUID
//! given at creation; a deleted and recreated topic gets a new one).
//!
//! Contract: [`topic_id`] asks the brokers through librdkafka's DescribeTopics on an existing
//! client's handle and returns the id as librdkafka prints it (base64 of the 16 bytes), or
//! `None` when the brokers report none (the all-zero id: brokers before Kafka 2.8, or ones that
//! do not keep ids). It never blocks longer than `timeout`. The Rust client does not expose
//! DescribeTopics (rust-rdkafka 0.39), so this module calls the C API through `rdkafka::bindings`:
//! the one place of the services with `unsafe` (ADR 0014), every pointer owned by a guard that
//! frees it, every returned pointer checked for null before it is read.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::client::{Client, ClientContext};

/// Why a topic's id could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TopicIdError {
    #[error("describing topic {topic}: {reason}")]
    Describe { topic: String, reason: String },
    #[error("describing topic {topic}: no answer within {timeout:?}")]
    Timeout { topic: String, timeout: Duration },
}

/// Frees a librdkafka object when dropped.
struct Owned<T>(*mut T, unsafe extern "C" fn(*mut T));

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the pointer came from the matching librdkafka constructor and is freed once.
            unsafe { (self.1)(self.0) }
        }
    }
}

/// The C string at `p`, if any.
///
/// # Safety
/// `p` is null or points to a NUL-terminated string that outlives the call.
unsafe fn text(p: *const std::os::raw::c_char) -> Option<String> {
    // SAFETY: as the caller promises.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// The id of `topic` on the brokers of `client`'s cluster, `None` when they report none.
pub fn topic_id<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    timeout: Duration,
) -> Result<Option<String>, TopicIdError> {
    let fail = |reason: String| TopicIdError::Describe {
        topic: topic.to_string(),
        reason,
    };
    let name = CString::new(topic).map_err(|e| fail(e.to_string()))?;
    let rk = client.native_ptr();
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: `rk` is the live handle of `client`, which outlives this call; every object made
    // here is owned by an `Owned` guard and freed by its librdkafka destructor; `names` and
    // `name` outlive the DescribeTopics call, which copies them.
    unsafe {
        let mut names = [name.as_ptr()];
        let topics = Owned(
            rd::rd_kafka_TopicCollection_of_topic_names(names.as_mut_ptr(), 1),
            rd::rd_kafka_TopicCollection_destroy,
        );
        let options = Owned(
            rd::rd_kafka_AdminOptions_new(
                rk,
                rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBETOPICS,
            ),
            rd::rd_kafka_AdminOptions_destroy,
        );
        let mut errstr = [0 as std::os::raw::c_char; 256];
        rd::rd_kafka_AdminOptions_set_request_timeout(
            options.0,
            ms,
            errstr.as_mut_ptr(),
            errstr.len(),
        );
        let queue = Owned(rd::rd_kafka_queue_new(rk), rd::rd_kafka_queue_destroy);
        rd::rd_kafka_DescribeTopics(rk, topics.0, options.0, queue.0);
        let event = Owned(
            rd::rd_kafka_queue_poll(queue.0, ms.saturating_add(1_000)),
            rd::rd_kafka_event_destroy,
        );
        if event.0.is_null() {
            return Err(TopicIdError::Timeout {
                topic: topic.to_string(),
                timeout,
            });
        }
        if rd::rd_kafka_event_error(event.0) != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
        {
            let reason = text(rd::rd_kafka_event_error_string(event.0)).unwrap_or_default();
            return Err(fail(reason));
        }
        let result = rd::rd_kafka_event_DescribeTopics_result(event.0);
        if result.is_null() {
            return Err(fail("not a DescribeTopics result".into()));
        }
        let mut count = 0usize;
        let described = rd::rd_kafka_DescribeTopics_result_topics(result, &mut count);
        if described.is_null() || count == 0 {
            return Err(fail("no topic in the answer".into()));
        }
        let desc = *described;
        let error = rd::rd_kafka_TopicDescription_error(desc);
        if !error.is_null()
            && rd::rd_kafka_error_code(error) != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
        {
            return Err(fail(
                text(rd::rd_kafka_error_string(error)).unwrap_or_default(),
            ));
        }
        let id = rd::rd_kafka_TopicDescription_topic_id(desc);
        if id.is_null()
            || (rd::rd_kafka_Uuid_most_significant_bits(id) == 0
                && rd::rd_kafka_Uuid_least_significant_bits(id) == 0)
        {
            return Ok(None);
        }
        Ok(text(rd::rd_kafka_Uuid_base64str(id)))
    }
}
