//! The subset of RFC 5545 recurrence rules Tandem evaluates, written on jiff.
//!
//! Supported: `FREQ=DAILY|WEEKLY|MONTHLY`, `INTERVAL`, `BYDAY` (plain weekdays; with an
//! ordinal such as `1MO` or `-1FR` for monthly rules), `BYMONTHDAY` (1..31 and -31..-1),
//! `COUNT`, `UNTIL` (a date, a UTC date-time ending in `Z`, or a local date-time) and
//! `WKST=MO`. Anything else is refused with a message naming the part, never ignored.
//!
//! Expansion follows RFC 5545 for these parts: weeks start on Monday; a month without the
//! asked day (the 31st in April) is skipped, not moved; `BYDAY` and `BYMONTHDAY` together keep
//! the days that match both. Occurrences earlier than DTSTART are not produced; a DTSTART that
//! does not match the rule is not itself an occurrence (as python-dateutil and most calendar
//! programs do), and `COUNT` counts the occurrences produced.

use jiff::civil::{Date, DateTime, Weekday};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use std::fmt;

/// How often the rule repeats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Freq {
    /// Every `interval` days.
    Daily,
    /// Every `interval` weeks (weeks start on Monday).
    Weekly,
    /// Every `interval` months.
    Monthly,
}

impl Freq {
    /// The RFC 5545 name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Freq::Daily => "DAILY",
            Freq::Weekly => "WEEKLY",
            Freq::Monthly => "MONTHLY",
        }
    }
}

/// The end of a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Until {
    /// A UTC instant (`UNTIL=20270101T000000Z`).
    Utc(jiff::Timestamp),
    /// A local date-time in the rule's zone (`UNTIL=20270101T000000` or `UNTIL=20270101`,
    /// the end of that day).
    Local(DateTime),
}

/// One `BYDAY` entry: a weekday, with an ordinal within the month for monthly rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByDay {
    /// `1` the first, `-1` the last … of the month; `None` every such weekday.
    pub nth: Option<i8>,
    /// The weekday.
    pub weekday: Weekday,
}

/// A parsed recurrence rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// How often.
    pub freq: Freq,
    /// Every how many periods (≥ 1).
    pub interval: u32,
    /// Weekdays (with ordinals for monthly rules).
    pub by_day: Vec<ByDay>,
    /// Days of the month (negative: from the end).
    pub by_month_day: Vec<i8>,
    /// At most this many occurrences.
    pub count: Option<u32>,
    /// No occurrence starts after this.
    pub until: Option<Until>,
}

const DAYS: [(&str, Weekday); 7] = [
    ("MO", Weekday::Monday),
    ("TU", Weekday::Tuesday),
    ("WE", Weekday::Wednesday),
    ("TH", Weekday::Thursday),
    ("FR", Weekday::Friday),
    ("SA", Weekday::Saturday),
    ("SU", Weekday::Sunday),
];

/// The two-letter RFC 5545 name of a weekday.
pub fn weekday_code(w: Weekday) -> &'static str {
    DAYS.iter().find(|d| d.1 == w).map(|d| d.0).unwrap_or("MO")
}

/// A weekday from its two-letter name.
pub fn weekday_from_code(s: &str) -> Option<Weekday> {
    DAYS.iter()
        .find(|d| d.0.eq_ignore_ascii_case(s))
        .map(|d| d.1)
}

/// The English name of a weekday.
pub fn weekday_name(w: Weekday) -> &'static str {
    match w {
        Weekday::Monday => "Monday",
        Weekday::Tuesday => "Tuesday",
        Weekday::Wednesday => "Wednesday",
        Weekday::Thursday => "Thursday",
        Weekday::Friday => "Friday",
        Weekday::Saturday => "Saturday",
        Weekday::Sunday => "Sunday",
    }
}

