//! UTC time, the crate's one place for dates: audit record timestamps (RFC 3339,
//! milliseconds, `Z`), the UTC day that names a daily audit or log file, `--since`
//! windows, the second-precision times `trusted.toml` and `installs.toml` record, and
//! the compact stamp in backup names. Pure: the only clock reads are
//! [`Timestamp::now`] and [`clock_nanos`].
//!
//! Own calendar arithmetic (Howard Hinnant's `days_from_civil` / `civil_from_days`) rather
//! than a date crate: the log needs only the proleptic Gregorian calendar in UTC, with
//! no time zones, leap seconds or locales.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MS_PER_SECOND: i64 = 1_000;
const MS_PER_DAY: i64 = 86_400_000;

/// A moment, as milliseconds since the Unix epoch (UTC). Serialized as RFC 3339 with
/// milliseconds and `Z`: `2026-05-01T12:00:00.123Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The system clock, now.
    #[must_use]
    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now())
    }

    /// A [`SystemTime`], to the millisecond (before the epoch counts down).
    #[must_use]
    pub fn from_system_time(at: SystemTime) -> Self {
        match at.duration_since(UNIX_EPOCH) {
            Ok(after) => Self(i64::try_from(after.as_millis()).unwrap_or(i64::MAX)),
            Err(before) => Self(-i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX)),
        }
    }

    /// From whole seconds since the epoch.
    #[must_use]
    pub fn from_secs(secs: u64) -> Self {
        Self(i64::try_from(secs).map_or(i64::MAX, |s| s.saturating_mul(MS_PER_SECOND)))
    }

    /// From milliseconds since the epoch.
    #[must_use]
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the epoch.
    #[must_use]
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// The UTC day this moment falls on.
    #[must_use]
    pub const fn day(self) -> Day {
        Day(self.0.div_euclid(MS_PER_DAY))
    }

    /// This moment minus `d` (saturating).
    #[must_use]
    pub fn minus(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }

    /// Parses RFC 3339: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`. `t` and a space are
    /// accepted for `T`, `z` for `Z`; digits of the fraction past milliseconds are
    /// dropped. Without a zone the time is taken as UTC.
    pub fn parse_rfc3339(text: &str) -> Result<Self, TimeError> {
        let bad = || TimeError::Timestamp(text.to_owned());
        if text.len() < 19 || !text.is_ascii() {
            return Err(bad());
        }
        let (date, rest) = text.split_at(10);
        let day = Day::parse(date).map_err(|_| bad())?;
        let rest = rest.strip_prefix(['T', 't', ' ']).ok_or_else(bad)?;
        let b = rest.as_bytes();
        if b.len() < 8 || b[2] != b':' || b[5] != b':' {
            return Err(bad());
        }
        let hour = number(&rest[0..2]).ok_or_else(bad)?;
        let minute = number(&rest[3..5]).ok_or_else(bad)?;
        let second = number(&rest[6..8]).ok_or_else(bad)?;
        // 60 is a leap second: counted as the next second's start.
        if hour > 23 || minute > 59 || second > 60 {
            return Err(bad());
        }
        let mut rest = &rest[8..];
        let mut millis = 0;
        if let Some(fraction) = rest.strip_prefix('.') {
            let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad());
            }
            let mut scale = 100;
            for d in fraction[..digits].bytes().take(3) {
                millis += i64::from(d - b'0') * scale;
                scale /= 10;
            }
            rest = &fraction[digits..];
        }
        let offset_minutes = match rest {
            "" | "Z" | "z" => 0,
            zone if zone.len() == 6 && zone.as_bytes()[3] == b':' => {
                let sign = match zone.as_bytes()[0] {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return Err(bad()),
                };
                let h = number(&zone[1..3]).ok_or_else(bad)?;
                let m = number(&zone[4..6]).ok_or_else(bad)?;
                if h > 23 || m > 59 {
                    return Err(bad());
                }
                sign * (h * 60 + m)
            }
            _ => return Err(bad()),
        };
        let seconds = hour * 3600 + minute * 60 + second - offset_minutes * 60;
        Ok(Self(day.0 * MS_PER_DAY + seconds * MS_PER_SECOND + millis))
    }
}

impl Timestamp {
    /// To the second: `2026-09-01T12:00:00Z` (what the trust store and `installs.toml`
    /// record; the milliseconds are cut, not rounded).
    #[must_use]
    pub fn to_seconds(self) -> String {
        let (h, m, s, _) = self.clock();
        format!("{}T{h:02}:{m:02}:{s:02}Z", self.day())
    }

    /// `20260901T120000Z`: sortable, and no `:` (which some file systems refuse in a
    /// file name).
    #[must_use]
    pub fn compact(self) -> String {
        let (year, month, day) = civil_from_days(self.day().0);
        let (hour, minute, second, _) = self.clock();
        format!("{year:04}{month:02}{day:02}T{hour:02}{minute:02}{second:02}Z")
    }

