//! Reading small text files with reasons people can act on.

use std::io::ErrorKind;
use std::path::Path;

/// Reads a text file, or says why not in words fit for a `not_collected` reason.
pub fn read(path: impl AsRef<Path>) -> Result<String, String> {
    let path = path.as_ref();
    std::fs::read_to_string(path).map_err(|e| io_reason(path, &e))
}

/// Reads a one-line file (as in /proc or /sys) without its trailing newline.
pub fn read_line(path: impl AsRef<Path>) -> Result<String, String> {
    read(path).map(|s| s.trim_end_matches(['\n', '\r']).to_string())
}

/// Reads a one-line file whose value may be empty or padding; empty counts as absent.
pub fn read_value(path: impl AsRef<Path>) -> Result<String, String> {
    let path = path.as_ref();
    let value = read_line(path)?.trim().to_string();
    if value.is_empty() {
        Err(format!("{} is empty", path.display()))
    } else {
        Ok(value)
    }
}

/// A `not_collected` reason for a failed read.
pub fn io_reason(path: &Path, error: &std::io::Error) -> String {
    match error.kind() {
        ErrorKind::NotFound => format!("{} does not exist", path.display()),
        ErrorKind::PermissionDenied => format!("permission denied reading {}", path.display()),
        _ => format!("cannot read {}: {error}", path.display()),
    }
}

/// Decodes the octal escapes (`\040` for a space) used in /proc/self/mountinfo.
pub fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|b| (b'0'..=b'7').contains(b)) {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(byte) = u8::try_from(value) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_escapes_are_decoded() {
        assert_eq!(unescape_octal(r"/mnt/my\040disk"), "/mnt/my disk");
        assert_eq!(unescape_octal(r"/a\134b"), r"/a\b");
        assert_eq!(unescape_octal(r"/trailing\04"), r"/trailing\04");
        assert_eq!(unescape_octal(r"\"), r"\");
        assert_eq!(unescape_octal("/plain"), "/plain");
    }

    #[test]
    fn missing_files_give_readable_reasons() {
        let reason = read("/nonexistent/tandem-test").unwrap_err();
        assert_eq!(reason, "/nonexistent/tandem-test does not exist");
    }
}