/// Parses an iCalendar DATE or DATE-TIME value: `YYYYMMDD`, `YYYYMMDDTHHMMSS` (local) or with
/// a trailing `Z` (UTC). Returns the civil date-time and whether it was UTC.
pub fn parse_ical_datetime(s: &str) -> Option<(DateTime, bool, bool)> {
    let s = s.trim();
    let (body, utc) = match s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
        Some(b) => (b, true),
        None => (s, false),
    };
    let num = |a: usize, b: usize| -> Option<i64> {
        let part = body.get(a..b)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let date = Date::new(
        i16::try_from(num(0, 4)?).ok()?,
        i8::try_from(num(4, 6)?).ok()?,
        i8::try_from(num(6, 8)?).ok()?,
    )
    .ok()?;
    if body.len() == 8 {
        return Some((date.to_datetime(jiff::civil::Time::midnight()), utc, true));
    }
    if body.len() != 15 || !body[8..9].eq_ignore_ascii_case("T") {
        return None;
    }
    let time = jiff::civil::Time::new(
        i8::try_from(num(9, 11)?).ok()?,
        i8::try_from(num(11, 13)?).ok()?,
        // A leap second (60) is read as 59.
        i8::try_from(num(13, 15)?.min(59)).ok()?,
        0,
    )
    .ok()?;
    Some((date.to_datetime(time), utc, false))
}

/// Formats a civil date-time as an iCalendar local DATE-TIME (`YYYYMMDDTHHMMSS`).
pub fn ical_local(dt: DateTime) -> String {
    dt.strftime("%Y%m%dT%H%M%S").to_string()
}

