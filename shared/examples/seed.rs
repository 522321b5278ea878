//! `make seed`: loads sample data into the running local stack (`make dev`): the demo user, a
//! Google calendar as in the seed data, a Microsoft and an Apple calendar, and two weeks of events
//! around today with attendees, reminders, Meet / Teams links, all-day and multi-day events, and
//! a few clashes. Idempotent: running it again rewrites the same items.

use calsync::app::App;
use calsync::auth::hash_password;
use calsync::config::Config;
use calsync::ids;
use calsync::model::{
    Attendee, AuditEntry, Connection, Event, Provider, Reminder, ReminderMethod, ResponseStatus,
    User,
};
use calsync::store::{Registration, Store};
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use serde_json::json;

const EMAIL: &str = "demo@calsync.dev";
const PASSWORD: &str = "demo-password";

/// The functions' environment that `make dev` wrote (table names).
#[allow(dead_code)]
fn dev_config() -> Result<Config, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(".dev/functions.env")
        .map_err(|_| "no .dev/functions.env: start the stack with `make dev` first")?;
    let vars: std::collections::HashMap<String, String> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    Ok(Config::from_lookup(|k| vars.get(k).cloned())?)
}

fn attendee(email: &str, name: &str, status: ResponseStatus) -> Attendee {
    Attendee {
        email: email.into(),
        name: Some(name.into()),
        response_status: Some(status),
        optional: false,
    }
}

struct Seeder {
    user_id: String,
    events: Vec<Event>,
}

impl Seeder {
    #[allow(clippy::too_many_arguments)]
    fn timed(
        &mut self,
        conn: &Connection,
        key: &str,
        title: &str,
        start: DateTime<Utc>,
        minutes: i64,
        zone: &str,
    ) -> &mut Event {
        let now = Store::now();
        let mut event = Event::new(
            &self.user_id,
            &conn.id,
            key,
            title,
            (start, start + Duration::minutes(minutes)),
            now,
        );
        event.provider_event_id = Some(key.into());
        event.timezone = Some(zone.into());
        event.reminders = vec![Reminder {
            method: ReminderMethod::Popup,
            minutes: 10,
        }];
        event.last_synced_at = Some(now);
        self.events.push(event);
        self.events.last_mut().expect("just pushed")
    }

    fn all_day(&mut self, conn: &Connection, key: &str, title: &str, first: NaiveDate, days: i64) {
        let start = Utc.from_utc_datetime(&first.and_hms_opt(0, 0, 0).expect("midnight"));
        let event = self.timed(conn, key, title, start, days * 24 * 60, "UTC");
        event.is_all_day = true;
        event.timezone = None;
        event.start_date = Some(first);
        event.end_date = Some(first + Duration::days(days));
        event.reminders.clear();
    }
}

fn connection(
    user_id: &str,
    provider: Provider,
    calendar_id: &str,
    name: &str,
    color: &str,
    primary: bool,
) -> Connection {
    let mut conn = Connection::new(user_id, provider, calendar_id, name, color, Store::now());
    conn.is_primary = primary;
    conn.last_synced_at = Some(Store::now());
    conn
}

#[allow(dead_code)] // the integration tests include this file for `seed` alone
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoint =
        calsync_devstack::http_relay::arg(&std::env::args().collect::<Vec<_>>(), "--endpoint")
            .unwrap_or_else(|| "http://127.0.0.1:4566".into());
    let config = dev_config()?;
    let sdk = calsync::aws::emulator_sdk_config(&endpoint);
    let app = App::new(&sdk, config);
    let (events, monday) = seed(&app).await?;
    println!("Seeded {events} events in 3 calendars for {EMAIL} (password: {PASSWORD}).");
    println!(
        "Week of {monday}: try GET /v1/events?start={monday}&end={}",
        monday + Duration::days(7)
    );
    Ok(())
}

