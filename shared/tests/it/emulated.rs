//! A calendar connected through OAuth to the Google or Microsoft emulator, with the emulator's
//! admin API at hand to change the provider's side behind our back.

use std::collections::BTreeMap;

use calsync::app::App;
use calsync::sync::engine::{sync_connection, SyncOutcome, SyncReport};
use calsync_provider_emulator::EmulatorHandle;
use serde_json::Value;

use crate::oauth_flow::{callback, consent, setup_with};
use crate::support::*;

pub struct EmulatedCalendar {
    pub emulator: EmulatorHandle,
    pub app: App,
    pub user: TestUser,
    pub connection_id: String,
    /// The provider's slug in the emulator's paths: `google` or `microsoft`.
    provider: &'static str,
    calendar_path: String,
    pub http: reqwest::Client,
}

impl EmulatedCalendar {
    /// Registers a user, runs the OAuth consent for `provider`, and keeps the primary calendar.
    pub async fn connect(
        tag: &str,
        provider: &'static str,
        extra: &[(&'static str, String)],
    ) -> Self {
        let (emulator, app, user) = setup_with(tag, extra).await;
        let query = consent(&app, &user, provider).await;
        assert!(callback(&app, provider, &query)
            .await
            .contains("status=connected"));
        let primary = app
            .store
            .connections(&user.id)
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.is_primary)
            .unwrap();
        Self {
            calendar_path: url::form_urlencoded::byte_serialize(primary.calendar_id.as_bytes())
                .collect(),
            connection_id: primary.id,
            emulator,
            app,
            user,
            provider,
            http: reqwest::Client::new(),
        }
    }

    /// The admin URL of `rest` under this calendar.
    pub fn admin(&self, rest: &str) -> String {
        format!(
            "{}/admin/{}/calendars/{}{rest}",
            self.emulator.base_url, self.provider, self.calendar_path
        )
    }

    /// Writes an event on the provider's side at `path` under the calendar.
    pub async fn put_at(&self, path: &str, event: Value) {
        let response = self
            .http
            .put(self.admin(path))
            .json(&event)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "PUT {path}: {}",
            response.text().await.unwrap()
        );
    }

    pub async fn delete(&self, id: &str) {
        let response = self
            .http
            .delete(self.admin(&format!("/events/{id}")))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "DELETE {id}: {}",
            response.status()
        );
    }

    /// Arms one of the emulator's faults (see infra/provider-emulator's README).
    pub async fn fault(&self, fault: Value) {
        self.admin_call(reqwest::Method::POST, "/admin/faults", fault)
            .await;
    }

    pub async fn settings(&self, settings: Value) {
        self.admin_call(reqwest::Method::PUT, "/admin/settings", settings)
            .await;
    }

    async fn admin_call(&self, method: reqwest::Method, path: &str, body: Value) {
        let response = self
            .http
            .request(method, format!("{}{path}", self.emulator.base_url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
    }

    /// The emulator's own listing of `rest` (with its query) under the calendar.
    pub async fn provider_listing(&self, rest: &str) -> Value {
        self.http
            .get(self.admin(rest))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn sync(&self) -> SyncReport {
        match sync_connection(&self.app, &self.user.id, &self.connection_id).await {
            Ok(SyncOutcome::Synced(report)) => report,
            other => panic!("sync: {other:?}"),
        }
    }

    /// Our store's events of the connection: id -> (title, start UTC).
    pub async fn stored(&self) -> BTreeMap<String, (String, String)> {
        stored_events(&self.app, &self.connection_id).await
    }

    pub async fn event_count(&self) -> i64 {
        self.app
            .store
            .connection(&self.user.id, &self.connection_id)
            .await
            .unwrap()
            .unwrap()
            .event_count
    }
}
