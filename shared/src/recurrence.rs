//! Recurring events: a master's rule (RRULE / RDATE / EXDATE lines, RFC 5545) expanded with the
//! `rrule` crate, in the event's own time zone, so 09:00 New York stays 09:00 across DST. A rule
//! must be validated ([`Rule::parse`]) before it can be expanded.
//!
//! Expansion starts near the asked range, not at the series' first start: a rule without COUNT
//! is re-anchored a whole number of its periods later (the validated rule carries every default
//! DTSTART gave it, so the occurrences are the same), so the work follows what the range holds,
//! not how long ago the series began. Rules that cannot be re-anchored (COUNT, several RRULEs)
//! walk from their start within [`SKIP_BUDGET`]; one series lists at most [`SERIES_CAP`]
//! occurrences per range, and callers report when it was cut.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, SubsecRound, TimeZone, Utc};
use chrono_tz::Tz;
use rrule::{Frequency, RRule, RRuleSet};

use crate::ical_rule;
use crate::model::Event;
use crate::time::{key_format, TimeRange};

/// The most occurrences one series lists within one queried range (a daily rule over the longest
/// range, 366 days, is 366; the densest rule accepted on input, 24 a day, is cut after 2,000).
pub const SERIES_CAP: usize = 2000;
/// The densest rule accepted on input: occurrences in one day. Google Calendar refuses rules more
/// frequent than daily through its UI, and a denser rule makes every read of its range heavy.
pub const MAX_PER_DAY: u64 = 24;
/// The largest COUNT accepted on input (a daily rule for over 13 years).
pub const MAX_COUNT: u32 = 5000;
/// Occurrences a rule that cannot be re-anchored may walk through before the asked range.
pub const SKIP_BUDGET: usize = 20_000;

