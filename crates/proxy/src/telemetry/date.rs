//! The access log's dates: RFC 3339 in UTC, to the millisecond, with the civil date worked
//! out once a second ([`DateCache`]) rather than for every line.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::json::{Buffer, digits, padded};

/// The text of the last second written, `2024-05-01T12:34:56.`: the civil date is worked out
/// once a second rather than for every line.
#[derive(Debug, Default)]
pub(crate) struct DateCache {
    /// The second since the epoch that `text` spells, once it spells one.
    second: Option<u64>,
    /// RFC 3339 up to the second's dot (of a year of four digits: every other is written
    /// afresh).
    text: [u8; 20],
}

impl DateCache {
    /// `time` as [`rfc3339`] writes it, for a year of four digits (`None` past 9999).
    #[inline(always)]
    pub(crate) fn text(&mut self, time: SystemTime) -> Option<[u8; 24]> {
        let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        let second = since.as_secs();
        if self.second != Some(second) {
            let mut fresh = Vec::with_capacity(32);
            rfc3339(UNIX_EPOCH + Duration::from_secs(second), &mut fresh);
            self.text = fresh[..fresh.len() - b"789Z".len()].try_into().ok()?;
            self.second = Some(second);
        }
        let mut text = [b'Z'; 24];
        text[..20].copy_from_slice(&self.text);
        let millis = digits::<3>(u64::from(since.subsec_millis())).expect("under 1000");
        text[20..23].copy_from_slice(&millis);
        Some(text)
    }
}

/// `2024-05-01T12:34:56.789Z` (RFC 3339, UTC, milliseconds).
pub(crate) fn rfc3339(time: SystemTime, out: &mut impl Buffer) {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs();
    let days = seconds / 86_400;
    let of_day = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    padded::<4>(year, out);
    out.put_byte(b'-');
    padded::<2>(month, out);
    out.put_byte(b'-');
    padded::<2>(day, out);
    out.put_byte(b'T');
    padded::<2>(of_day / 3600, out);
    out.put_byte(b':');
    padded::<2>(of_day / 60 % 60, out);
    out.put_byte(b':');
    padded::<2>(of_day % 60, out);
    out.put_byte(b'.');
    padded::<3>(u64::from(since.subsec_millis()), out);
    out.put_byte(b'Z');
}

/// Year, month, day of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_date_cache_writes_what_rfc3339_writes_across_second_and_day_boundaries() {
        let mut dates = DateCache::default();
        // 2024-05-01T23:59:58.998Z onwards, with late lines from seconds before.
        let base = 1_714_607_998_998u64;
        for offset in [
            0, 1, 2, 3, 1_001, 1_002, 500, 1_999, 2_000, 2_001, 1_000, 86_400_000,
        ] {
            let time = UNIX_EPOCH + Duration::from_millis(base + offset);
            let cached = dates.text(time).expect("a year of four digits");
            let mut fresh = Vec::new();
            rfc3339(time, &mut fresh);
            assert_eq!(cached[..], fresh, "{offset}ms after the first");
        }
        let time = UNIX_EPOCH + Duration::from_millis(base + 1_002);
        assert_eq!(dates.text(time), Some(*b"2024-05-02T00:00:00.000Z"));
    }

    #[test]
    fn a_year_past_9999_is_not_cached_but_written_whole() {
        let time = UNIX_EPOCH + Duration::from_millis(253_402_300_800_001);
        assert_eq!(DateCache::default().text(time), None);
        let mut out = Vec::new();
        rfc3339(time, &mut out);
        assert_eq!(out, b"10000-01-01T00:00:00.001Z");
    }
}
