//! Enrichment of an event's `context` from the request that carried it, without IO.
//!
//! Contract:
//! - **IP.** `context.ip` is kept when the client set it; otherwise it is the client's address:
//!   the connection's peer, or — when the peer is a trusted proxy — the right-most address of
//!   `X-Forwarded-For` that is not a trusted proxy (addresses left of it could be forged by the
//!   client). Then the source's [`IpPolicy`] applies to whichever address it is: kept,
//!   truncated (IPv4 to its /24, IPv6 to its /48) or dropped; an address that does not parse
//!   cannot be anonymised and is dropped under `truncate`.
//! - **User agent.** A `context.userAgent` string is parsed (woothee, the parser Vector's VRL
//!   uses): `context.northstar.user_agent` gets `name`, `version`, `os`, `os_version`,
//!   `category` and `vendor`; `context.os.name`/`version` and `context.device.type` are filled
//!   only when the client did not send them. Nothing the client sent is overwritten.

use std::net::IpAddr;

use ipnet::IpNet;
use std::collections::HashMap;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::raw::{self, Context};

/// What happens to a client IP address before the event is stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpPolicy {
    /// Stored as is.
    Keep,
    /// IPv4 to its /24, IPv6 to its /48: the default, since an address is personal data
    /// (issue 12; docs/tracking-plan.md).
    #[default]
    Truncate,
    /// Not stored.
    Drop,
}

/// What the collector knows of the request besides its body.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    /// The client's address (see [`client_ip`]).
    pub ip: Option<IpAddr>,
    /// The source's IP policy.
    pub ip_policy: IpPolicy,
}

