//! Text forms of binary-format values, for testing value patterns against them.

use std::fmt::Write as _;

/// Types whose binary form is their text (UTF-8): masked like text.
pub fn is_text(oid: u32) -> bool {
    // text, varchar, bpchar, name, char, json, xml, unknown, citext-like domains are
    // reported with their base type.
    matches!(oid, 25 | 1043 | 1042 | 19 | 18 | 114 | 142 | 705)
}

fn be<const N: usize>(v: &[u8]) -> Option<[u8; N]> {
    v.try_into().ok()
}

/// The text form of a binary value of a known type, `None` for other types.
pub fn render(oid: u32, v: &[u8]) -> Option<String> {
    Some(match oid {
        16 => (if v.first()? != &0 { "t" } else { "f" }).to_owned(),
        21 => i16::from_be_bytes(be(v)?).to_string(),
        23 => i32::from_be_bytes(be(v)?).to_string(),
        20 => i64::from_be_bytes(be(v)?).to_string(),
        26 => u32::from_be_bytes(be(v)?).to_string(),
        700 => f32::from_be_bytes(be(v)?).to_string(),
        701 => f64::from_be_bytes(be(v)?).to_string(),
        2950 => {
            let b: [u8; 16] = be(v)?;
            let mut s = String::with_capacity(36);
            for (i, x) in b.iter().enumerate() {
                if matches!(i, 4 | 6 | 8 | 10) {
                    s.push('-');
                }
                let _ = write!(s, "{x:02x}");
            }
            s
        }
        17 => {
            let mut s = String::with_capacity(2 + v.len() * 2);
            s.push_str("\\x");
            for x in v {
                let _ = write!(s, "{x:02x}");
            }
            s
        }
        3802 => {
            // jsonb: a version byte, then the text.
            let (1, rest) = (v.first()?, v.get(1..)?) else {
                return None;
            };
            String::from_utf8(rest.to_vec()).ok()?
        }
        1082 => {
            let days = i32::from_be_bytes(be(v)?);
            let d = epoch()?.checked_add_signed(chrono::TimeDelta::try_days(days.into())?)?;
            d.format("%Y-%m-%d").to_string()
        }
        1114 | 1184 => {
            let us = i64::from_be_bytes(be(v)?);
            let t = epoch()?
                .and_hms_opt(0, 0, 0)?
                .checked_add_signed(chrono::TimeDelta::microseconds(us))?;
            t.format("%Y-%m-%d %H:%M:%S%.f").to_string()
        }
        1083 => {
            let us = i64::from_be_bytes(be(v)?);
            let t = chrono::NaiveTime::from_hms_opt(0, 0, 0)?
                .overflowing_add_signed(chrono::TimeDelta::microseconds(us))
                .0;
            t.format("%H:%M:%S%.f").to_string()
        }
        1700 => numeric(v)?,
        _ => return None,
    })
}

fn epoch() -> Option<chrono::NaiveDate> {
    chrono::NaiveDate::from_ymd_opt(2000, 1, 1)
}

/// `numeric`: ndigits, weight, sign, dscale, then base-10000 digits.
fn numeric(v: &[u8]) -> Option<String> {
    let word =
        |i: usize| -> Option<i16> { Some(i16::from_be_bytes(be(v.get(i * 2..i * 2 + 2)?)?)) };
    let ndigits = usize::try_from(word(0)?).ok()?;
    let weight = i32::from(word(1)?);
    let sign = word(2)? as u16;
    let dscale = usize::try_from(word(3)?).ok()?;
    match sign {
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        _ => {}
    }
    let digits: Vec<i16> = (0..ndigits).map(|i| word(4 + i)).collect::<Option<_>>()?;
    let mut s = String::new();
    if sign == 0x4000 {
        s.push('-');
    }
    // Integer part.
    if weight < 0 {
        s.push('0');
    } else {
        for i in 0..=weight {
            let d = usize::try_from(i)
                .ok()
                .and_then(|i| digits.get(i))
                .copied()
                .unwrap_or(0);
            if i == 0 {
                let _ = write!(s, "{d}");
            } else {
                let _ = write!(s, "{d:04}");
            }
        }
    }
    if dscale > 0 {
        let mut frac = String::new();
        let mut i = weight + 1;
        while frac.len() < dscale {
            let d = if i < 0 {
                0
            } else {
                usize::try_from(i)
                    .ok()
                    .and_then(|i| digits.get(i))
                    .copied()
                    .unwrap_or(0)
            };
            let _ = write!(frac, "{d:04}");
            i += 1;
        }
        frac.truncate(dscale);
        s.push('.');
        s.push_str(&frac);
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn renders_common_types() {
        assert_eq!(render(23, &42i32.to_be_bytes()).unwrap(), "42");
        assert_eq!(
            render(20, &4_111_111_111_111_111i64.to_be_bytes()).unwrap(),
            "4111111111111111"
        );
        assert_eq!(render(1082, &1i32.to_be_bytes()).unwrap(), "2000-01-02");
        // 12.50: ndigits 2, weight 0, sign +, dscale 2, digits [12, 5000]
        let n = [0u8, 2, 0, 0, 0, 0, 0, 2, 0, 12, 0x13, 0x88];
        assert_eq!(render(1700, &n).unwrap(), "12.50");
        assert_eq!(render(9999, b"x"), None);
    }
}
