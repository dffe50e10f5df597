//! Clock helpers: RFC 3339 text on the wire, unix seconds in signatures.

use jiff::Timestamp;

/// Now, as RFC 3339 UTC text with whole seconds, such as `2025-01-02T03:04:05Z`.
pub fn now_rfc3339() -> String {
    rfc3339(Timestamp::now())
}

/// An instant as RFC 3339 UTC text with whole seconds.
pub fn rfc3339(at: Timestamp) -> String {
    format!("{at:.0}")
}

/// Unix seconds as RFC 3339 UTC text, or `None` when out of range.
pub fn unix_to_rfc3339(seconds: i64) -> Option<String> {
    Timestamp::from_second(seconds).ok().map(rfc3339)
}

/// Now, in unix seconds.
pub fn now_unix() -> i64 {
    Timestamp::now().as_second()
}

/// Now, in microseconds since the unix epoch.
pub fn now_unix_micros() -> i64 {
    Timestamp::now().as_microsecond()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_seconds_in_utc() {
        assert_eq!(
            unix_to_rfc3339(1_700_000_000).as_deref(),
            Some("2023-11-14T22:13:20Z")
        );
        assert!(now_rfc3339().ends_with('Z'));
        assert!(!now_rfc3339().contains('.'));
    }
}