impl Rule {
    /// Parses `FREQ=WEEKLY;BYDAY=SU` (an `RRULE:` prefix is allowed). Every error names the
    /// part that is wrong or not supported.
    pub fn parse(s: &str) -> Result<Rule, String> {
        let s = s.trim();
        let s = s
            .strip_prefix("RRULE:")
            .or_else(|| s.strip_prefix("rrule:"))
            .unwrap_or(s);
        if s.is_empty() {
            return Err("the rule is empty; start with FREQ=DAILY, WEEKLY or MONTHLY".into());
        }
        let mut freq = None;
        let mut interval = None;
        let mut by_day = Vec::new();
        let mut by_month_day = Vec::new();
        let mut count = None;
        let mut until = None;
        let mut seen = std::collections::HashSet::new();
        for part in s.split(';').filter(|p| !p.trim().is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not NAME=VALUE"))?;
            let k = k.trim().to_ascii_uppercase();
            let v = v.trim();
            if !seen.insert(k.clone()) {
                return Err(format!("{k} is given twice"));
            }
            match k.as_str() {
                "FREQ" => {
                    freq = Some(match v.to_ascii_uppercase().as_str() {
                        "DAILY" => Freq::Daily,
                        "WEEKLY" => Freq::Weekly,
                        "MONTHLY" => Freq::Monthly,
                        other => {
                            return Err(format!(
                                "FREQ={other} is not supported; use DAILY, WEEKLY or MONTHLY"
                            ))
                        }
                    })
                }
                "INTERVAL" => {
                    let n: u32 = v
                        .parse()
                        .map_err(|_| format!("INTERVAL={v} is not a whole number"))?;
                    if n == 0 || n > 1000 {
                        return Err("INTERVAL must be 1 to 1000".into());
                    }
                    interval = Some(n);
                }
                "COUNT" => {
                    let n: u32 = v
                        .parse()
                        .map_err(|_| format!("COUNT={v} is not a whole number"))?;
                    if n == 0 || n > 10_000 {
                        return Err("COUNT must be 1 to 10000".into());
                    }
                    count = Some(n);
                }
                "UNTIL" => {
                    let (dt, utc, date_only) = parse_ical_datetime(v).ok_or_else(|| {
                        format!("UNTIL={v} is not a date (YYYYMMDD) or date-time (YYYYMMDDTHHMMSSZ)")
                    })?;
                    until = Some(if utc {
                        Until::Utc(
                            TimeZone::UTC
                                .to_ambiguous_zoned(dt)
                                .compatible()
                                .map_err(|e| format!("UNTIL={v}: {e}"))?
                                .timestamp(),
                        )
                    } else if date_only {
                        Until::Local(dt.date().to_datetime(
                            jiff::civil::Time::new(23, 59, 59, 0).expect("a valid time"),
                        ))
                    } else {
                        Until::Local(dt)
                    });
                }
                "BYDAY" => {
                    for d in v.split(',') {
                        let d = d.trim().to_ascii_uppercase();
                        if d.len() < 2 {
                            return Err(format!("BYDAY {d:?} is not a weekday such as MO or 1MO"));
                        }
                        let (num, code) = d.split_at(d.len() - 2);
                        let weekday = weekday_from_code(code)
                            .ok_or_else(|| format!("BYDAY {d:?}: {code:?} is not a weekday (MO…SU)"))?;
                        let nth = if num.is_empty() {
                            None
                        } else {
                            let n: i8 = num
                                .trim_start_matches('+')
                                .parse()
                                .map_err(|_| format!("BYDAY {d:?}: {num:?} is not an ordinal such as 1 or -1"))?;
                            if n == 0 || !(-5..=5).contains(&n) {
                                return Err(format!("BYDAY {d:?}: the ordinal must be 1 to 5 or -1 to -5"));
                            }
                            Some(n)
                        };
                        by_day.push(ByDay { nth, weekday });
                    }
                }
                "BYMONTHDAY" => {
                    for d in v.split(',') {
                        let n: i8 = d
                            .trim()
                            .parse()
                            .map_err(|_| format!("BYMONTHDAY {d:?} is not a day number"))?;
                        if n == 0 || !(-31..=31).contains(&n) {
                            return Err(format!("BYMONTHDAY {n} must be 1 to 31 or -31 to -1"));
                        }
                        by_month_day.push(n);
                    }
                }
                "WKST" => {
                    if !v.eq_ignore_ascii_case("MO") {
                        return Err(format!(
                            "WKST={v} is not supported; weeks start on Monday (WKST=MO)"
                        ));
                    }
                }
                other => {
                    return Err(format!(
                        "{other} is not supported; Tandem understands FREQ, INTERVAL, BYDAY, BYMONTHDAY, COUNT and UNTIL"
                    ))
                }
            }
        }
        let freq = freq.ok_or("FREQ is missing (DAILY, WEEKLY or MONTHLY)")?;
        if count.is_some() && until.is_some() {
            return Err("give COUNT or UNTIL, not both".into());
        }
        if freq != Freq::Monthly && by_day.iter().any(|d| d.nth.is_some()) {
            return Err(format!(
                "BYDAY with an ordinal (such as 1MO or -1FR) needs FREQ=MONTHLY, not {}",
                freq.as_str()
            ));
        }
        if freq == Freq::Weekly && !by_month_day.is_empty() {
            return Err("BYMONTHDAY cannot be used with FREQ=WEEKLY".into());
        }
        if by_day.len() > 50 || by_month_day.len() > 62 {
            return Err("too many BYDAY or BYMONTHDAY values".into());
        }
        Ok(Rule {
            freq,
            interval: interval.unwrap_or(1),
            by_day,
            by_month_day,
            count,
            until,
        })
    }

    /// The candidate dates of the period that starts at `period_start` (a day, the Monday of
    /// a week, or the first of a month), in order. `anchor` is DTSTART's date, which supplies
    /// the defaults (its weekday, its day of the month).
    fn period_dates(&self, period_start: Date, anchor: Date) -> Vec<Date> {
        let mut out = Vec::new();
        match self.freq {
            Freq::Daily => {
                if self.day_ok(period_start) {
                    out.push(period_start);
                }
            }
            Freq::Weekly => {
                for i in 0..7 {
                    let Ok(d) = period_start.checked_add(jiff::Span::new().days(i)) else {
                        continue;
                    };
                    let hit = if self.by_day.is_empty() {
                        d.weekday() == anchor.weekday()
                    } else {
                        self.by_day.iter().any(|b| b.weekday == d.weekday())
                    };
                    if hit {
                        out.push(d);
                    }
                }
            }
            Freq::Monthly => {
                let days = period_start.days_in_month();
                for day in 1..=days {
                    let Ok(d) = Date::new(period_start.year(), period_start.month(), day) else {
                        continue;
                    };
                    let md_ok = if self.by_month_day.is_empty() {
                        // Without BYMONTHDAY, BYDAY alone decides; with neither, DTSTART's day.
                        !self.by_day.is_empty() || day == anchor.day()
                    } else {
                        self.by_month_day.iter().any(|&m| {
                            if m > 0 {
                                m == day
                            } else {
                                days + 1 + m == day
                            }
                        })
                    };
                    let bd_ok = self.by_day.is_empty()
                        || self.by_day.iter().any(|b| {
                            b.weekday == d.weekday()
                                && match b.nth {
                                    None => true,
                                    Some(n) if n > 0 => (day - 1) / 7 + 1 == n,
                                    Some(n) => (days - day) / 7 + 1 == -n,
                                }
                        });
                    if md_ok && bd_ok {
                        out.push(d);
                    }
                }
            }
        }
        out
    }

