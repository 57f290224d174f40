//! The two timestamp formats of the Workspace API, without a date library: `account_expires`
//! (`yyyy-MM-ddTHH:mm:ssZ` or `yyyy-MM-ddTHH:mm:ss.SSSZ`) and Keystone's `expires_at`.

use crate::signing::days_from_civil;

/// Parses an `account_expires` timestamp into unix seconds.
#[allow(clippy::many_single_char_names)] // y, d, h: the calendar's own names.
pub(crate) fn parse_expiry(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let body = match b.len() {
        20 => s.strip_suffix('Z')?,
        24 if b[19] == b'.' && b[20..23].iter().all(u8::is_ascii_digit) => {
            s.get(..19).filter(|_| s.ends_with('Z'))?
        }
        _ => return None,
    };
    let bb = body.as_bytes();
    if bb.len() != 19
        || bb[4] != b'-'
        || bb[7] != b'-'
        || bb[10] != b'T'
        || bb[13] != b':'
        || bb[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = body.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let days_in_month = [
        31,
        if is_leap(y) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo)
        || d < 1
        || d > days_in_month[(mo - 1) as usize]
        || h > 23
        || mi > 59
        || se > 59
    {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// Unix seconds as `yyyy-MM-ddTHH:mm:ssZ`.
pub(crate) fn format_seconds(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Keystone's `expires_at` form, `yyyy-MM-ddTHH:mm:ss.ffffffZ`, of a time in ms.
pub(crate) fn format_keystone(ms: i64) -> String {
    let s = format_seconds(ms.div_euclid(1000));
    format!(
        "{}.{:06}Z",
        s.trim_end_matches('Z'),
        ms.rem_euclid(1000) * 1000
    )
}

/// Inverse of `days_from_civil` (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_expiry_formats_parse_and_round_trip() {
        assert_eq!(parse_expiry("2025-01-01T00:00:00Z"), Some(1_735_689_600));
        assert_eq!(
            parse_expiry("2025-01-01T00:00:00.123Z"),
            Some(1_735_689_600)
        );
        assert_eq!(format_seconds(1_735_689_600), "2025-01-01T00:00:00Z");
        assert_eq!(
            format_keystone(1_735_689_600_123),
            "2025-01-01T00:00:00.123000Z"
        );
        assert_eq!(format_seconds(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn malformed_expiries_are_refused() {
        for bad in [
            "",
            "0",
            "2025-01-01",
            "2025-01-01 00:00:00Z",
            "2025-13-01T00:00:00Z",
            "2025-02-30T00:00:00Z",
            "2025-01-01T00:00:00.1Z",
            "2025-01-01T00:00:00+08:00",
        ] {
            assert_eq!(parse_expiry(bad), None, "{bad}");
        }
    }
}
