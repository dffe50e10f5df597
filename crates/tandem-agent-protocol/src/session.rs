//! Check-in sessions: one ed25519-signed request buys a short-lived key, and the check-ins
//! that follow carry an HMAC-SHA256 under that key instead of a signature each.
//!
//! Verifying an ed25519 signature costs the server tens of microseconds, an HMAC about one;
//! at a million endpoints heartbeating every minute that is most of a core. The session
//! changes nothing else: the MAC covers the same bytes as a signature ([`signing_payload`]),
//! the same clock window applies, a retired endpoint is refused at once, session or not,
//! and the answers are the same.
//!
//! [`signing_payload`]: crate::signing_payload

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The body of `POST /agent/v1/session` (signed like a check-in).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionRequest {
    /// The protocol version the agent speaks.
    pub protocol: u32,
}

/// The answer to a session request.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionResponse {
    /// Sent back in the `Tandem-Session` header of each check-in.
    pub session: String,
    /// The session's key, base64 (standard alphabet) of 32 bytes. Kept in memory only.
    pub key: String,
    /// Seconds from now until the server stops accepting the session. The agent asks for a
    /// new one a little before.
    pub expires_in: u64,
}

/// How long a session lasts, in seconds.
pub const SESSION_SECONDS: u64 = 3600;

/// The length of a session key, in bytes.
pub const SESSION_KEY_BYTES: usize = 32;

/// The base64 (standard alphabet) HMAC-SHA256 of `payload` under `key`: the value of the
/// `Tandem-Mac` header.
pub fn session_mac(key: &[u8], payload: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(hmac_sha256(key, payload))
}

/// True when `mac_base64` is the HMAC-SHA256 of `payload` under `key` (compared in
/// constant time).
pub fn verify_session_mac(key: &[u8], payload: &[u8], mac_base64: &str) -> bool {
    use base64::Engine;
    let Ok(tag) = base64::engine::general_purpose::STANDARD.decode(mac_base64.trim()) else {
        return false;
    };
    let Ok(mut m) = Hmac::<Sha256>::new_from_slice(key) else {
        return false;
    };
    m.update(payload);
    m.verify_slice(&tag).is_ok()
}

/// HMAC-SHA256 of `payload` under `key` (the server derives session keys with it too).
pub fn hmac_sha256(key: &[u8], payload: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    m.update(payload);
    m.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing_payload;

    #[test]
    fn mac_matches_the_fixed_vector() {
        let payload = signing_payload(
            "POST",
            "/agent/v1/checkin",
            1_700_000_000,
            br#"{"protocol":1,"messages":[]}"#,
        );
        let key = [7u8; 32];
        let mac = session_mac(&key, &payload);
        assert_eq!(mac, "x2ZdRlPPckCV/+jk2stopG6s7mnwtUm6tuLdLvtnejk=");
        assert!(verify_session_mac(&key, &payload, &mac));
    }

    #[test]
    fn a_changed_byte_anywhere_fails() {
        let payload = signing_payload("POST", "/agent/v1/checkin", 1, b"{}");
        let key = [1u8; 32];
        let mac = session_mac(&key, &payload);
        let mut other_key = key;
        other_key[31] ^= 1;
        assert!(!verify_session_mac(&other_key, &payload, &mac));
        let other = signing_payload("POST", "/agent/v1/checkin", 2, b"{}");
        assert!(!verify_session_mac(&key, &other, &mac));
        assert!(!verify_session_mac(&key, &payload, "not base64!"));
        assert!(!verify_session_mac(&key, &payload, ""));
        let mut tag =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &mac).unwrap();
        tag.truncate(16);
        let short = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, tag);
        assert!(!verify_session_mac(&key, &payload, &short));
    }
}
