//! Member fingerprints of distinct-user KPIs: what the processor's state keeps of a user id.
//!
//! Contract: with a PII key, a user id becomes SipHash-1-3 of the id under a 128-bit key
//! derived from the ring's oldest PII key (HMAC-SHA-256, domain-separated): a checkpoint then
//! holds no fingerprint that can be checked against a guessed id without the key. Without a
//! key, the fingerprint is the unkeyed XXH3 of earlier versions (and the processor says so at
//! start). [`MemberKey::id`] names the scheme without revealing the key (0 for the unkeyed
//! one); it is part of each distinct-user KPI's semantic fingerprint in checkpoints, so a
//! change of scheme (a key configured, the oldest key dropped) flags those KPIs' earlier windows
//! as missing input instead of mixing fingerprints of two schemes in one set. Adding a newer
//! key version changes nothing here.

use std::hash::Hasher;

use northstar_schemas::plan::pii::PiiKeyring;
use siphasher::sip::SipHasher13;

/// How user ids become member fingerprints.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MemberKey {
    keys: Option<(u64, u64)>,
    id: u64,
}

impl std::fmt::Debug for MemberKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MemberKey {{ id: {:016x} }}", self.id)
    }
}

impl Default for MemberKey {
    fn default() -> Self {
        MemberKey::UNKEYED
    }
}

impl MemberKey {
    /// The unkeyed XXH3 fingerprint of earlier versions.
    pub const UNKEYED: MemberKey = MemberKey { keys: None, id: 0 };

    /// The key derived from `ring`'s oldest key, or [`MemberKey::UNKEYED`] without a ring.
    pub fn from_ring(ring: Option<&PiiKeyring>) -> MemberKey {
        let Some(key) = ring.and_then(|r| r.all().first()) else {
            return MemberKey::UNKEYED;
        };
        let derived = key.hash("northstar-member-fingerprint");
        // `hmac-sha256:v<n>:<64 hex>`: the hex digits are the derived bytes.
        let hex = derived.rsplit(':').next().unwrap_or_default();
        let word = |i: usize| {
            u64::from_str_radix(hex.get(i * 16..i * 16 + 16).unwrap_or("0"), 16).unwrap_or(0)
        };
        // Bytes 16..24 of the same HMAC output: independent of the key's bytes 0..16.
        MemberKey {
            keys: Some((word(0), word(1))),
            id: word(2).max(1),
        }
    }

    /// Names the scheme (0: unkeyed); reveals nothing of the key.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The member fingerprint of a user id.
    pub fn fingerprint(&self, user: &str) -> u64 {
        match self.keys {
            None => crate::dedup::fingerprint_parts(&[user]),
            Some((k0, k1)) => {
                let mut h = SipHasher13::new_with_keys(k0, k1);
                h.write(user.as_bytes());
                h.finish()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = "v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    const V2: &str = "v2:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

    fn ring(spec: &str) -> PiiKeyring {
        PiiKeyring::parse(spec).expect("keys")
    }

    #[test]
    fn keyed_fingerprints_depend_on_the_oldest_key_only() {
        let unkeyed = MemberKey::from_ring(None);
        assert_eq!(unkeyed, MemberKey::UNKEYED);
        assert_eq!(
            unkeyed.fingerprint("jane"),
            crate::dedup::fingerprint_parts(&["jane"]),
            "unkeyed is the fingerprint of earlier versions"
        );
        let k1 = MemberKey::from_ring(Some(&ring(V1)));
        assert_ne!(k1.fingerprint("jane"), unkeyed.fingerprint("jane"));
        assert_ne!(k1.fingerprint("jane"), k1.fingerprint("jake"));
        assert_ne!(k1.id(), 0);
        let rotated = MemberKey::from_ring(Some(&ring(&format!("{V1} {V2}"))));
        assert_eq!(rotated, k1, "a newer version changes nothing");
        let other = MemberKey::from_ring(Some(&ring(V2)));
        assert_ne!(other.id(), k1.id());
        assert_ne!(other.fingerprint("jane"), k1.fingerprint("jane"));
        assert!(!format!("{k1:?}").contains(&format!("{:x}", k1.fingerprint("x"))));
    }
}
