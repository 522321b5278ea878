//! How soon a calendar syncs again (docs/decisions.md 53). Pushed calendars (Google, Microsoft
//! with a live channel) are polled only as a safety net. iCloud has no push, so CalDAV polling
//! adapts: soon after a change (changes come in bursts: a meeting moved, then moved again), soon
//! while the user is using calsync, and less and less often while the calendar stays quiet.

use chrono::{DateTime, Duration, Utc};

use super::engine::{SyncReport, SYNC_INTERVAL};
use crate::app::App;
use crate::model::{Connection, Provider};

/// The shortest CalDAV interval: one PROPFIND/REPORT pair per calendar every 2 minutes stays far
/// within what iCloud tolerates from one client (it documents no limit; clients poll every
/// 1-15 minutes), and is what a change or an active user earns.
pub const CALDAV_MIN: Duration = Duration::minutes(2);
/// Where a quiet calendar starts, and the longest it waits.
pub const CALDAV_START: Duration = Duration::minutes(5);
pub const CALDAV_MAX: Duration = Duration::minutes(30);
/// A user counts as active this long after their last API request.
pub const ACTIVE_WINDOW: Duration = Duration::minutes(30);

/// The CalDAV rule, on its own: a change or an active user → [`CALDAV_MIN`]; otherwise the last
/// interval doubled, from [`CALDAV_START`], at most [`CALDAV_MAX`].
pub fn caldav_interval(
    changed: bool,
    active_at: Option<DateTime<Utc>>,
    previous: Option<Duration>,
    now: DateTime<Utc>,
) -> Duration {
    if changed || active_at.is_some_and(|at| now - at < ACTIVE_WINDOW) {
        return CALDAV_MIN;
    }
    match previous {
        Some(previous) if previous >= CALDAV_START => (previous * 2).min(CALDAV_MAX),
        _ => CALDAV_START,
    }
}

/// The interval after a successful sync of `conn` that produced `report`.
pub async fn next_interval(app: &App, conn: &Connection, report: &SyncReport) -> Duration {
    if report.pushed {
        return super::push::PUSHED_SYNC_INTERVAL;
    }
    if conn.provider != Provider::Apple {
        return SYNC_INTERVAL;
    }
    let changed = report.written + report.deleted + report.write_back.pushed > 0;
    let active_at = if changed {
        None
    } else {
        match app.store.user_active_at(&conn.user_id).await {
            Ok(at) => at,
            Err(e) => {
                tracing::warn!(error = %e, "user activity not read; treated as idle");
                None
            }
        }
    };
    let previous = conn.poll_interval_seconds.map(Duration::seconds);
    caldav_interval(changed, active_at, previous, Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_calendars_slow_down_and_changes_or_activity_speed_them_up() {
        let now = Utc::now();
        let mut interval = None;
        let mut seen = Vec::new();
        for _ in 0..6 {
            let next = caldav_interval(false, None, interval, now);
            seen.push(next.num_minutes());
            interval = Some(next);
        }
        assert_eq!(seen, vec![5, 10, 20, 30, 30, 30]);
        assert_eq!(caldav_interval(true, None, interval, now), CALDAV_MIN);
        let active = Some(now - Duration::minutes(10));
        assert_eq!(caldav_interval(false, active, interval, now), CALDAV_MIN);
        let long_ago = Some(now - Duration::hours(2));
        assert_eq!(caldav_interval(false, long_ago, interval, now), CALDAV_MAX);
        // After a burst, quiet again: back to the start, then slower.
        assert_eq!(
            caldav_interval(false, None, Some(CALDAV_MIN), now),
            CALDAV_START
        );
    }
}
