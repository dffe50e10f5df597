//! The agent's identity: an ed25519 key pair made on the endpoint, and the signature
//! headers every request after enrollment carries.

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use tandem_agent_protocol::signing_payload;

/// A fresh random signing key, from the operating system's random source.
pub fn generate_key() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}

/// The public half of a key as the protocol sends it: 32 bytes, base64 (standard).
pub fn public_key_base64(key: &SigningKey) -> String {
    BASE64.encode(key.verifying_key().as_bytes())
}

/// The private half (the 32-byte seed), base64, as the configuration file stores it.
pub fn private_key_base64(key: &SigningKey) -> String {
    BASE64.encode(key.to_bytes())
}

/// Reads a private key written by [`private_key_base64`].
pub fn private_key_from_base64(text: &str) -> anyhow::Result<SigningKey> {
    let bytes = BASE64
        .decode(text.trim())
        .context("the private key is not valid base64")?;
    let Ok(seed) = <[u8; 32]>::try_from(bytes.as_slice()) else {
        bail!("the private key must be 32 bytes, found {}", bytes.len());
    };
    Ok(SigningKey::from_bytes(&seed))
}

/// An enrolled agent: its id and signing key.
pub struct Identity {
    agent_id: String,
    key: SigningKey,
}

/// The three signature headers of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureHeaders {
    /// `Tandem-Agent`.
    pub agent: String,
    /// `Tandem-Timestamp`.
    pub timestamp: String,
    /// `Tandem-Signature`.
    pub signature: String,
}

impl Identity {
    /// An identity from its parts.
    pub fn new(agent_id: impl Into<String>, key: SigningKey) -> Identity {
        Identity {
            agent_id: agent_id.into(),
            key,
        }
    }

    /// The agent id the server assigned.
    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }

    /// Signs a request: see `tandem_agent_protocol::signing_payload`.
    pub fn sign(&self, method: &str, path: &str, timestamp: i64, body: &[u8]) -> SignatureHeaders {
        let payload = signing_payload(method, path, timestamp, body);
        let signature = self.key.sign(&payload);
        SignatureHeaders {
            agent: self.agent_id.clone(),
            timestamp: timestamp.to_string(),
            signature: BASE64.encode(signature.to_bytes()),
        }
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("agent_id", &self.agent_id)
            .field("key", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signature, Verifier};

    /// A fixed key and request give a fixed signature (ed25519 is deterministic), so a
    /// server implementation can check itself against these bytes.
    #[test]
    fn signature_matches_the_fixed_vector() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let identity = Identity::new("0190c3d2-0000-7000-8000-000000000001", key);
        let body = br#"{"protocol":1,"messages":[]}"#;
        let headers = identity.sign("POST", "/agent/v1/checkin", 1_700_000_000, body);
        assert_eq!(headers.agent, "0190c3d2-0000-7000-8000-000000000001");
        assert_eq!(headers.timestamp, "1700000000");
        assert_eq!(public_key_base64(&identity.key), PUBLIC_KEY_VECTOR);
        assert_eq!(headers.signature, SIGNATURE_VECTOR);

        let public = identity.key.verifying_key();
        let raw = BASE64.decode(&headers.signature).unwrap();
        let signature = Signature::from_slice(&raw).unwrap();
        let payload = signing_payload("POST", "/agent/v1/checkin", 1_700_000_000, body);
        assert!(public.verify(&payload, &signature).is_ok());
        let tampered = signing_payload("POST", "/agent/v1/checkin", 1_700_000_001, body);
        assert!(public.verify(&tampered, &signature).is_err());
    }

    // Computed independently (Python `cryptography`) from the seed [7; 32].
    const PUBLIC_KEY_VECTOR: &str = "6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw=";
    const SIGNATURE_VECTOR: &str =
        "5DQHD2wYC9CvWjX5a8yiQvhhVAf7Hx1DbOaaTBEZFhX9EHo4p2SO9m8pYpBcqN8lod9TQI/piv/WiuuDyVUiAg==";

    #[test]
    fn private_key_round_trips_and_rejects_garbage() {
        let key = generate_key();
        let text = private_key_base64(&key);
        let back = private_key_from_base64(&text).unwrap();
        assert_eq!(back.to_bytes(), key.to_bytes());
        assert!(private_key_from_base64("not base64!").is_err());
        assert!(private_key_from_base64(&BASE64.encode([1u8; 31])).is_err());
    }
}