/// A validated recurrence rule anchored at its first start.
#[derive(Clone)]
pub struct Rule {
    dt_start: DateTime<rrule::Tz>,
    rules: Vec<RRule>,
    rdates: Vec<DateTime<rrule::Tz>>,
    exdates: Vec<DateTime<rrule::Tz>>,
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rule")
            .field("dt_start", &self.dt_start.to_rfc3339())
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

/// The first start, in the zone the rule is expanded in: all-day series at UTC midnights (their
/// dates are listed the same way), timed ones in their own zone, else UTC.
fn dtstart(
    start: DateTime<Utc>,
    zone: Option<Tz>,
    all_day: Option<NaiveDate>,
) -> DateTime<rrule::Tz> {
    match (all_day, zone) {
        (Some(date), _) => rrule::Tz::UTC.from_utc_datetime(&date.and_time(chrono::NaiveTime::MIN)),
        (None, Some(zone)) => start.with_timezone(&rrule::Tz::Tz(zone)),
        (None, None) => start.with_timezone(&rrule::Tz::UTC),
    }
}

/// RFC 5545 wants UNTIL in UTC when DTSTART has a zone, and as a DATE for all-day series; many
/// producers write a DATE or a local time anyway. The set is anchored in UTC, so UNTIL becomes
/// UTC: a DATE means the end of that day (midnight, for all-day series, which start then).
fn normalize_until(line: &str, all_day: bool) -> String {
    if !line.to_ascii_uppercase().starts_with("RRULE:") {
        return line.to_owned();
    }
    line.split(';')
        .map(|part| match part.split_once('=') {
            Some((key, value)) if key.eq_ignore_ascii_case("UNTIL") => {
                let fixed = match value.len() {
                    8 if all_day => format!("{value}T000000Z"),
                    8 => format!("{value}T235959Z"),
                    15 => format!("{value}Z"),
                    _ => value.to_owned(),
                };
                format!("{key}={fixed}")
            }
            _ => part.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// Start times a rule gives in one day, at most (BYHOUR x BYMINUTE x BYSECOND, or the count of
/// its sub-daily periods).
fn per_day(rule: &RRule) -> u64 {
    let len = |n: usize| u64::try_from(n.max(1)).unwrap_or(u64::MAX);
    let interval = u64::from(rule.get_interval().max(1));
    let (hours, minutes, seconds) = (
        len(rule.get_by_hour().len()),
        len(rule.get_by_minute().len()),
        len(rule.get_by_second().len()),
    );
    match rule.get_freq() {
        Frequency::Secondly => 86_400u64.div_ceil(interval),
        Frequency::Minutely => 1_440u64.div_ceil(interval) * seconds,
        Frequency::Hourly => 24u64.div_ceil(interval) * minutes * seconds,
        _ => hours * minutes * seconds,
    }
}

impl Rule {
    /// Validates `lines` (RRULE / RDATE / EXDATE, one per line) for an event starting at `start`.
    /// Any rule the `rrule` crate can expand passes: this is what sync keeps (see
    /// [`Rule::check_accepted`] for what the API accepts).
    pub fn parse(
        start: DateTime<Utc>,
        zone: Option<Tz>,
        all_day: Option<NaiveDate>,
        lines: &str,
    ) -> Result<Self, String> {
        // Recurrence times are whole seconds (RFC 5545 DATE-TIME).
        let start = start.trunc_subsecs(0);
        let dt_start = dtstart(start, zone, all_day);
        let mut rule = Self {
            dt_start,
            rules: Vec::new(),
            rdates: Vec::new(),
            exdates: Vec::new(),
        };
        let invalid = |e: String| format!("invalid recurrence: {e}");
        for line in lines.lines().map(str::trim).filter(|l| !l.is_empty()) {
            // All-day series list dates; the set is anchored at UTC midnights, so they match.
            let line = line
                .replace(";VALUE=DATE:", ":")
                .replace(";VALUE=DATE-TIME", "");
            let line = normalize_until(&line, all_day.is_some());
            match ical_rule::line(&line).map_err(invalid)? {
                ical_rule::Line::RRule(r) => rule.rules.push(
                    (*r).validate(dt_start)
                        .map_err(|e| invalid(e.to_string()))?,
                ),
                ical_rule::Line::RDate(dates) => rule.rdates.extend(dates),
                ical_rule::Line::ExDate(dates) => rule.exdates.extend(dates),
            }
        }
        if rule.rules.is_empty() && rule.rdates.is_empty() {
            return Err("a recurrence needs an RRULE or RDATE line".into());
        }
        // DTSTART is always the first occurrence (RFC 5545 §3.8.5.3), even when the rule would
        // not produce it; as an RDATE it joins the set (and an EXDATE can still remove it).
        rule.rdates.push(start.with_timezone(&rrule::Tz::UTC));
        Ok(rule)
    }

    /// What the API accepts on top of [`Rule::parse`]: at most daily, at most [`MAX_PER_DAY`]
    /// occurrences a day, COUNT at most [`MAX_COUNT`]. The same rules arriving by sync are kept and
    /// served within [`SERIES_CAP`].
    pub fn check_accepted(&self) -> Result<(), String> {
        for rule in &self.rules {
            if rule.get_freq() > Frequency::Daily {
                return Err(format!(
                    "FREQ={} is more frequent than daily; the densest rule accepted is daily with at most {MAX_PER_DAY} times a day",
                    rule.get_freq()
                ));
            }
            let times = per_day(rule);
            if times > MAX_PER_DAY {
                return Err(format!(
                    "the rule gives {times} occurrences a day (BYHOUR x BYMINUTE x BYSECOND); at most {MAX_PER_DAY} are accepted"
                ));
            }
            if rule.get_count().is_some_and(|c| c > MAX_COUNT) {
                return Err(format!("COUNT may be at most {MAX_COUNT}"));
            }
        }
        Ok(())
    }

    /// At most how many occurrences start in `[from, to)`.
    pub fn bound_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
        let days = u64::try_from((to - from).num_days().max(0)).unwrap_or(u64::MAX) + 1;
        let ruled = self
            .rules
            .iter()
            .map(|r| per_day(r).saturating_mul(days))
            .fold(0u64, u64::saturating_add);
        ruled.saturating_add(u64::try_from(self.rdates.len()).unwrap_or(u64::MAX))
    }

    /// The last start the rule can give, if it ends (UNTIL, COUNT within [`SKIP_BUDGET`], RDATEs
    /// only); `None` for a series without end.
    pub fn last_start(&self) -> Option<DateTime<Utc>> {
        let mut last = self.rdates.iter().map(|d| d.with_timezone(&Utc)).max();
        for rule in &self.rules {
            let end = if let Some(until) = rule.get_until() {
                until.with_timezone(&Utc)
            } else if rule.get_count().is_some() {
                let set = RRuleSet::new(self.dt_start)
                    .set_rrules(vec![rule.clone()])
                    .limit();
                let mut iter = (&set).into_iter();
                let mut end = None;
                for _ in 0..SKIP_BUDGET {
                    match iter.next() {
                        Some(d) => end = Some(d.with_timezone(&Utc)),
                        None => break,
                    }
                }
                if iter.next().is_some() {
                    return None;
                }
                end?
            } else {
                return None;
            };
            last = Some(last.map_or(end, |l| l.max(end)));
        }
        last
    }

    /// An anchor a whole number of the rule's periods after DTSTART, at or before `from`, from
    /// which the rule gives the same occurrences as from DTSTART. DTSTART itself when the rule
    /// cannot be moved (COUNT, several RRULEs) or `from` is before it.
    fn anchor_for(&self, from: DateTime<Utc>) -> DateTime<rrule::Tz> {
        let [rule] = self.rules.as_slice() else {
            return self.dt_start;
        };
        if rule.get_count().is_some() || from <= self.dt_start.with_timezone(&Utc) {
            return self.dt_start;
        }
        let tz = self.dt_start.timezone();
        let start = self.dt_start.naive_local();
        let target = from.with_timezone(&tz).naive_local();
        let interval = i64::from(rule.get_interval().max(1));
        let shift = |periods: i64| -> Option<NaiveDateTime> {
            if periods <= 0 {
                return None;
            }
            let unit = match rule.get_freq() {
                Frequency::Yearly => {
                    let year = start.year() + i32::try_from(periods * interval).ok()?;
                    return NaiveDate::from_ymd_opt(year, 1, 1).map(|d| d.and_time(start.time()));
                }
                Frequency::Monthly => {
                    let months = i64::from(start.year()) * 12
                        + i64::from(start.month0())
                        + periods * interval;
                    let year = i32::try_from(months.div_euclid(12)).ok()?;
                    let month = u32::try_from(months.rem_euclid(12)).ok()? + 1;
                    return NaiveDate::from_ymd_opt(year, month, 1)
                        .map(|d| d.and_time(start.time()));
                }
                Frequency::Weekly => 7 * 86_400,
                Frequency::Daily => 86_400,
                Frequency::Hourly => 3_600,
                Frequency::Minutely => 60,
                Frequency::Secondly => 1,
            };
            start.checked_add_signed(Duration::seconds(periods * interval * unit))
        };
        let periods = match rule.get_freq() {
            Frequency::Yearly => i64::from(target.year() - start.year()) / interval,
            Frequency::Monthly => {
                (i64::from(target.year() - start.year()) * 12 + i64::from(target.month0())
                    - i64::from(start.month0()))
                    / interval
            }
            freq => {
                let unit = match freq {
                    Frequency::Weekly => 7 * 86_400,
                    Frequency::Daily => 86_400,
                    Frequency::Hourly => 3_600,
                    Frequency::Minutely => 60,
                    _ => 1,
                };
                (target - start).num_seconds() / (unit * interval)
            }
        };
        // One period earlier if the local time does not exist there or lands after `from`.
        for periods in [periods, periods - 1, periods - 2] {
            let anchor = shift(periods).and_then(|local| tz.from_local_datetime(&local).earliest());
            if let Some(anchor) = anchor.filter(|a| a.with_timezone(&Utc) <= from) {
                return anchor;
            }
        }
        self.dt_start
    }

    /// The starts at or after `from`, in order, lazily.
    pub fn starts_from(&self, from: DateTime<Utc>) -> Starts {
        let set = RRuleSet::new(self.anchor_for(from))
            .set_rrules(self.rules.clone())
            .set_rdates(self.rdates.clone())
            .set_exdates(self.exdates.clone())
            .limit();
        Starts {
            inner: (&set).into_iter(),
            from,
            last: None,
            cut_short: false,
        }
    }

    /// Whether an occurrence starts exactly at `at`.
    pub fn occurs_at(&self, at: DateTime<Utc>) -> bool {
        self.starts_from(at).next() == Some(at)
    }

    /// How many instances the RRULEs generate before `at`, as COUNT counts them (EXDATEs and
    /// RDATEs aside), so a split can share a COUNT out; `None` past [`SKIP_BUDGET`].
    pub fn count_before(&self, at: DateTime<Utc>) -> Option<u32> {
        let set = RRuleSet::new(self.dt_start)
            .set_rrules(self.rules.clone())
            .limit();
        let mut count = 0u32;
        for start in &set {
            if start.with_timezone(&Utc) >= at {
                return Some(count);
            }
            count += 1;
            if count as usize > SKIP_BUDGET {
                return None;
            }
        }
        Some(count)
    }

    /// The rule's RDATEs (without the first start, which every rule has) and EXDATEs, in UTC.
    pub fn extra_dates(&self) -> (Vec<DateTime<Utc>>, Vec<DateTime<Utc>>) {
        let utc = |dates: &[DateTime<rrule::Tz>]| -> Vec<DateTime<Utc>> {
            dates.iter().map(|d| d.with_timezone(&Utc)).collect()
        };
        let first = self.dt_start.with_timezone(&Utc);
        let mut rdates = utc(&self.rdates);
        rdates.retain(|d| *d != first);
        (rdates, utc(&self.exdates))
    }

    /// Starts of the occurrences beginning in `[from, to)`, and whether the cap cut them short.
    pub fn starts_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> (Vec<DateTime<Utc>>, bool) {
        let mut starts = self.starts_from(from);
        let mut out = Vec::new();
        for start in starts.by_ref() {
            if start >= to {
                return (out, false);
            }
            if out.len() == SERIES_CAP {
                return (out, true);
            }
            out.push(start);
        }
        (out, starts.cut_short)
    }
}

/// The starts of a rule from some instant on: see [`Rule::starts_from`].
pub struct Starts {
    inner: rrule::RRuleSetIter,
    from: DateTime<Utc>,
    last: Option<DateTime<Utc>>,
    /// The walk to `from` exceeded [`SKIP_BUDGET`].
    pub cut_short: bool,
}

impl Iterator for Starts {
    type Item = DateTime<Utc>;

    fn next(&mut self) -> Option<DateTime<Utc>> {
        let mut skipped = 0;
        loop {
            let next = self.inner.next()?.with_timezone(&Utc);
            // DTSTART joins as an RDATE and may repeat the rule's own first date.
            if next < self.from || self.last == Some(next) {
                skipped += 1;
                if skipped > SKIP_BUDGET {
                    self.cut_short = true;
                    return None;
                }
                continue;
            }
            self.last = Some(next);
            return Some(next);
        }
    }
}

/// Keeps a series' recurrence lines (RRULE, RDATE, EXDATE) and the seed's summary fields.
pub fn apply_recurrence(event: &mut crate::model::Event, lines: &[&str]) {
    let lines: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| {
            ["RRULE", "RDATE", "EXDATE", "EXRULE"]
                .iter()
                .any(|p| l.to_ascii_uppercase().starts_with(p))
        })
        .collect();
    if lines.is_empty() {
        return;
    }
    event.is_recurring = true;
    event.recurrence_rule = Some(lines.join("\n"));
    if let Some(rule) = lines
        .iter()
        .find(|l| l.to_ascii_uppercase().starts_with("RRULE:"))
    {
        for part in rule[6..].split(';') {
            match part.split_once('=') {
                Some(("FREQ", f)) => event.recurrence_frequency = Some(f.to_owned()),
                Some(("INTERVAL", i)) => event.recurrence_interval = i.parse().ok(),
                Some(("UNTIL", u)) => {
                    event.recurrence_end_date =
                        NaiveDateTime::parse_from_str(u.trim_end_matches('Z'), "%Y%m%dT%H%M%S")
                            .map(|t| Utc.from_utc_datetime(&t))
                            .or_else(|_| {
                                NaiveDate::parse_from_str(u, "%Y%m%d").map(|d| {
                                    Utc.from_utc_datetime(
                                        &d.and_hms_opt(0, 0, 0).expect("midnight"),
                                    )
                                })
                            })
                            .ok()
                }
                _ => {}
            }
        }
    }
}

/// A series ready to expand: its master, validated rule and the original starts of the
/// occurrences its children replace (moved or cancelled). `rule` is `None` when the provider's
/// rule cannot be expanded: the master then stands alone at its first start.
pub struct Series {
    pub master: Event,
    pub rule: Option<Arc<Rule>>,
    pub replaced: HashSet<DateTime<Utc>>,
}

impl Series {
    pub fn new(master: Event, replaced: HashSet<DateTime<Utc>>) -> Self {
        let rule = rule_of(&master);
        Self {
            master,
            rule,
            replaced,
        }
    }

    fn length(&self) -> Duration {
        self.master.end_time - self.master.start_time
    }

    /// The occurrences overlapping `range` whose start is at or after `from`, in start order; at
    /// most the first [`SERIES_CAP`] instances overlapping the range are listed, counted from
    /// the range's start whatever `from` is, so every page of a paged read agrees.
    pub fn occurrences(&self, range: TimeRange, from: DateTime<Utc>) -> Occurrences<'_> {
        let length = self.length();
        let lo = range.start - length;
        let may_exceed = self.rule.as_ref().is_some_and(|r| {
            r.bound_between(lo, range.end) > u64::try_from(SERIES_CAP).unwrap_or(u64::MAX)
        });
        let begin = if may_exceed { lo } else { lo.max(from) };
        let mut occurrences = self.walk(range, begin, from);
        // Said on every page of the range, not only on the one where the cap is reached: a dense
        // series is walked to the cap once more (at most SERIES_CAP starts).
        if may_exceed {
            let mut probe = self.walk(range, lo, lo);
            probe.by_ref().for_each(drop);
            occurrences.capped = probe.capped;
        }
        occurrences
    }

    /// The occurrences overlapping `range`, the rule walked from `begin`, listed from `from` on.
    fn walk(&self, range: TimeRange, begin: DateTime<Utc>, from: DateTime<Utc>) -> Occurrences<'_> {
        let starts = match &self.rule {
            Some(rule) => StartsOrSingle::Rule(rule.starts_from(begin)),
            None => StartsOrSingle::Single(Some(self.master.start_time)),
        };
        Occurrences {
            series: self,
            starts,
            range,
            from,
            length: self.length(),
            listed: 0,
            capped: false,
        }
    }
}

