//! Cron schedules as Kubernetes CronJobs read them: five fields (minute, hour, day of month,
//! month, day of week) with `*`, lists, ranges and steps, or `@hourly` and friends. Used to
//! validate `--frequency` and to tell the next run; times are UTC, like the CronJob
//! controller's default.

use time::{Duration, OffsetDateTime};

struct Field {
    allowed: Vec<bool>,
    /// `*` (for the day-of-month / day-of-week "either" rule).
    any: bool,
}

fn field(spec: &str, min: u32, max: u32) -> Option<Field> {
    let mut allowed = vec![false; max as usize + 1];
    for part in spec.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().ok().filter(|s| *s > 0)?),
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (a.parse().ok()?, b.parse().ok()?)
        } else {
            let v: u32 = range.parse().ok()?;
            (v, if part.contains('/') { max } else { v })
        };
        if lo < min || hi > max || lo > hi {
            return None;
        }
        for v in (lo..=hi).step_by(step as usize) {
            allowed[v as usize] = true;
        }
    }
    Some(Field { allowed, any: spec == "*" })
}

/// The first time strictly after `after` that `schedule` fires, or `None` if it is invalid.
pub fn next_after(schedule: &str, after: OffsetDateTime) -> Option<OffsetDateTime> {
    let expr = match schedule.trim() {
        "@hourly" => "0 * * * *",
        "@daily" | "@midnight" => "0 0 * * *",
        "@weekly" => "0 0 * * 0",
        "@monthly" => "0 0 1 * *",
        "@yearly" | "@annually" => "0 0 1 1 *",
        other => other,
    };
    let parts: Vec<&str> = expr.split_whitespace().collect();
    let [m, h, dom, mon, dow] = parts.as_slice() else { return None };
    let (minute, hour, dom, month) = (field(m, 0, 59)?, field(h, 0, 23)?, field(dom, 1, 31)?, field(mon, 1, 12)?);
    let mut dow = field(dow, 0, 7)?;
    if dow.allowed[7] {
        dow.allowed[0] = true; // 7 is Sunday too
    }
    let mut t = after.to_offset(time::UtcOffset::UTC).replace_second(0).ok()?.replace_nanosecond(0).ok()? + Duration::minutes(1);
    // Every minute for up to five years covers every valid schedule (29 February included).
    for _ in 0..(5 * 366 * 24 * 60) {
        let day_ok = {
            let d = dom.allowed[t.day() as usize];
            let w = dow.allowed[t.weekday().number_days_from_sunday() as usize];
            // Standard cron: when both day fields are restricted, either may match.
            if dom.any || dow.any {
                d && w
            } else {
                d || w
            }
        };
        if month.allowed[t.month() as usize] && day_ok && hour.allowed[t.hour() as usize] && minute.allowed[t.minute() as usize] {
            return Some(t);
        }
        // Skip whole hours and days that cannot match, to keep this cheap.
        if !month.allowed[t.month() as usize] || !day_ok {
            t = t.replace_hour(0).ok()?.replace_minute(0).ok()? + Duration::days(1);
        } else if !hour.allowed[t.hour() as usize] {
            t = t.replace_minute(0).ok()? + Duration::hours(1);
        } else {
            t += Duration::minutes(1);
        }
    }
    None
}

/// The longest time between two runs of `schedule` over the year after `from`, in seconds:
/// what "a backup is overdue" is measured against (an hourly schedule that skips nights
/// has a longest gap of hours, not one). `None` if the schedule is invalid.
pub fn longest_gap(schedule: &str, from: OffsetDateTime) -> Option<u64> {
    let horizon = from + Duration::days(366);
    let mut previous = next_after(schedule, from)?;
    let mut longest = 0i64;
    // Enough runs to see a whole week of a minutely schedule's pattern, and a whole year of
    // anything coarser than every ten minutes.
    for _ in 0..60_000 {
        let Some(next) = next_after(schedule, previous) else { break };
        longest = longest.max((next - previous).whole_seconds());
        if next > horizon {
            break;
        }
        previous = next;
    }
    Some(longest.max(60) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn schedules_fire_when_cron_says() {
        let t = datetime!(2026-11-21 09:35:12 UTC);
        assert_eq!(next_after("@hourly", t), Some(datetime!(2026-11-21 10:00 UTC)));
        assert_eq!(next_after("@daily", t), Some(datetime!(2026-11-22 00:00 UTC)));
        assert_eq!(next_after("*/15 * * * *", t), Some(datetime!(2026-11-21 09:45 UTC)));
        assert_eq!(next_after("30 2 * * 1-5", t), Some(datetime!(2026-11-23 02:30 UTC))); // Saturday -> Monday
        assert_eq!(next_after("0 0 29 2 *", t), Some(datetime!(2028-02-29 00:00 UTC)));
        assert_eq!(next_after("@weekly", t), Some(datetime!(2026-11-22 00:00 UTC)));
        // Sunday
    }

    #[test]
    fn the_longest_gap_is_the_widest_space_between_runs() {
        let t = datetime!(2026-11-21 09:35:12 UTC);
        assert_eq!(longest_gap("@hourly", t), Some(3600));
        assert_eq!(longest_gap("0 3 * * *", t), Some(86_400));
        // Weekdays only: Friday to Monday.
        assert_eq!(longest_gap("30 2 * * 1-5", t), Some(3 * 86_400));
        // Every 15 minutes between 08:00 and 17:45: the night is the gap.
        assert_eq!(longest_gap("*/15 8-17 * * *", t), Some((24 - 17) * 3600 + 8 * 3600 - 45 * 60));
        assert_eq!(longest_gap("@monthly", t), Some(31 * 86_400));
        assert_eq!(longest_gap("@often", t), None);
    }

    #[test]
    fn invalid_schedules_are_refused() {
        for bad in ["", "* * * *", "60 * * * *", "* 24 * * *", "*/0 * * * *", "@often", "a b c d e"] {
            assert_eq!(next_after(bad, datetime!(2026-01-01 0:00 UTC)), None, "{bad:?}");
        }
    }
}
