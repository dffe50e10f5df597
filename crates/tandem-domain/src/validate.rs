//! Values that can only be built by parsing, so that once a value exists it is valid.

use serde::Serialize;
use std::fmt;

/// A field that failed validation, with a message that says what to fix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    /// The field's name, as in the form or JSON body.
    pub field: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Invalid {
    /// A new validation failure.
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Invalid {
            field,
            message: message.into(),
        }
    }
}

/// A sign-in name: 3–64 characters of lowercase letters, digits, `.`, `_`, `-` and `@`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    /// Parses and normalises (lowercases) a sign-in name.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let s = s.trim().to_lowercase();
        if s.len() < 3 || s.len() > 64 {
            return Err(Invalid::new("username", "must be 3 to 64 characters"));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_@".contains(c))
        {
            return Err(Invalid::new(
                "username",
                "may contain only letters, digits, '.', '-', '_' and '@'",
            ));
        }
        Ok(Username(s))
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An e-mail address, checked for plausible shape (the mail server decides the rest).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Parses an address of the form `local@domain.tld`.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let s = s.trim();
        let ok = s.len() <= 254
            && s.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !s.chars().any(|c| c.is_whitespace() || c.is_control())
            });
        if ok {
            Ok(Email(s.to_string()))
        } else {
            Err(Invalid::new(
                "email",
                "must be an address like name@example.com",
            ))
        }
    }
    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A short human name (a person, a client, a site): 1–120 characters, no control characters.
pub fn display_name(field: &'static str, s: &str) -> Result<String, Invalid> {
    let s = s.trim();
    if s.is_empty() {
        return Err(Invalid::new(field, "is required"));
    }
    if s.chars().count() > 120 {
        return Err(Invalid::new(field, "must be at most 120 characters"));
    }
    if s.chars().any(|c| c.is_control()) {
        return Err(Invalid::new(field, "must not contain control characters"));
    }
    Ok(s.to_string())
}

/// A password good enough to accept: 12–1024 characters.
///
/// Length is what matters (NIST SP 800-63B); no composition rules.
pub fn password(s: &str) -> Result<&str, Invalid> {
    let n = s.chars().count();
    if n < 12 {
        return Err(Invalid::new("password", "must be at least 12 characters"));
    }
    if n > 1024 {
        return Err(Invalid::new("password", "must be at most 1024 characters"));
    }
    Ok(s)
}

/// An IANA time zone name that Tandem knows, such as `America/Phoenix`.
pub fn time_zone(s: &str) -> Result<String, Invalid> {
    let s = s.trim();
    jiff::tz::TimeZone::get(s)
        .map(|_| s.to_string())
        .map_err(|_| {
            Invalid::new(
                "time_zone",
                "must be an IANA time zone such as America/New_York",
            )
        })
}

/// A URL-safe short name derived from a display name: `Harbor Point Engineering` → `harbor-point-engineering`.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_normalised_and_checked() {
        assert_eq!(
            Username::parse(" Alex.Admin ").unwrap().as_str(),
            "alex.admin"
        );
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse("drop table;").is_err());
    }

    #[test]
    fn emails_and_zones() {
        assert!(Email::parse("it@harbor-point.test").is_ok());
        assert!(Email::parse("nope").is_err());
        assert!(Email::parse("a@b").is_err());
        assert!(time_zone("America/Phoenix").is_ok());
        assert!(time_zone("Mars/Olympus").is_err());
        assert_eq!(
            slug("Harbor Point Engineering, Inc."),
            "harbor-point-engineering-inc"
        );
    }
}
