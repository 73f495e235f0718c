//! Synthetic events for benchmarks, in the shape of `../shared/bench/make_events.py`: 10 ms
//! apart, 50,000 users, 5 event names, 3 operating systems, 3 plans, revenue 0–100.
//!
//! Contract: deterministic — event `i` is a pure function of `i` and the start time — so the
//! processor's core benchmark and `northstar-fill` (the end-to-end benchmark's input) see the
//! same data.

use crate::{Event, EventType};

/// The reference generator's event names, operating systems and plans.
pub const NAMES: [&str; 5] = [
    "signup",
    "page_view",
    "order_completed",
    "checkout_started",
    "feature_used",
];
pub const OSES: [&str; 3] = ["ios", "android", "web"];
pub const PLANS: [&str; 3] = ["free", "pro", "team"];

/// A track event with the reference generator's fields (`ms`: event and receipt time).
pub fn track(
    id: &str,
    user: &str,
    name: &str,
    ms: i64,
    os: &str,
    plan: &str,
    revenue: f64,
) -> Event {
    Event {
        kind: EventType::Track,
        message_id: id.into(),
        user_id: Some(user.into()),
        anonymous_id: None,
        event: Some(name.into()),
        name: None,
        group_id: None,
        previous_id: None,
        timestamp: ms * 1000,
        original_timestamp: None,
        sent_at: None,
        received_at: ms * 1000,
        context: format!(r#"{{"os":{{"name":"{os}"}}}}"#),
        properties: format!(r#"{{"plan":"{plan}","revenue":{revenue}}}"#),
        traits: "{}".into(),
        integrations: "{}".into(),
        source_id: "bench".into(),
    }
}

/// splitmix64.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Event number `i` of a run starting at `t0_ms`.
pub fn event(i: u64, t0_ms: i64) -> Event {
    let r = |k: u64| mix(i * 8 + k);
    track(
        &format!("{:016x}{:016x}", r(0), r(1)),
        &format!("u{}", r(2) % 50_000),
        NAMES[(r(3) % 5) as usize],
        t0_ms + i as i64 * 10,
        OSES[(r(4) % 3) as usize],
        PLANS[(r(5) % 3) as usize],
        (r(6) % 10_000) as f64 / 100.0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_shaped_like_the_reference() {
        assert_eq!(event(42, 0), event(42, 0));
        assert_ne!(event(42, 0).message_id, event(43, 0).message_id);
        let e = event(7, 1_000);
        assert_eq!(e.timestamp, (1_000 + 70) * 1000);
        assert!(NAMES.contains(&e.event.as_deref().unwrap_or_default()));
        assert!(e.properties.contains("\"revenue\":"));
    }
}
