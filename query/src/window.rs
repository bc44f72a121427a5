//! Calendars: whether an instant falls inside a change window or a freeze.
//!
//! A calendar is a union of weekly recurring windows (days of the week and a start and end
//! time of day) and absolute date ranges (civil start and end), all read in the calendar's
//! IANA time zone from the tz database bundled with this build (never the host's, so a
//! decision replays the same on any machine). Windows are half-open: `09:00`–`17:00` contains
//! 09:00 and excludes 17:00. Civil date ranges are converted to instants at compile time;
//! a civil time skipped by a DST transition resolves to the later instant and an ambiguous one
//! to the earlier (jiff's "compatible" rule).

use jiff::Timestamp;

use crate::compiler::RtCalendar;

/// Whether `calendar` contains `now`.
pub(crate) fn contains(calendar: &RtCalendar, now: Timestamp) -> bool {
    if calendar
        .dates
        .iter()
        .any(|(start, end)| *start <= now && now < *end)
    {
        return true;
    }
    if calendar.weekly.is_empty() {
        return false;
    }
    let zoned = now.to_zoned(calendar.tz.clone());
    let weekday_bit = 1u8 << zoned.weekday().to_monday_zero_offset();
    let minute =
        u16::try_from(i32::from(zoned.hour()) * 60 + i32::from(zoned.minute())).unwrap_or(0);
    calendar
        .weekly
        .iter()
        .any(|(days, start, end)| days & weekday_bit != 0 && *start <= minute && minute < *end)
}

/// The local time of `now` in the calendar's zone, for messages: `Sat 2025-06-07 12:00 Europe/Berlin`.
pub(crate) fn local_time(calendar: &RtCalendar, now: Timestamp) -> String {
    let zoned = now.to_zoned(calendar.tz.clone());
    let zone = calendar.tz.iana_name().unwrap_or("UTC");
    format!("{} {zone}", zoned.strftime("%a %Y-%m-%d %H:%M"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::tz::TimeZoneDatabase;

    fn berlin_business_hours() -> RtCalendar {
        let tz = TimeZoneDatabase::bundled().get("Europe/Berlin").unwrap();
        let start: Timestamp = "2025-12-20T00:00:00+01:00".parse().unwrap();
        let end: Timestamp = "2026-01-05T00:00:00+01:00".parse().unwrap();
        RtCalendar {
            name: "business-hours".into(),
            tz,
            // Monday to Thursday, 09:00-16:00.
            weekly: vec![(0b0000_1111, 9 * 60, 16 * 60)],
            dates: vec![(start, end)],
        }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn weekly_windows_are_local_and_half_open() {
        let cal = berlin_business_hours();
        // 2025-06-03 is a Tuesday; Berlin is UTC+2 in June.
        assert!(contains(&cal, at("2025-06-03T07:00:00Z")));
        assert!(!contains(&cal, at("2025-06-03T06:59:59Z")));
        assert!(
            !contains(&cal, at("2025-06-03T14:00:00Z")),
            "16:00 local is excluded"
        );
        assert!(contains(&cal, at("2025-06-03T13:59:00Z")));
        // Friday.
        assert!(!contains(&cal, at("2025-06-06T08:00:00Z")));
        assert_eq!(
            local_time(&cal, at("2025-06-06T08:00:00Z")),
            "Fri 2025-06-06 10:00 Europe/Berlin"
        );
        // In January Berlin is UTC+1.
        assert!(contains(&cal, at("2026-01-06T08:00:00Z")));
        assert!(!contains(&cal, at("2026-01-06T07:30:00Z")));
    }

    #[test]
    fn date_ranges_are_absolute() {
        let cal = berlin_business_hours();
        // Saturday inside the range.
        assert!(contains(&cal, at("2025-12-27T12:00:00Z")));
        assert!(
            !contains(&cal, at("2026-01-04T23:00:00Z")),
            "end is exclusive"
        );
    }
}
