//! The fingerprint that ties an agent to its server's CA.
//!
//! An administrator reads the fingerprint off the server (its log, the enrollment page) and
//! passes it to `tandem-agent enroll --ca-sha256`; the agent fetches the CA from
//! [`crate::CA_PATH`] and pins it only if the fingerprints are equal. Both sides compute it
//! with [`ca_fingerprint`], so they cannot disagree about its form.

use base64::Engine;
use sha2::{Digest, Sha256};

/// How many bytes a fingerprint has (SHA-256).
pub const FINGERPRINT_BYTES: usize = 32;

/// The fingerprint of a certificate: lower-case hex of the SHA-256 of its DER encoding
/// (64 characters; what `openssl x509 -noout -fingerprint -sha256` prints, without colons).
pub fn ca_fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// Reads a fingerprint as people paste it: hex in either case, optionally with `:` or
/// spaces between the bytes (as OpenSSL prints it). Returns it in [`ca_fingerprint`]'s form,
/// or `None` when it is not 32 bytes of hex.
pub fn parse_fingerprint(text: &str) -> Option<String> {
    let hex_digits: String = text
        .trim()
        .chars()
        .filter(|c| !matches!(c, ':' | ' '))
        .collect::<String>()
        .to_ascii_lowercase();
    let bytes = hex::decode(&hex_digits).ok()?;
    (bytes.len() == FINGERPRINT_BYTES).then_some(hex_digits)
}

/// A DER certificate as PEM (RFC 7468: base64 in lines of 64 characters), the form the
/// server serves the CA in and the agent keeps it in.
pub fn pem_certificate(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        // base64 is ASCII, so every chunk is valid UTF-8.
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_lower_case_hex_sha256_of_the_der() {
        assert_eq!(
            ca_fingerprint(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn pasted_fingerprints_are_read_in_any_common_form() {
        let plain = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let openssl = "E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55";
        assert_eq!(parse_fingerprint(plain).as_deref(), Some(plain));
        assert_eq!(parse_fingerprint(openssl).as_deref(), Some(plain));
        assert_eq!(
            parse_fingerprint(&format!("  {plain}\n")).as_deref(),
            Some(plain)
        );
        assert_eq!(parse_fingerprint(&plain[..62]), None, "too short");
        assert_eq!(parse_fingerprint(&format!("{plain}00")), None, "too long");
        assert_eq!(parse_fingerprint(&plain.replace('e', "g")), None, "not hex");
        assert_eq!(parse_fingerprint(""), None);
    }

    #[test]
    fn pem_is_base64_in_lines_of_64() {
        let pem = pem_certificate(&[7u8; 100]);
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        // 100 bytes are 136 base64 characters: 64 + 64 + 8.
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines[2].len(), 64);
        assert_eq!(lines[3].len(), 8);
        assert_eq!(lines[4], "-----END CERTIFICATE-----");
        assert_eq!(lines.len(), 5);
    }
}
