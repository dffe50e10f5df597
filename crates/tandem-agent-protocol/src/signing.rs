//! Request signatures: what exactly an agent signs, so that both sides build the same bytes.
//!
//! Every request after enrollment carries three headers: `Tandem-Agent` (the agent id),
//! `Tandem-Timestamp` (unix seconds) and `Tandem-Signature` (base64 ed25519 signature of
//! [`signing_payload`]). The payload binds the method, the protocol path, the time and a
//! hash of the exact body bytes, so a captured request cannot be replayed elsewhere or
//! later than [`MAX_SKEW_SECONDS`], and a replay within that window is harmless because
//! check-ins are idempotent.

use sha2::{Digest, Sha256};

/// The first line of every signed payload; names the scheme and its version.
pub const SIGNATURE_CONTEXT: &str = "tandem-agent-v1";

/// How far, in seconds, a request's timestamp may be from the server's clock, either way.
pub const MAX_SKEW_SECONDS: i64 = 300;

/// The bytes an agent signs and the server verifies:
///
/// ```text
/// tandem-agent-v1\n{METHOD}\n{PATH}\n{TIMESTAMP}\n{hex(sha256(body))}
/// ```
///
/// `method` is upper-cased; `path` is the protocol path such as `/agent/v1/checkin`,
/// without the query and without any prefix the server is mounted under; `timestamp` is
/// the value of the `Tandem-Timestamp` header; `body` is the exact request body.
pub fn signing_payload(method: &str, path: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let body_hash = hex::encode(Sha256::digest(body));
    format!(
        "{SIGNATURE_CONTEXT}\n{}\n{path}\n{timestamp}\n{body_hash}",
        method.to_ascii_uppercase()
    )
    .into_bytes()
}

/// True when a request signed at `timestamp` may be accepted by a server whose clock
/// reads `server_now` (both unix seconds).
pub fn within_skew(server_now: i64, timestamp: i64) -> bool {
    server_now.abs_diff(timestamp) <= MAX_SKEW_SECONDS.unsigned_abs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_matches_the_fixed_vector() {
        let payload = signing_payload(
            "post",
            "/agent/v1/checkin",
            1_700_000_000,
            br#"{"protocol":1,"messages":[]}"#,
        );
        let expected = "tandem-agent-v1\nPOST\n/agent/v1/checkin\n1700000000\n\
             5d29cdf14611058645f0d6d5512cfd52fa5db17cf4bd687707688a28382579d9";
        assert_eq!(String::from_utf8(payload).unwrap(), expected);
    }

    #[test]
    fn empty_body_hashes_to_the_sha256_of_nothing() {
        let payload = signing_payload("GET", "/agent/v1/checkin", 0, b"");
        assert!(payload
            .ends_with(b"\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    }

    #[test]
    fn skew_window_is_inclusive_both_ways() {
        assert!(within_skew(1000, 1300));
        assert!(within_skew(1300, 1000));
        assert!(!within_skew(1000, 1301));
        assert!(!within_skew(1301, 1000));
        assert!(within_skew(i64::MAX, i64::MAX));
        assert!(!within_skew(i64::MIN, i64::MAX));
    }
}