    /// Appends what [`fmt::Display`] writes (`YYYY-MM-DDTHH:MM:SS.mmmZ`) to `out`
    /// without the formatting machinery: the audit writer stamps every record, and
    /// `write!` with its padded fields cost more than the rest of the line's encoding.
    /// Years outside 0000-9999 (no clock gives them) take the `Display` path.
    pub fn push_rfc3339(self, out: &mut Vec<u8>) {
        let (year, month, day) = civil_from_days(self.day().0);
        if !(0..=9999).contains(&year) {
            use std::io::Write as _;
            // Writing to a Vec cannot fail.
            let _ = write!(out, "{self}");
            return;
        }
        let (h, m, s, ms) = self.clock();
        let digit = |n: i64| b'0' + u8::try_from(n % 10).unwrap_or(0);
        out.extend_from_slice(&[
            digit(year / 1000),
            digit(year / 100),
            digit(year / 10),
            digit(year),
            b'-',
            digit(month / 10),
            digit(month),
            b'-',
            digit(day / 10),
            digit(day),
            b'T',
            digit(h / 10),
            digit(h),
            b':',
            digit(m / 10),
            digit(m),
            b':',
            digit(s / 10),
            digit(s),
            b'.',
            digit(ms / 100),
            digit(ms / 10),
            digit(ms),
            b'Z',
        ]);
    }

    /// Hour, minute, second and millisecond within the UTC day.
    const fn clock(self) -> (i64, i64, i64, i64) {
        let in_day = self.0.rem_euclid(MS_PER_DAY);
        (
            in_day / 3_600_000,
            in_day / 60_000 % 60,
            in_day / 1000 % 60,
            in_day % 1000,
        )
    }
}

impl fmt::Display for Timestamp {
    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (h, m, s, ms) = self.clock();
        write!(f, "{}T{h:02}:{m:02}:{s:02}.{ms:03}Z", self.day())
    }
}

/// The clock's nanoseconds within the current second: a cheap value that varies between
/// calls, for the names of temporary files and directories (not a time, not a secret).
#[must_use]
pub fn clock_nanos() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

/// A UTC calendar day, as days since 1970-01-01. Displayed `YYYY-MM-DD`, which is also
/// the stem of that day's audit file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(i64);

impl Day {
    /// The first millisecond of the day.
    #[must_use]
    pub const fn start(self) -> Timestamp {
        Timestamp(self.0 * MS_PER_DAY)
    }

    /// Parses `YYYY-MM-DD` (a real date of years 0000-9999).
    pub fn parse(text: &str) -> Result<Self, TimeError> {
        let bad = || TimeError::Date(text.to_owned());
        let b = text.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad());
        }
        let year = number(&text[0..4]).ok_or_else(bad)?;
        let month = number(&text[5..7]).ok_or_else(bad)?;
        let day = number(&text[8..10]).ok_or_else(bad)?;
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return Err(bad());
        }
        Ok(Self(days_from_civil(year, month, day)))
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = civil_from_days(self.0);
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

/// Where a `--since` window starts: a time ago (`90s`, `30m`, `1h`, `2d`, `1w`) or a
/// moment (`2026-05-01`, UTC midnight, or an RFC 3339 date-time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// This long before now.
    Ago(Duration),
    /// From this moment on.
    At(Timestamp),
}

impl Since {
    /// Parses a `--since` value.
    pub fn parse(text: &str) -> Result<Self, TimeError> {
        let text = text.trim();
        if let Some(unit) = text.chars().last().filter(char::is_ascii_alphabetic)
            && text.len() > 1
            && text[..text.len() - 1].bytes().all(|b| b.is_ascii_digit())
        {
            let count: u64 = text[..text.len() - 1]
                .parse()
                .map_err(|_| TimeError::Since(text.to_owned()))?;
            let seconds = match unit {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                'w' => 604_800,
                _ => return Err(TimeError::Since(text.to_owned())),
            };
            return count
                .checked_mul(seconds)
                .map(|s| Self::Ago(Duration::from_secs(s)))
                .ok_or_else(|| TimeError::Since(text.to_owned()));
        }
        if text.len() == 10 {
            return Day::parse(text)
                .map(|d| Self::At(d.start()))
                .map_err(|_| TimeError::Since(text.to_owned()));
        }
        Timestamp::parse_rfc3339(text)
            .map(Self::At)
            .map_err(|_| TimeError::Since(text.to_owned()))
    }

    /// The moment the window starts, seen from `now`.
    #[must_use]
    pub fn start(self, now: Timestamp) -> Timestamp {
        match self {
            Self::Ago(d) => now.minus(d),
            Self::At(t) => t,
        }
    }
}

