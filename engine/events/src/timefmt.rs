//! Event timestamps as RFC 3339 text, written without `core::fmt`: byte for byte what
//! chrono's serde writes for a `DateTime<Utc>` (`SecondsFormat::AutoSi`, `Z`), at a
//! fraction of the cost (every event carries one, and the log writes three per SQL
//! statement).

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Serialize, Serializer};

/// The text of `t`, or `None` for years chrono writes with a sign (write those with
/// chrono's serde).
pub(crate) fn text(t: &DateTime<Utc>) -> Option<Text> {
    Text::of(t)
}

/// `serialize_with` for event times.
pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    match Text::of(t) {
        Some(text) => s.serialize_str(text.as_str()),
        None => t.serialize(s),
    }
}

/// Longest text: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
const MAX: usize = 30;

pub(crate) struct Text {
    bytes: [u8; MAX],
    len: usize,
}

impl Text {
    /// The text of `t`, or `None` for years chrono writes with a sign.
    fn of(t: &DateTime<Utc>) -> Option<Self> {
        let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
        let mut out = Text {
            bytes: [0; MAX],
            len: 0,
        };
        let (mut sec, mut nano) = (t.second(), t.nanosecond());
        // A leap second is written as second 60.
        if nano >= 1_000_000_000 {
            sec += 1;
            nano -= 1_000_000_000;
        }
        out.digits(year, 4);
        out.push(b'-');
        out.digits(t.month(), 2);
        out.push(b'-');
        out.digits(t.day(), 2);
        out.push(b'T');
        out.digits(t.hour(), 2);
        out.push(b':');
        out.digits(t.minute(), 2);
        out.push(b':');
        out.digits(sec, 2);
        if nano != 0 {
            out.push(b'.');
            if nano % 1_000_000 == 0 {
                out.digits(nano / 1_000_000, 3);
            } else if nano % 1_000 == 0 {
                out.digits(nano / 1_000, 6);
            } else {
                out.digits(nano, 9);
            }
        }
        out.push(b'Z');
        Some(out)
    }

    fn push(&mut self, b: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    /// `n` as exactly `width` decimal digits (zero-padded).
    fn digits(&mut self, n: u32, width: u32) {
        for i in (0..width).rev() {
            let d = (n / 10u32.pow(i)) % 10;
            self.push(b'0' + d as u8);
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII digits and separators were pushed.
        std::str::from_utf8(self.bytes.get(..self.len).unwrap_or_default()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use chrono::{NaiveDate, TimeZone};

    use super::*;

    #[derive(Serialize)]
    struct Ours(#[serde(serialize_with = "serialize")] DateTime<Utc>);

    fn same(t: DateTime<Utc>) {
        let chrono = serde_json::to_string(&t).unwrap();
        let ours = serde_json::to_string(&Ours(t)).unwrap();
        assert_eq!(ours, chrono, "{t:?}");
    }

    #[test]
    fn writes_what_chrono_writes() {
        // Whole seconds, milli-, micro- and nanosecond fractions, over many dates.
        let mut secs: i64 = -62_135_596_800; // 0001-01-01
        let mut nano: u32 = 0;
        for i in 0..20_000u32 {
            let t = Utc.timestamp_opt(secs, nano).unwrap();
            same(t);
            secs += 86_400 * 181 + 3_607 + i64::from(i % 61);
            nano = match i % 4 {
                0 => 0,
                1 => (i % 1000) * 1_000_000,
                2 => (i * 7919 % 1_000_000) * 1_000,
                _ => i * 104_729 % 1_000_000_000,
            };
        }
        same(Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap());
        same(Utc::now());
    }

    #[test]
    fn leap_seconds_and_signed_years_match_too() {
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 1_250_000_000)
            .unwrap()
            .and_utc();
        same(leap);
        let far = NaiveDate::from_ymd_opt(12_345, 1, 2)
            .unwrap()
            .and_hms_opt(3, 4, 5)
            .unwrap()
            .and_utc();
        same(far);
        let bc = NaiveDate::from_ymd_opt(-44, 3, 15)
            .unwrap()
            .and_hms_opt(12, 0, 0)
            .unwrap()
            .and_utc();
        same(bc);
    }
}
