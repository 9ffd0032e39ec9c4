//! Calendar arithmetic for durations, dates and times of day (UTC, no time zones).

/// Microseconds in one second.
pub const SECOND: i64 = 1_000_000;

/// Parses `500ms`, `30s`, `15m`, `2h`, `1d`, `1w` into microseconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: i64 = num.parse().ok()?;
    let mult = match unit {
        "ms" => 1_000,
        "s" => SECOND,
        "m" => 60 * SECOND,
        "h" => 3_600 * SECOND,
        "d" => 86_400 * SECOND,
        "w" => 7 * 86_400 * SECOND,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Canonical text of a duration in microseconds (largest exact unit).
pub fn format_duration(micros: i64) -> String {
    for (unit, size) in [
        ("w", 7 * 86_400 * SECOND),
        ("d", 86_400 * SECOND),
        ("h", 3_600 * SECOND),
        ("m", 60 * SECOND),
        ("s", SECOND),
        ("ms", 1_000),
    ] {
        if micros != 0 && micros % size == 0 {
            return format!("{}{unit}", micros / size);
        }
    }
    format!("{}ms", micros / 1_000)
}

/// Parses `HH:MM` or `HH:MM:SS` into seconds since midnight.
pub fn parse_time_of_day(s: &str) -> Option<u32> {
    let mut parts = s.split(':');
    let h: u32 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let sec: u32 = match parts.next() {
        Some(p) => p.parse().ok()?,
        None => 0,
    };
    if parts.next().is_some() || h > 23 || m > 59 || sec > 59 {
        return None;
    }
    Some(h * 3600 + m * 60 + sec)
}

/// Parses `YYYY-MM-DD` into days since 1970-01-01.
pub fn parse_date(s: &str) -> Option<i64> {
    let mut parts = s.split('-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Civil date of a day number.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Weekday names, Monday first (the values of `time.weekday`).
pub const WEEKDAYS: &[&str] = &["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Seconds since midnight of a timestamp.
pub fn seconds_of_day(micros: i64) -> i64 {
    micros.div_euclid(SECOND).rem_euclid(86_400)
}

/// Days since the epoch of a timestamp.
pub fn day_number(micros: i64) -> i64 {
    micros.div_euclid(SECOND).div_euclid(86_400)
}

/// Weekday index (0 = Monday) of a timestamp.
pub fn weekday(micros: i64) -> usize {
    // 1970-01-01 was a Thursday (index 3).
    usize::try_from((day_number(micros) + 3).rem_euclid(7)).unwrap_or(0)
}

/// `2026-01-05T10:00:00Z`.
pub fn format_timestamp(micros: i64) -> String {
    let (y, m, d) = civil_from_days(day_number(micros));
    let s = seconds_of_day(micros);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

/// `2026-01-05`.
pub fn format_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_round_trips() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(
            parse_date("2026-01-05").map(format_date).as_deref(),
            Some("2026-01-05")
        );
        assert_eq!(parse_date("2026-02-29"), None);
        assert_eq!(
            parse_date("2024-02-29").map(format_date).as_deref(),
            Some("2024-02-29")
        );
        let monday = parse_date("2026-01-05").unwrap() * 86_400 * SECOND;
        assert_eq!(weekday(monday), 0);
        assert_eq!(weekday(monday + 6 * 86_400 * SECOND), 6);
        assert_eq!(
            format_timestamp(monday + 3_723 * SECOND),
            "2026-01-05T01:02:03Z"
        );
    }

    #[test]
    fn durations_and_times() {
        assert_eq!(parse_duration("30m"), Some(1_800 * SECOND));
        assert_eq!(parse_duration("500ms"), Some(500_000));
        assert_eq!(parse_duration("3x"), None);
        assert_eq!(format_duration(1_800 * SECOND), "30m");
        assert_eq!(parse_time_of_day("09:30"), Some(34_200));
        assert_eq!(parse_time_of_day("24:00"), None);
    }
}