/// The client's address: `peer`, unless `peer` is a trusted proxy, in which case the
/// right-most `X-Forwarded-For` entry that is not a trusted proxy (or the left-most entry when
/// all of them are trusted). Entries that are not addresses end the walk.
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(header) = forwarded_for else {
        return peer;
    };
    let mut client = peer;
    for entry in header.rsplit(',') {
        let Ok(ip) = entry.trim().parse::<IpAddr>() else {
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// `ip` under `policy` (`None`: not stored).
pub fn anonymize(ip: IpAddr, policy: IpPolicy) -> Option<IpAddr> {
    match (policy, ip) {
        (IpPolicy::Keep, ip) => Some(ip),
        (IpPolicy::Drop, _) => None,
        (IpPolicy::Truncate, IpAddr::V4(v4)) => {
            let [a, b, c, _] = v4.octets();
            Some(IpAddr::from([a, b, c, 0]))
        }
        (IpPolicy::Truncate, IpAddr::V6(v6)) => {
            let mut s = v6.segments();
            s[3..].fill(0);
            Some(IpAddr::from(s))
        }
    }
}

/// Applies the IP rules of the module contract to `ctx`.
pub fn enrich_ip(ctx: &mut Context<'_>, request: &RequestInfo) {
    let sent = match ctx.get("ip") {
        Some("null") | None => None,
        Some(text) => match raw::string_value(text) {
            Some(s) => Some(s.trim().parse::<IpAddr>().ok()),
            // A non-string ip is kept as sent only when nothing is to be anonymised.
            None => Some(None),
        },
    };
    let ip = match sent {
        Some(parsed) => parsed,
        None => request.ip,
    };
    if request.ip_policy == IpPolicy::Keep {
        if sent.is_none() {
            if let Some(ip) = ip {
                ctx.set("ip", raw::quoted(&ip.to_string()));
            }
        }
        return;
    }
    match ip.and_then(|ip| anonymize(ip, request.ip_policy)) {
        Some(ip) => ctx.set("ip", raw::quoted(&ip.to_string())),
        None => ctx.remove("ip"),
    }
}

/// The device type Segment's spec uses for a woothee category.
fn device_type(category: &str) -> Option<&'static str> {
    match category {
        "pc" => Some("desktop"),
        "smartphone" | "mobilephone" => Some("mobile"),
        "crawler" => Some("bot"),
        "appliance" => Some("appliance"),
        _ => None,
    }
}

/// What a user agent adds to a context, as JSON text: `northstar.user_agent`, and `os`/`device`
/// for when the client sent none.
#[derive(Debug)]
struct Parsed {
    fields: String,
    os: Option<String>,
    device: Option<String>,
}

fn parse_user_agent(ua: &str) -> Option<Parsed> {
    let parsed = woothee::parser::Parser::new().parse(ua)?;
    let known = |s: &str| (!s.is_empty() && s != "UNKNOWN").then(|| Value::String(s.to_string()));
    let mut fields = Map::new();
    for (key, value) in [
        ("name", parsed.name),
        ("version", parsed.version),
        ("os", parsed.os),
        ("os_version", parsed.os_version.as_ref()),
        ("category", parsed.category),
        ("vendor", parsed.vendor),
    ] {
        if let Some(v) = known(value) {
            fields.insert(key.into(), v);
        }
    }
    let mut os = Map::new();
    if let Some(v) = known(parsed.os) {
        os.insert("name".into(), v);
    }
    if let Some(v) = known(&parsed.os_version) {
        os.insert("version".into(), v);
    }
    Some(Parsed {
        fields: Value::Object(fields).to_string(),
        os: (!os.is_empty()).then(|| Value::Object(os).to_string()),
        device: device_type(parsed.category).map(|t| serde_json::json!({ "type": t }).to_string()),
    })
}

/// Most user agents remembered per thread (clients send the same one again and again).
const UA_CACHE: usize = 512;

thread_local! {
    static PARSED: std::cell::RefCell<HashMap<String, Option<Rc<Parsed>>>> =
        std::cell::RefCell::new(HashMap::new());
}

/// Applies the user-agent rules of the module contract to `ctx`.
pub fn enrich_user_agent(ctx: &mut Context<'_>) {
    let Some(ua) = ctx.get("userAgent").and_then(raw::string_value) else {
        return;
    };
    let parsed = PARSED.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(p) = cache.get(ua.as_ref()) {
            return p.clone();
        }
        let p = parse_user_agent(&ua).map(Rc::new);
        if cache.len() >= UA_CACHE {
            cache.clear();
        }
        cache.insert(ua.into_owned(), p.clone());
        p
    });
    let Some(parsed) = parsed else {
        return;
    };
    if let Some(os) = &parsed.os {
        ctx.set_if_absent("os", os);
    }
    if let Some(device) = &parsed.device {
        ctx.set_if_absent("device", device);
    }
    ctx.mark("user_agent", parsed.fields.clone());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().expect("cidr")).collect()
    }

    #[test]
    fn client_ip_trusts_only_configured_proxies() {
        let trusted = nets(&["10.0.0.0/8", "127.0.0.1/32"]);
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        // Not from a proxy: the header is the client's to forge, ignored.
        assert_eq!(
            client_ip(ip("203.0.113.9"), Some("1.2.3.4"), &trusted),
            ip("203.0.113.9")
        );
        // From a proxy: the right-most untrusted entry.
        assert_eq!(
            client_ip(
                ip("10.0.0.5"),
                Some("6.6.6.6, 198.51.100.7, 10.0.0.9"),
                &trusted
            ),
            ip("198.51.100.7")
        );
        assert_eq!(client_ip(ip("10.0.0.5"), None, &trusted), ip("10.0.0.5"));
        assert_eq!(
            client_ip(ip("127.0.0.1"), Some("2001:db8::1"), &trusted),
            ip("2001:db8::1")
        );
        assert_eq!(
            client_ip(ip("10.0.0.5"), Some("garbage, 198.51.100.7"), &trusted),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn ip_policies() {
        let v4: IpAddr = "198.51.100.77".parse().expect("ip");
        let v6: IpAddr = "2001:db8:1234:5678::1".parse().expect("ip");
        assert_eq!(
            anonymize(v4, IpPolicy::Truncate),
            Some("198.51.100.0".parse().expect("ip"))
        );
        assert_eq!(
            anonymize(v6, IpPolicy::Truncate),
            Some("2001:db8:1234::".parse().expect("ip"))
        );
        assert_eq!(anonymize(v4, IpPolicy::Drop), None);
        let request = |p| RequestInfo {
            ip: Some(v4),
            ip_policy: p,
        };
        let edit = |text: &str, policy| {
            let mut ctx = Context::parse(text);
            enrich_ip(&mut ctx, &request(policy));
            serde_json::from_str::<Value>(&ctx.to_json(raw::Shape::default())).expect("json")
        };
        let ctx = edit("{}", IpPolicy::Keep);
        assert_eq!(
            ctx["ip"], "198.51.100.77",
            "the connection's address when absent"
        );
        let sent = r#"{"ip":"203.0.113.200"}"#;
        let ctx = edit(sent, IpPolicy::Keep);
        assert_eq!(ctx["ip"], "203.0.113.200", "the client's own value is kept");
        let ctx = edit(sent, IpPolicy::Truncate);
        assert_eq!(ctx["ip"], "203.0.113.0", "and truncated like any other");
        assert!(edit(sent, IpPolicy::Drop).get("ip").is_none());
        assert!(
            edit(r#"{"ip":"not an ip"}"#, IpPolicy::Truncate)
                .get("ip")
                .is_none(),
            "what cannot be anonymised is not stored"
        );
        assert_eq!(edit(r#"{"ip":7}"#, IpPolicy::Keep)["ip"], 7, "kept as sent");
        assert!(edit(r#"{"ip":7}"#, IpPolicy::Truncate).get("ip").is_none());
        assert_eq!(
            edit(r#"{"ip":null}"#, IpPolicy::Truncate)["ip"],
            "198.51.100.0",
            "null is absent"
        );
    }

    #[test]
    fn user_agents_are_parsed_without_overwriting() {
        let enriched = |ctx: Value| {
            let text = ctx.to_string();
            let mut ctx = Context::parse(&text);
            enrich_user_agent(&mut ctx);
            serde_json::from_str::<Value>(&ctx.to_json(raw::Shape::default())).expect("json")
        };
        let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
        let ctx = enriched(json!({ "userAgent": chrome }));
        assert_eq!(ctx["northstar"]["user_agent"]["name"], "Chrome");
        assert_eq!(ctx["northstar"]["user_agent"]["version"], "120.0.0.0");
        assert_eq!(ctx["northstar"]["user_agent"]["category"], "pc");
        assert_eq!(ctx["os"]["name"], "Windows 10");
        assert_eq!(ctx["device"]["type"], "desktop");
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1";
        let ctx =
            enriched(json!({ "userAgent": iphone, "os": {"name": "iOS", "version": "17.1.2"} }));
        assert_eq!(
            ctx["os"],
            json!({"name": "iOS", "version": "17.1.2"}),
            "client's os kept"
        );
        assert_eq!(ctx["device"]["type"], "mobile");
        assert_eq!(ctx["northstar"]["user_agent"]["os"], "iPhone");
        let ctx = enriched(json!({ "userAgent": 42 }));
        assert!(ctx.get("northstar").is_none(), "not a string: left alone");
        // Seen again (from the cache): the same result.
        let again = enriched(json!({ "userAgent": chrome }));
        assert_eq!(again["northstar"]["user_agent"]["name"], "Chrome");
    }
}