enum StartsOrSingle {
    Rule(Starts),
    Single(Option<DateTime<Utc>>),
}

/// See [`Series::occurrences`].
pub struct Occurrences<'a> {
    series: &'a Series,
    starts: StartsOrSingle,
    range: TimeRange,
    from: DateTime<Utc>,
    length: Duration,
    listed: usize,
    /// The series has more occurrences in the range than [`SERIES_CAP`] (or than could be
    /// reached within [`SKIP_BUDGET`]): the rest are not listed.
    pub capped: bool,
}

impl Iterator for Occurrences<'_> {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        loop {
            let start = match &mut self.starts {
                StartsOrSingle::Rule(starts) => match starts.next() {
                    Some(s) => s,
                    None => {
                        self.capped |= starts.cut_short;
                        return None;
                    }
                },
                StartsOrSingle::Single(single) => single.take()?,
            };
            if start >= self.range.end {
                return None;
            }
            if !self.range.overlaps(start, start + self.length) {
                continue;
            }
            if self.listed == SERIES_CAP {
                self.capped = true;
                return None;
            }
            self.listed += 1;
            if start < self.from || self.series.replaced.contains(&start) {
                continue;
            }
            return Some(if self.series.rule.is_some() {
                occurrence(&self.series.master, start, self.length)
            } else {
                self.series.master.clone()
            });
        }
    }
}