    fn day_ok(&self, d: Date) -> bool {
        (self.by_day.is_empty() || self.by_day.iter().any(|b| b.weekday == d.weekday()))
            && (self.by_month_day.is_empty()
                || self.by_month_day.iter().any(|&m| {
                    let days = d.days_in_month();
                    if m > 0 {
                        m == d.day()
                    } else {
                        days + 1 + m == d.day()
                    }
                }))
    }

    /// The first day of the period containing `d`.
    fn period_of(&self, d: Date) -> Date {
        match self.freq {
            Freq::Daily => d,
            Freq::Weekly => d
                .checked_sub(jiff::Span::new().days(i64::from(d.weekday().to_monday_zero_offset())))
                .unwrap_or(d),
            Freq::Monthly => d.first_of_month(),
        }
    }

    /// The start of period number `k` counted from `first`.
    fn nth_period(&self, first: Date, k: i64) -> Option<Date> {
        let n = k.checked_mul(i64::from(self.interval))?;
        let span = match self.freq {
            Freq::Daily => jiff::Span::new().try_days(n).ok()?,
            Freq::Weekly => jiff::Span::new().try_weeks(n).ok()?,
            Freq::Monthly => jiff::Span::new().try_months(n).ok()?,
        };
        first.checked_add(span).ok()
    }

    /// How many whole intervals lie between the period of `first` and that of `d` (a lower
    /// bound: the expansion may start there without missing an occurrence, when no COUNT has
    /// to be counted from the beginning).
    fn periods_between(&self, first: Date, d: Date) -> i64 {
        if d <= first {
            return 0;
        }
        let per = i64::from(self.interval);
        let units = match self.freq {
            Freq::Daily => first.until(d).map(|s| i64::from(s.get_days())).unwrap_or(0),
            Freq::Weekly => first
                .until(d)
                .map(|s| i64::from(s.get_days()) / 7)
                .unwrap_or(0),
            Freq::Monthly => {
                (i64::from(d.year()) - i64::from(first.year())) * 12
                    + (i64::from(d.month()) - i64::from(first.month()))
            }
        };
        (units / per - 1).max(0)
    }

    /// Expands the rule from `dtstart` (a local date-time) and calls `f` with each
    /// occurrence's local start, in order, until `f` returns `false`, the rule ends, or the
    /// search gives up (no occurrence in 5,000 periods, or past year 9000). When `from_date`
    /// is given and the rule has no COUNT, whole periods before it are skipped.
    pub fn expand(
        &self,
        dtstart: DateTime,
        tz: &TimeZone,
        from_date: Option<Date>,
        mut f: impl FnMut(DateTime) -> bool,
    ) {
        let anchor = dtstart.date();
        let first = self.period_of(anchor);
        let mut k = match (self.count, from_date) {
            (None, Some(d)) => self.periods_between(first, d),
            _ => 0,
        };
        let until = self.until.map(|u| match u {
            Until::Utc(t) => t,
            Until::Local(dt) => tz
                .to_ambiguous_zoned(dt)
                .compatible()
                .map(|z| z.timestamp())
                .unwrap_or(jiff::Timestamp::MAX),
        });
        let mut produced: u32 = 0;
        let mut empty_run = 0;
        loop {
            let Some(p) = self.nth_period(first, k) else {
                return;
            };
            if p.year() > 9000 {
                return;
            }
            let dates = self.period_dates(p, anchor);
            if dates.is_empty() {
                empty_run += 1;
                if empty_run > 5_000 {
                    return;
                }
            } else {
                empty_run = 0;
            }
            for d in dates {
                let start = d.to_datetime(dtstart.time());
                if start < dtstart {
                    continue;
                }
                if let Some(u) = until {
                    let at = tz
                        .to_ambiguous_zoned(start)
                        .compatible()
                        .map(|z| z.timestamp())
                        .unwrap_or(jiff::Timestamp::MAX);
                    if at > u {
                        return;
                    }
                }
                produced += 1;
                if !f(start) {
                    return;
                }
                if self.count.is_some_and(|c| produced >= c) {
                    return;
                }
            }
            k += 1;
        }
    }

