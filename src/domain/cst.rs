//! China Standard Time (UTC+8, no daylight saving): where the work happens, so every date and
//! time a person reads, and every "day", is in it. Stored times stay UTC.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone, Utc};

/// UTC+8.
pub fn offset() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset")
}

/// A stored time as the clock on the wall shows it.
pub fn local(t: DateTime<Utc>) -> DateTime<FixedOffset> {
    t.with_timezone(&offset())
}

/// The day it is at `now`.
pub fn today(now: DateTime<Utc>) -> NaiveDate {
    local(now).date_naive()
}

/// The first instant of a day.
pub fn start_of_day(day: NaiveDate) -> DateTime<Utc> {
    offset()
        .from_local_datetime(&day.and_time(NaiveTime::MIN))
        .single()
        .expect("UTC+8 is unambiguous")
        .with_timezone(&Utc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_turn_at_midnight_in_china() {
        let t = DateTime::parse_from_rfc3339("2026-11-29T16:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(today(t).to_string(), "2026-11-30");
        assert_eq!(
            start_of_day(today(t)),
            DateTime::parse_from_rfc3339("2026-11-29T16:00:00Z").unwrap()
        );
    }
}