/// The master's validated rule, if it has one we can expand.
///
/// Parsed rules are kept per process, keyed by everything the parse reads (the rule text, the
/// first start, the zone, the all-day date): every page of a range reads the same series again,
/// and a warm function serves a user's pages one after another. The key is the content, so a
/// changed series is a new key, never a stale rule.
pub fn rule_of(master: &Event) -> Option<Arc<Rule>> {
    type Key = (String, DateTime<Utc>, Option<String>, Option<NaiveDate>);
    static PARSED: Mutex<Option<HashMap<Key, Option<Arc<Rule>>>>> = Mutex::new(None);
    const KEEP: usize = 4096;
    let lines = master.recurrence_rule.as_deref()?;
    let all_day = master.is_all_day.then_some(master.start_date).flatten();
    let key: Key = (
        lines.to_owned(),
        master.start_time,
        master.timezone.clone(),
        all_day,
    );
    if let Some(found) = PARSED
        .lock()
        .ok()
        .and_then(|cache| cache.as_ref()?.get(&key).cloned())
    {
        return found;
    }
    let zone = master
        .timezone
        .as_deref()
        .and_then(|z| z.parse::<Tz>().ok());
    let rule = Rule::parse(master.start_time, zone, all_day, lines)
        .ok()
        .map(Arc::new);
    if let Ok(mut cache) = PARSED.lock() {
        let cache = cache.get_or_insert_with(HashMap::new);
        if cache.len() >= KEEP {
            cache.clear();
        }
        cache.insert(key, rule.clone());
    }
    rule
}

