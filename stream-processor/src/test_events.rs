//! Events for unit tests: a `track` event with the fields the tests vary.

use northstar_schemas::{Event, EventType};

/// A `track` event `name` by `user` (message id `id`, source `web`), with `context` and
/// `properties` as JSON text.
pub fn track(name: &str, user: &str, id: &str, context: &str, properties: &str) -> Event {
    Event {
        kind: EventType::Track,
        message_id: id.into(),
        user_id: Some(user.into()),
        anonymous_id: None,
        event: Some(name.into()),
        name: None,
        group_id: None,
        previous_id: None,
        timestamp: 0,
        original_timestamp: None,
        sent_at: None,
        received_at: 0,
        context: context.into(),
        properties: properties.into(),
        traits: "{}".into(),
        integrations: "{}".into(),
        source_id: "web".into(),
    }
}