    /// The rule in words: "every Sunday", "every 2 weeks on Monday and Thursday", "monthly on
    /// the last Friday".
    pub fn describe(&self) -> String {
        let every = |unit: &str| {
            if self.interval == 1 {
                format!("every {unit}")
            } else {
                format!("every {} {unit}s", self.interval)
            }
        };
        let ord = |n: i8| match n {
            1 => "first".to_string(),
            2 => "second".to_string(),
            3 => "third".to_string(),
            4 => "fourth".to_string(),
            5 => "fifth".to_string(),
            -1 => "last".to_string(),
            -2 => "second-to-last".to_string(),
            n => format!("{n}th from the end"),
        };
        let days = |list: &[ByDay]| {
            list.iter()
                .map(|b| match b.nth {
                    None => weekday_name(b.weekday).to_string(),
                    Some(n) => format!("the {} {}", ord(n), weekday_name(b.weekday)),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut s = match self.freq {
            Freq::Daily => every("day"),
            Freq::Weekly => every("week"),
            Freq::Monthly => every("month"),
        };
        if !self.by_day.is_empty() {
            s.push_str(&format!(" on {}", days(&self.by_day)));
        }
        if !self.by_month_day.is_empty() {
            let md: Vec<String> = self
                .by_month_day
                .iter()
                .map(|m| {
                    if *m == -1 {
                        "the last day".to_string()
                    } else if *m < 0 {
                        format!("day {} from the end", -m)
                    } else {
                        format!("day {m}")
                    }
                })
                .collect();
            s.push_str(&format!(" on {}", md.join(", ")));
        }
        if let Some(c) = self.count {
            s.push_str(&format!(", {c} times"));
        }
        if let Some(u) = self.until {
            match u {
                Until::Utc(t) => {
                    s.push_str(&format!(", until {}", t.strftime("%Y-%m-%d %H:%M UTC")))
                }
                Until::Local(dt) => {
                    s.push_str(&format!(", until {}", dt.strftime("%Y-%m-%d %H:%M")))
                }
            }
        }
        s
    }
}

impl fmt::Display for Rule {
    /// The canonical text: `FREQ=…;INTERVAL=…;BYDAY=…;BYMONTHDAY=…;COUNT=…|UNTIL=…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FREQ={}", self.freq.as_str())?;
        if self.interval != 1 {
            write!(f, ";INTERVAL={}", self.interval)?;
        }
        if !self.by_day.is_empty() {
            let d: Vec<String> = self
                .by_day
                .iter()
                .map(|b| match b.nth {
                    Some(n) => format!("{n}{}", weekday_code(b.weekday)),
                    None => weekday_code(b.weekday).to_string(),
                })
                .collect();
            write!(f, ";BYDAY={}", d.join(","))?;
        }
        if !self.by_month_day.is_empty() {
            let d: Vec<String> = self.by_month_day.iter().map(|m| m.to_string()).collect();
            write!(f, ";BYMONTHDAY={}", d.join(","))?;
        }
        if let Some(c) = self.count {
            write!(f, ";COUNT={c}")?;
        }
        match self.until {
            Some(Until::Utc(t)) => write!(f, ";UNTIL={}", t.strftime("%Y%m%dT%H%M%SZ"))?,
            Some(Until::Local(dt)) => write!(f, ";UNTIL={}", ical_local(dt))?,
            None => {}
        }
        Ok(())
    }
}