/// The end of the last occurrence of a series, or `None` if it has no end. A rule we cannot
/// expand ends with its master.
pub fn series_end(master: &Event) -> Option<DateTime<Utc>> {
    let length = master.end_time - master.start_time;
    match rule_of(master) {
        Some(rule) => rule
            .last_start()
            .map(|last| last.max(master.start_time) + length),
        None => Some(master.end_time),
    }
}

/// One occurrence of `master` starting at `start`.
fn occurrence(master: &Event, start: DateTime<Utc>, length: Duration) -> Event {
    let mut occurrence = master.clone();
    occurrence.event_key = format!("{}@{}", master.event_key, key_format(start));
    occurrence.parent_event_id = Some(master.event_key.clone());
    occurrence.is_occurrence = true;
    occurrence.original_start_time = Some(start);
    occurrence.start_time = start;
    occurrence.end_time = start + length;
    if occurrence.is_all_day {
        let offset = start.date_naive() - master.start_time.date_naive();
        occurrence.start_date = master.start_date.map(|d| d + offset);
        occurrence.end_date = master.end_date.map(|d| d + offset);
    }
    occurrence
}

/// The occurrences of a recurring `master` that overlap `range`, in its own zone, without the
/// original starts in `replaced` (moved or cancelled instances). A rule that cannot be expanded
/// yields the master alone, where it overlaps.
pub fn occurrences(
    master: &Event,
    replaced: &HashSet<DateTime<Utc>>,
    range: TimeRange,
) -> Vec<Event> {
    let series = Series::new(master.clone(), replaced.clone());
    series.occurrences(range, range.start).collect()
}

