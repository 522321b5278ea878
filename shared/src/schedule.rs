//! Time arithmetic over busy intervals: clash groups by a sweep (O(n log n)), merged busy time,
//! and free slots within working hours. Pure functions; the API feeds them events.

use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

/// A plain half-open time span `[start, end)`.
pub type Span = (DateTime<Utc>, DateTime<Utc>);

/// A half-open interval `[start, end)` with the index of what it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub item: usize,
}

/// Groups of intervals that overlap one another transitively (each group has two or more),
/// found with one sort and one sweep: O(n log n). Touching ends do not clash.
pub fn clash_groups(mut intervals: Vec<Interval>) -> Vec<Vec<Interval>> {
    intervals.retain(|i| i.end > i.start);
    intervals.sort_by_key(|i| (i.start, i.end));
    let mut groups = Vec::new();
    let mut current: Vec<Interval> = Vec::new();
    let mut reach = DateTime::<Utc>::MIN_UTC;
    for interval in intervals {
        if !current.is_empty() && interval.start >= reach {
            if current.len() > 1 {
                groups.push(std::mem::take(&mut current));
            } else {
                current.clear();
            }
        }
        reach = if current.is_empty() {
            interval.end
        } else {
            reach.max(interval.end)
        };
        current.push(interval);
    }
    if current.len() > 1 {
        groups.push(current);
    }
    groups
}

/// The union of the intervals, as sorted disjoint intervals (touching ones joined).
pub fn merge(
    mut intervals: Vec<(DateTime<Utc>, DateTime<Utc>)>,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    intervals.retain(|(s, e)| e > s);
    intervals.sort();
    let mut merged: Vec<Span> = Vec::with_capacity(intervals.len());
    for (start, end) in intervals {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

/// Working hours: which weekdays, from when to when, in which zone.
#[derive(Clone, Debug)]
pub struct WorkingHours {
    pub zone: Tz,
    pub days: Vec<Weekday>,
    pub from: NaiveTime,
    pub to: NaiveTime,
}

impl WorkingHours {
    /// The working windows that meet `[start, end)`, in UTC; DST-correct per day.
    pub fn windows(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let mut out = Vec::new();
        let mut day = start.with_timezone(&self.zone).date_naive() - Duration::days(1);
        let last = end.with_timezone(&self.zone).date_naive();
        while day <= last {
            if self.days.contains(&day.weekday()) {
                let at = |t: NaiveTime| {
                    self.zone
                        .from_local_datetime(&day.and_time(t))
                        .earliest()
                        .map(|d| d.with_timezone(&Utc))
                };
                if let (Some(from), Some(to)) = (at(self.from), at(self.to)) {
                    let (from, to) = (from.max(start), to.min(end));
                    if to > from {
                        out.push((from, to));
                    }
                }
            }
            day += Duration::days(1);
        }
        out
    }
}

/// Free slots of `length` within `windows`, avoiding `busy` widened by `buffer` on each side,
/// starting on a `step` grid (from each window's start), at most `max` slots.
pub fn free_slots(
    windows: &[Span],
    busy: &[Span],
    length: Duration,
    buffer: Duration,
    step: Duration,
    max: usize,
) -> Vec<Span> {
    let blocked = merge(
        busy.iter()
            .map(|(s, e)| (*s - buffer, *e + buffer))
            .collect(),
    );
    let mut slots = Vec::new();
    for &(window_start, window_end) in windows {
        let mut candidate = window_start;
        while candidate + length <= window_end && slots.len() < max {
            let slot_end = candidate + length;
            // The first blocked interval that ends after the candidate starts.
            let clash = blocked
                .iter()
                .find(|(s, e)| *e > candidate && *s < slot_end);
            match clash {
                None => {
                    slots.push((candidate, slot_end));
                    candidate += step;
                }
                Some((_, blocked_end)) => {
                    // Jump past the clash, staying on the step grid.
                    let steps = ((*blocked_end - window_start).num_seconds() + step.num_seconds()
                        - 1)
                        / step.num_seconds();
                    candidate = window_start + step * steps.max(1) as i32;
                }
            }
        }
    }
    slots
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, h, m, 0).unwrap()
    }

    fn iv(a: (u32, u32), b: (u32, u32), item: usize) -> Interval {
        Interval {
            start: t(a.0, a.1),
            end: t(b.0, b.1),
            item,
        }
    }

    #[test]
    fn clashes_group_transitively_and_touching_ends_do_not_clash() {
        let groups = clash_groups(vec![
            iv((9, 0), (10, 0), 0),
            iv((9, 30), (11, 0), 1),
            iv((10, 45), (11, 30), 2),
            iv((11, 30), (12, 0), 3),
            iv((13, 0), (14, 0), 4),
            iv((13, 0), (13, 30), 5),
        ]);
        let items: Vec<Vec<usize>> = groups
            .iter()
            .map(|g| g.iter().map(|i| i.item).collect())
            .collect();
        assert_eq!(items, [vec![0, 1, 2], vec![5, 4]]);
    }

    #[test]
    fn the_sweep_agrees_with_pairwise_comparison() {
        let mut seed = 12345u64;
        let mut intervals = Vec::new();
        for item in 0..400 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let start = t(0, 0) + Duration::minutes((seed % 20_000) as i64);
            intervals.push(Interval {
                start,
                end: start + Duration::minutes(15 + (seed % 90) as i64),
                item,
            });
        }
        let clashing: std::collections::BTreeSet<usize> = clash_groups(intervals.clone())
            .into_iter()
            .flatten()
            .map(|i| i.item)
            .collect();
        let pairwise: std::collections::BTreeSet<usize> = intervals
            .iter()
            .filter(|a| {
                intervals
                    .iter()
                    .any(|b| a.item != b.item && a.start < b.end && b.start < a.end)
            })
            .map(|a| a.item)
            .collect();
        assert_eq!(clashing, pairwise);
    }

    #[test]
    fn free_slots_respect_working_hours_busy_time_and_buffers() {
        let hours = WorkingHours {
            zone: "Europe/Paris".parse().unwrap(),
            days: vec![Weekday::Mon],
            from: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            to: NaiveTime::from_hms_opt(12, 0, 0).unwrap(),
        };
        let windows = hours.windows(t(0, 0), t(23, 0));
        assert_eq!(
            windows,
            [(t(8, 0), t(11, 0))],
            "09:00-12:00 Paris is 08:00-11:00 UTC in March"
        );
        let busy = [(t(9, 0), t(10, 0))];
        let slots = free_slots(
            &windows,
            &busy,
            Duration::minutes(30),
            Duration::minutes(15),
            Duration::minutes(30),
            10,
        );
        assert_eq!(slots, [(t(8, 0), t(8, 30)), (t(10, 30), t(11, 0))]);
        assert_eq!(
            merge(vec![
                (t(9, 0), t(10, 0)),
                (t(10, 0), t(11, 0)),
                (t(12, 0), t(13, 0))
            ]),
            [(t(9, 0), t(11, 0)), (t(12, 0), t(13, 0))]
        );
    }
}