/// Seeds the demo user's calendars and events; returns how many events and the week's Monday.
/// Running it again changes no id, count or order (tests/it/seed.rs).
pub async fn seed(app: &App) -> Result<(usize, NaiveDate), Box<dyn std::error::Error>> {
    let store = &app.store;

    let user = match store.user_by_email(EMAIL).await? {
        Some(user) => user,
        None => {
            let user = User {
                id: ids::new_id(),
                email: EMAIL.into(),
                password_hash: hash_password(PASSWORD).map_err(|e| e.message)?,
                first_name: "Demo".into(),
                last_name: "User".into(),
                created_at: Store::now(),
            };
            let audit = AuditEntry::new(&user.id, "USER_REGISTERED", "USER", Some(&user.id));
            if store.create_user(&user, &audit).await? == Registration::EmailTaken {
                return Err("demo user appeared concurrently; run make seed again".into());
            }
            user
        }
    };

    let work = connection(
        &user.id,
        Provider::Google,
        "demo@calsync.dev",
        "Work",
        "#4285f4",
        true,
    );
    let personal = connection(
        &user.id,
        Provider::Microsoft,
        "AAMkADemoPersonal",
        "Personal (Outlook)",
        "#0078d4",
        false,
    );
    let family = connection(
        &user.id,
        Provider::Apple,
        "/demo/family/",
        "Family (iCloud)",
        "#34c759",
        false,
    );

    let today = Utc::now().date_naive();
    let monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
    let at = |day: i64, hour: u32, minute: u32| {
        let date = monday + Duration::days(day);
        Utc.from_utc_datetime(&date.and_hms_opt(hour, minute, 0).expect("valid time"))
    };
    let mut s = Seeder {
        user_id: user.id.clone(),
        events: vec![],
    };
    for week in 0..2 {
        for day in 0..5 {
            let d = week * 7 + day;
            let standup = s.timed(
                &work,
                &format!("standup{d}"),
                "Daily standup",
                at(d, 9, 30),
                15,
                "Europe/London",
            );
            standup.has_conference = true;
            standup.provider_metadata = Some(
                json!({"hangoutLink": format!("https://meet.google.com/std-{d:02}-dmo"),
                "conferenceData": {"conferenceSolution": {"name": "Google Meet"}}}),
            );
            standup.attendees = vec![
                attendee("demo@calsync.dev", "Demo User", ResponseStatus::Accepted),
                attendee("ana@example.com", "Ana Lima", ResponseStatus::Accepted),
                attendee("raj@example.com", "Raj Patel", ResponseStatus::Tentative),
            ];
        }
        let one_on_one = s.timed(
            &work,
            &format!("1on1w{week}"),
            "1:1 with Ana",
            at(week * 7 + 1, 14, 0),
            30,
            "Europe/London",
        );
        one_on_one.attendees = vec![attendee(
            "ana@example.com",
            "Ana Lima",
            ResponseStatus::Accepted,
        )];
        one_on_one.location = Some("Room 4.02".into());
        let planning = s.timed(
            &personal,
            &format!("plan{week}"),
            "Sprint planning",
            at(week * 7 + 2, 13, 0),
            90,
            "Europe/London",
        );
        planning.has_conference = true;
        planning.provider_metadata = Some(
            json!({"onlineMeeting": {"joinUrl": "https://teams.microsoft.com/l/meetup-join/demo"}}),
        );
        planning.attendees = vec![attendee(
            "raj@example.com",
            "Raj Patel",
            ResponseStatus::Accepted,
        )];
        s.timed(
            &family,
            &format!("gym{week}"),
            "Gym",
            at(week * 7 + 3, 18, 0),
            60,
            "Europe/London",
        );
    }
    // Clashes: a dentist visit over the Tuesday 1:1, and school pick-up over Wednesday's planning.
    s.timed(
        &family,
        "dentist",
        "Dentist",
        at(1, 13, 45),
        60,
        "Europe/London",
    )
    .location = Some("High St 12".into());
    s.timed(
        &family,
        "pickup",
        "School pick-up",
        at(2, 14, 0),
        30,
        "Europe/London",
    );
    s.timed(
        &work,
        "review",
        "Quarterly review",
        at(4, 15, 0),
        60,
        "Europe/London",
    )
    .description = Some("Bring the numbers.".into());
    s.all_day(
        &work,
        "offsite",
        "Company offsite",
        monday + Duration::days(8),
        1,
    );
    s.all_day(
        &family,
        "holiday",
        "Half-term holiday",
        monday + Duration::days(10),
        3,
    );

    // Idempotent: a seeded event that exists is refreshed in place (same id, its creation time
    // kept) and counts nothing; only events written anew (or restored after a deletion) add to
    // their calendar's count. A calendar that exists keeps its creation time, hence its place.
    let mut added: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    for event in &mut s.events {
        let existing = store.event(&event.connection_id, &event.event_key).await?;
        if let Some(existing) = &existing {
            event.created_at = existing.created_at;
            event.version = existing.version + 1;
        }
        if existing.is_none_or(|e| e.is_deleted()) {
            *added.entry(event.connection_id.clone()).or_default() += 1;
        }
    }
    for mut conn in [work, personal, family] {
        let added = added.get(&conn.id).copied().unwrap_or(0);
        match store.connection(&user.id, &conn.id).await? {
            Some(existing) if existing.deleted_at.is_none() => {
                if added > 0 {
                    store.add_event_count(&user.id, &conn.id, added).await?;
                }
            }
            _ => {
                conn.event_count = added;
                store.put_connection(&conn).await?;
            }
        }
    }
    store.put_events(&s.events).await?;
    Ok((s.events.len(), monday))
}