/// The occurrence starts of one iCalendar resource (a series with its overrides, or a single
/// event) that overlap `range`: parsed as the CalDAV sync parses it, expanded as range queries
/// expand it.
pub fn expand_resource(
    href: &str,
    text: &str,
    range: TimeRange,
) -> Result<Vec<DateTime<Utc>>, String> {
    use crate::sync::Change;
    let mut master = None;
    let mut overrides = Vec::new();
    let mut replaced = HashSet::new();
    for change in crate::sync::feeds::parse_calendar_resource(href, text) {
        match change {
            Change::Upsert(event) if event.event_key == href => master = Some(*event),
            Change::Upsert(event) => {
                replaced.extend(event.original_start_time);
                overrides.push(*event);
            }
            Change::CancelInstance { original_start, .. } => {
                replaced.insert(original_start);
            }
            Change::Malformed { reason, .. } => return Err(reason),
            _ => {}
        }
    }
    // The sync stores one event per key: an override written twice is one event (the last).
    let mut seen = HashSet::new();
    overrides.reverse();
    overrides.retain(|o| seen.insert(o.event_key.clone()));
    // A resource may hold only overrides (the master was not shared): they are the events.
    let mut starts: Vec<DateTime<Utc>> = match master {
        Some(master) if master.is_recurring => occurrences(&master, &replaced, range)
            .iter()
            .map(|o| o.start_time)
            .collect(),
        Some(master) if range.overlaps(master.start_time, master.end_time) => {
            vec![master.start_time]
        }
        Some(_) => Vec::new(),
        None if overrides.is_empty() => return Err("no event in the resource".into()),
        None => Vec::new(),
    };
    starts.extend(
        overrides
            .iter()
            .filter(|o| range.overlaps(o.start_time, o.end_time))
            .map(|o| o.start_time),
    );
    starts.sort();
    Ok(starts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn nine_in_new_york_stays_nine_across_dst() {
        let ny: Tz = "America/New_York".parse().unwrap();
        let start = ny
            .with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
            .unwrap()
            .with_timezone(&Utc);
        let rule =
            Rule::parse(start, Some(ny), None, "RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=3").unwrap();
        let (starts, limited) =
            rule.starts_between(utc("2026-03-01T00:00:00Z"), utc("2026-04-01T00:00:00Z"));
        assert!(!limited);
        let local: Vec<String> = starts
            .iter()
            .map(|s| s.with_timezone(&ny).format("%m-%d %H:%M").to_string())
            .collect();
        assert_eq!(local, ["03-02 09:00", "03-09 09:00", "03-16 09:00"]);
        assert_eq!(starts[0], utc("2026-03-02T14:00:00Z"));
        assert_eq!(
            starts[1],
            utc("2026-03-09T13:00:00Z"),
            "after the DST change"
        );
    }

    /// A series whose first start falls in the hour the clocks repeat (01:30 on the night New
    /// York falls back) is a valid series; written as DTSTART text for the crate's parser, that
    /// local time was ambiguous and the rule was refused.
    #[test]
    fn a_series_starting_in_the_repeated_hour_is_valid() {
        let ny: Tz = "America/New_York".parse().unwrap();
        let start = utc("2026-11-01T05:30:00Z");
        assert_eq!(
            start.with_timezone(&ny).format("%H:%M").to_string(),
            "01:30"
        );
        let as_text = "DTSTART;TZID=America/New_York:20261101T013000\nRRULE:FREQ=WEEKLY;COUNT=2";
        assert!(as_text.parse::<RRuleSet>().is_err(), "ambiguous as text");
        let rule = Rule::parse(start, Some(ny), None, "RRULE:FREQ=WEEKLY;COUNT=2").unwrap();
        let (starts, _) =
            rule.starts_between(utc("2026-10-25T00:00:00Z"), utc("2026-11-15T00:00:00Z"));
        assert_eq!(
            starts,
            [utc("2026-11-01T05:30:00Z"), utc("2026-11-08T06:30:00Z")]
        );
    }

    #[test]
    fn exdates_rdates_and_bad_rules() {
        let start = utc("2026-06-01T10:00:00Z");
        let rule = Rule::parse(
            start,
            None,
            None,
            "RRULE:FREQ=DAILY;COUNT=4\nEXDATE:20260602T100000Z\nRDATE:20260610T100000Z",
        )
        .unwrap();
        let (starts, _) =
            rule.starts_between(utc("2026-06-01T00:00:00Z"), utc("2026-07-01T00:00:00Z"));
        assert_eq!(starts.len(), 4, "{starts:?}");
        assert!(!starts.contains(&utc("2026-06-02T10:00:00Z")));
        assert!(starts.contains(&utc("2026-06-10T10:00:00Z")));
        for bad in [
            "RRULE:FREQ=SOMETIMES",
            "SUMMARY:x",
            "",
            "RRULE:FREQ=WEEKLY;BYDAY=XX",
        ] {
            assert!(Rule::parse(start, None, None, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_runaway_rule_stops_at_the_cap() {
        let rule =
            Rule::parse(utc("2000-01-01T00:00:00Z"), None, None, "RRULE:FREQ=DAILY").unwrap();
        let (starts, limited) =
            rule.starts_between(utc("2000-01-01T00:00:00Z"), utc("2030-01-01T00:00:00Z"));
        assert_eq!(starts.len(), SERIES_CAP);
        assert!(limited, "a cut-short expansion must say so");
    }

    #[test]
    fn dense_rules_are_kept_but_refused_on_input() {
        let start = utc("2025-01-01T00:00:00Z");
        let densest =
            "RRULE:FREQ=DAILY;BYHOUR=0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23";
        Rule::parse(start, None, None, densest)
            .unwrap()
            .check_accepted()
            .unwrap();
        let all = |n: u32| (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
        let hostile = format!(
            "RRULE:FREQ=DAILY;BYHOUR={};BYMINUTE={};BYSECOND={}",
            all(24),
            all(60),
            all(60)
        );
        for (rule, why) in [
            (hostile.clone(), "86400 occurrences a day"),
            (
                format!("RRULE:FREQ=WEEKLY;BYHOUR={};BYMINUTE=0,30", all(24)),
                "48 occurrences a day",
            ),
            ("RRULE:FREQ=HOURLY".into(), "more frequent than daily"),
            ("RRULE:FREQ=DAILY;COUNT=5001".into(), "COUNT"),
        ] {
            let parsed = Rule::parse(start, None, None, &rule).expect("sync keeps it");
            let err = parsed.check_accepted().unwrap_err();
            assert!(err.contains(why), "{rule}: {err}");
        }
        // Kept from sync, a hostile rule a year old costs only what one day of it holds.
        let rule = Rule::parse(start, None, None, &hostile).unwrap();
        let began = std::time::Instant::now();
        let (day, capped) =
            rule.starts_between(utc("2026-01-10T00:00:00Z"), utc("2026-01-11T00:00:00Z"));
        assert_eq!(day.len(), SERIES_CAP);
        assert!(capped);
        assert_eq!(day[0], utc("2026-01-10T00:00:00Z"));
        assert!(began.elapsed() < std::time::Duration::from_secs(5));
    }

    /// Re-anchoring must not change a single occurrence: for many seeded random rules, the starts
    /// from a late instant equal a plain walk from DTSTART.
    #[test]
    fn re_anchored_expansion_equals_a_walk_from_the_start() {
        let mut seed: u64 = std::env::var("CALSYNC_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x5eed);
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let zones = [
            "America/New_York",
            "Europe/Berlin",
            "Australia/Sydney",
            "UTC",
            "Asia/Kolkata",
        ];
        let rules = [
            "FREQ=DAILY",
            "FREQ=DAILY;INTERVAL=3",
            "FREQ=DAILY;BYHOUR=9,17",
            "FREQ=WEEKLY",
            "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE,FR",
            "FREQ=WEEKLY;INTERVAL=3;WKST=SU;BYDAY=SU,TU",
            "FREQ=MONTHLY",
            "FREQ=MONTHLY;INTERVAL=2;BYMONTHDAY=31",
            "FREQ=MONTHLY;BYDAY=-1FR",
            "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
            "FREQ=MONTHLY;INTERVAL=5;BYDAY=2TH",
            "FREQ=YEARLY",
            "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29",
            "FREQ=YEARLY;INTERVAL=2;BYWEEKNO=20;BYDAY=MO",
            "FREQ=YEARLY;BYYEARDAY=100,200",
            "FREQ=HOURLY;INTERVAL=7",
            "FREQ=MINUTELY;INTERVAL=997",
        ];
        for round in 0..300 {
            let zone: Tz = zones[next(5) as usize].parse().unwrap();
            let rule = rules[next(rules.len() as u64) as usize];
            let local = chrono::NaiveDate::from_ymd_opt(
                2015 + next(8) as i32,
                1 + next(12) as u32,
                1 + next(28) as u32,
            )
            .unwrap()
            .and_hms_opt(next(24) as u32, [0, 15, 30][next(3) as usize], 0)
            .unwrap();
            let Some(start) = zone.from_local_datetime(&local).earliest() else {
                continue;
            };
            let start = start.with_timezone(&Utc);
            let until = if next(3) == 0 {
                ";UNTIL=20270101T000000Z"
            } else {
                ""
            };
            let lines = format!("RRULE:{rule}{until}");
            let parsed = Rule::parse(start, Some(zone), None, &lines).unwrap();
            let from = start + Duration::hours(next(24 * 365 * 10) as i64);
            let to = from + Duration::days(1 + next(120) as i64);
            let (late, _) = parsed.starts_between(from, to);
            // The reference: the same set walked from DTSTART, no anchor.
            let set = RRuleSet::new(parsed.dt_start)
                .set_rrules(parsed.rules.clone())
                .set_rdates(parsed.rdates.clone())
                .limit();
            let mut walk: Vec<DateTime<Utc>> = (&set)
                .into_iter()
                .map(|d| d.with_timezone(&Utc))
                .skip_while(|d| *d < from)
                .take_while(|d| *d < to)
                .take(SERIES_CAP)
                .collect();
            walk.dedup();
            assert_eq!(
                late, walk,
                "round {round}: {lines} from {start} ({zone}), asked {from}..{to}"
            );
        }
    }

    #[test]
    fn a_series_knows_its_end() {
        let start = utc("2026-01-05T09:00:00Z");
        let end = |lines: &str| Rule::parse(start, None, None, lines).unwrap().last_start();
        assert_eq!(
            end("RRULE:FREQ=DAILY;COUNT=3"),
            Some(utc("2026-01-07T09:00:00Z"))
        );
        assert_eq!(
            end("RRULE:FREQ=DAILY;UNTIL=20260110T000000Z"),
            Some(utc("2026-01-10T00:00:00Z"))
        );
        assert_eq!(end("RRULE:FREQ=WEEKLY"), None);
        assert_eq!(
            end("RRULE:FREQ=DAILY;COUNT=3\nRDATE:20260301T090000Z"),
            Some(utc("2026-03-01T09:00:00Z"))
        );
    }
}
