//! Check-in sessions for agents (protocol: `docs/AGENT-PROTOCOL.md`, "Sessions").
//!
//! Stateless: a session is the agent's id, an expiry and a nonce, and its key is an HMAC of
//! those bytes under a server secret. The server keeps nothing per session, so a million
//! agents cost no memory, every server sharing the database accepts every session, and a
//! restart does not log agents out. The secret lives in the database (`server_secrets`),
//! made once by whichever server needs it first.

use base64::Engine;
use tandem_agent_protocol::{hmac_sha256, SESSION_KEY_BYTES, SESSION_SECONDS};
use tandem_domain::EndpointId;

/// What a session's key derivation is named by in `server_secrets`.
pub(crate) const PURPOSE: &str = "agent-sessions";

/// Separates session keys from any other use of the secret.
const CONTEXT: &[u8] = b"tandem-agent-session-v1\n";

/// Session token layout: agent id (16 bytes), expiry in unix seconds (8, big-endian), nonce
/// (16).
const TOKEN_BYTES: usize = 16 + 8 + 16;

/// The server secret sessions are derived from.
pub(crate) struct SessionKeys {
    secret: [u8; 32],
}

/// A session as handed to an agent.
pub(crate) struct Issued {
    pub(crate) token: String,
    pub(crate) key: [u8; SESSION_KEY_BYTES],
    pub(crate) expires_in: u64,
}

impl SessionKeys {
    /// From the stored secret (hex of 32 bytes, as [`crate::new_secret`]`(32)` makes it);
    /// `None` if it is not that.
    pub(crate) fn from_stored(stored: &str) -> Option<SessionKeys> {
        let bytes = hex::decode(stored.trim()).ok()?;
        Some(SessionKeys {
            secret: bytes.try_into().ok()?,
        })
    }

    /// A new session for `agent`, valid from `now` (unix seconds) for [`SESSION_SECONDS`].
    pub(crate) fn issue(&self, agent: EndpointId, now: i64) -> Issued {
        let mut bytes = [0u8; TOKEN_BYTES];
        bytes[..16].copy_from_slice(agent.as_uuid().as_bytes());
        let expires = now.saturating_add(SESSION_SECONDS as i64);
        bytes[16..24].copy_from_slice(&expires.to_be_bytes());
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes[24..]);
        Issued {
            token: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
            key: self.key_for(&bytes),
            expires_in: SESSION_SECONDS,
        }
    }

    /// The agent and key of a session token that is well formed and not expired at `now`;
    /// `None` otherwise. Whether the token is genuine shows only when a MAC made with the
    /// key verifies: a forged token yields a key nobody knows.
    pub(crate) fn open(&self, token: &str, now: i64) -> Option<(EndpointId, [u8; 32])> {
        let mut bytes = [0u8; TOKEN_BYTES];
        let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode_slice(token.trim(), &mut bytes)
            .ok()?;
        if n != TOKEN_BYTES {
            return None;
        }
        let expires = i64::from_be_bytes(bytes[16..24].try_into().ok()?);
        if now > expires {
            return None;
        }
        let id = uuid::Uuid::from_slice(&bytes[..16]).ok()?;
        Some((EndpointId::from_uuid(id), self.key_for(&bytes)))
    }

    fn key_for(&self, token: &[u8; TOKEN_BYTES]) -> [u8; 32] {
        hmac_sha256(&self.secret, &[CONTEXT, token.as_slice()].concat())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(b: u8) -> SessionKeys {
        SessionKeys { secret: [b; 32] }
    }

    #[test]
    fn an_issued_session_opens_to_its_agent_and_key_until_it_expires() {
        let agent = EndpointId::new();
        let s = keys(1).issue(agent, 1_000);
        assert_eq!(s.expires_in, SESSION_SECONDS);
        let (id, key) = keys(1).open(&s.token, 1_000).unwrap();
        assert_eq!((id, key), (agent, s.key));
        let last = 1_000 + SESSION_SECONDS as i64;
        assert!(keys(1).open(&s.token, last).is_some());
        assert!(keys(1).open(&s.token, last + 1).is_none());
    }

    #[test]
    fn another_secret_gives_another_key_and_garbage_opens_nothing() {
        let s = keys(1).issue(EndpointId::new(), 0);
        let (_, other) = keys(2).open(&s.token, 0).unwrap();
        assert_ne!(other, s.key);
        for bad in [
            "",
            "x",
            "!!!!",
            &s.token[..s.token.len() - 2],
            &format!("{}AA", s.token),
        ] {
            assert!(keys(1).open(bad, 0).is_none(), "{bad:?}");
        }
        // Two sessions of the same agent differ (the nonce).
        let agent = EndpointId::new();
        let (a, b) = (keys(1).issue(agent, 0), keys(1).issue(agent, 0));
        assert_ne!(a.token, b.token);
        assert_ne!(a.key, b.key);
    }

    #[test]
    fn a_stored_secret_must_be_32_bytes_of_hex() {
        assert!(SessionKeys::from_stored(&crate::new_secret(32)).is_some());
        assert!(SessionKeys::from_stored(&crate::new_secret(16)).is_none());
        assert!(SessionKeys::from_stored("not hex").is_none());
    }
}