impl std::str::FromStr for Since {
    type Err = TimeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A time that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// Not an RFC 3339 date-time.
    #[error("`{0}` is not an RFC 3339 date-time such as `2026-05-01T12:00:00.000Z`")]
    Timestamp(String),
    /// Not a `YYYY-MM-DD` date.
    #[error("`{0}` is not a date such as `2026-05-01`")]
    Date(String),
    /// Not a `--since` value.
    #[error(
        "`{0}` is neither a duration (`90s`, `30m`, `1h`, `2d`, `1w`) nor a date (`2026-05-01`, `2026-05-01T12:00:00Z`)"
    )]
    Since(String),
}

/// A run of ASCII digits as a number (no sign, no blanks).
fn number(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant, `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date (year, month, day) of a day number counted from 1970-01-01 (Hinnant,
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).expect("valid timestamp")
    }

    #[test]
    fn timestamps_format_as_rfc3339_utc_with_milliseconds() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Timestamp(1_777_636_800_123).to_string(),
            "2026-05-01T12:00:00.123Z"
        );
        assert_eq!(Timestamp(-1).to_string(), "1969-12-31T23:59:59.999Z");
        // A leap day.
        assert_eq!(
            ts("2028-02-29T23:59:59.999Z").day().to_string(),
            "2028-02-29"
        );
    }

    #[test]
    fn timestamps_parse_back_and_respect_offsets() {
        for text in [
            "1970-01-01T00:00:00.000Z",
            "2026-05-01T12:00:00.123Z",
            "2000-02-29T08:30:05.007Z",
            "2100-12-31T23:59:59.999Z",
        ] {
            assert_eq!(ts(text).to_string(), text);
        }
        assert_eq!(ts("2026-05-01T14:00:00+02:00"), ts("2026-05-01T12:00:00Z"));
        assert_eq!(
            ts("2026-05-01t12:00:00.1239z"),
            ts("2026-05-01T12:00:00.123Z")
        );
        for bad in [
            "2026-05-01",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-05-01T24:00:00Z",
            "2026-05-01T12:00:00.Z",
            "2026-05-01T12:00:00+2:00",
            "2026-05-01T12:00:00 UTC",
        ] {
            assert!(Timestamp::parse_rfc3339(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn the_pushed_stamp_is_the_displayed_one() {
        let mut out = Vec::new();
        for ms in [
            0,
            1_777_636_800_123,
            -1,
            -62_167_219_200_000,
            253_402_300_799_999,
            253_402_300_800_000,
            -62_167_219_200_001,
            951_782_400_007,
        ] {
            let t = Timestamp::from_millis(ms);
            out.clear();
            t.push_rfc3339(&mut out);
            assert_eq!(String::from_utf8_lossy(&out), t.to_string(), "{ms}");
        }
    }

    #[test]
    fn seconds_and_compact_stamps() {
        let at = Timestamp::from_secs;
        assert_eq!(at(0).to_seconds(), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400).to_seconds(), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_788_300_000).to_seconds(), "2026-09-01T22:00:00Z");
        assert_eq!(
            ts("2026-05-01T12:00:00.999Z").to_seconds(),
            "2026-05-01T12:00:00Z"
        );
        assert_eq!(at(0).compact(), "19700101T000000Z");
        assert_eq!(at(1_788_264_000).compact(), "20260901T120000Z");
    }

    #[test]
    fn days_round_trip_from_year_0_to_9999() {
        for n in (-719_528..2_932_897).step_by(89) {
            let day = Day(n);
            assert_eq!(Day::parse(&day.to_string()), Ok(day));
        }
    }

    #[test]
    fn since_reads_durations_and_dates() {
        let now = ts("2026-05-03T12:00:00Z");
        let start = |text: &str| Since::parse(text).expect(text).start(now);
        assert_eq!(start("90s"), ts("2026-05-03T11:58:30Z"));
        assert_eq!(start("30m"), ts("2026-05-03T11:30:00Z"));
        assert_eq!(start("1h"), ts("2026-05-03T11:00:00Z"));
        assert_eq!(start("2d"), ts("2026-05-01T12:00:00Z"));
        assert_eq!(start("1w"), ts("2026-04-26T12:00:00Z"));
        assert_eq!(start("2026-05-01"), ts("2026-05-01T00:00:00Z"));
        assert_eq!(start("2026-05-01T06:30:00Z"), ts("2026-05-01T06:30:00Z"));
        assert_eq!(start("0d"), now);
        for bad in [
            "",
            "h",
            "1y",
            "-1h",
            "1.5h",
            "1 h",
            "2026-5-1",
            "yesterday",
            "99999999999999999999d",
        ] {
            assert!(Since::parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}
