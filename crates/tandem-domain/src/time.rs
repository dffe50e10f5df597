//! Instants as stored and compared: microseconds since the Unix epoch, UTC.

use serde::{Deserialize, Serialize};

/// An instant, in microseconds since 1970-01-01T00:00:00Z.
///
/// On the wire it is an RFC 3339 string in UTC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
pub struct Timestamp(pub i64);

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse_rfc3339(&s)
            .ok_or_else(|| serde::de::Error::custom("expected an RFC 3339 instant"))
    }
}

impl Timestamp {
    /// One second, in the unit of [`Timestamp`].
    pub const SECOND: i64 = 1_000_000;

    /// The current instant from the system clock.
    pub fn now() -> Self {
        Self(jiff::Timestamp::now().as_microsecond())
    }

    /// This instant plus `secs` seconds (negative to go back).
    pub fn plus_seconds(self, secs: i64) -> Self {
        Self(self.0.saturating_add(secs.saturating_mul(Self::SECOND)))
    }

    /// As a jiff timestamp, for formatting and time-zone arithmetic.
    pub fn to_jiff(self) -> jiff::Timestamp {
        jiff::Timestamp::from_microsecond(self.0).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }

    /// RFC 3339 in UTC, as the API shows instants.
    pub fn to_rfc3339(self) -> String {
        self.to_jiff().to_string()
    }

    /// Parses an RFC 3339 instant.
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        s.parse::<jiff::Timestamp>()
            .ok()
            .map(|t| Self(t.as_microsecond()))
    }

    /// "2026-11-28 09:14 EST" in the given IANA time zone; falls back to UTC for an unknown zone.
    pub fn display_in(self, tz_name: &str) -> String {
        let tz = jiff::tz::TimeZone::get(tz_name).unwrap_or(jiff::tz::TimeZone::UTC);
        let zoned = self.to_jiff().to_zoned(tz);
        zoned.strftime("%Y-%m-%d %H:%M %Z").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_in_viewer_zone_across_dst() {
        // 2026-07-01T12:00:00Z is 08:00 EDT in New York and 05:00 MST in Phoenix (no DST).
        let t = Timestamp::parse_rfc3339("2026-07-01T12:00:00Z").unwrap();
        assert_eq!(t.display_in("America/New_York"), "2026-07-01 08:00 EDT");
        assert_eq!(t.display_in("America/Phoenix"), "2026-07-01 05:00 MST");
        let w = Timestamp::parse_rfc3339("2026-12-01T12:00:00Z").unwrap();
        assert_eq!(w.display_in("America/New_York"), "2026-12-01 07:00 EST");
        assert_eq!(w.display_in("Not/AZone"), "2026-12-01 12:00 UTC");
    }
}
