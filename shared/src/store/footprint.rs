//! A user's whole footprint across the five tables: read for the data export, deleted for the
//! account's erasure. Every item of a user is under a partition this module can name from the
//! user: `USER#<id>` (Users, Connections, Audit, Changes), `CONN#<connectionId>` (Events) for each of the
//! user's calendars, and the items those point to (sessions, feeds, the e-mail claim).

use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};

use super::{from_item, s, Store, StoreError, StoreResult};
use crate::model::{AuditEntry, Event, User};

/// What an erasure deleted, by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Erased {
    pub calendars: usize,
    pub events: usize,
    pub audit_entries: usize,
    pub sessions: usize,
    pub feeds: usize,
    /// Every item deleted, all tables.
    pub items: usize,
    /// Nothing of the user is left (else the cleanup job continues).
    pub done: bool,
}

type Key = (String, String);

pub(crate) fn delete_request(pk: String, sk: String) -> StoreResult<WriteRequest> {
    let delete = DeleteRequest::builder()
        .key("pk", s(pk))
        .key("sk", s(sk))
        .build()
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    Ok(WriteRequest::builder().delete_request(delete).build())
}

impl Store {
    /// The keys of every item in partition `pk` of `table`.
    async fn partition_keys(&self, table: &str, pk: &str) -> StoreResult<Vec<Key>> {
        let query = self
            .partition_query(table, pk, None)
            .projection_expression("pk, sk");
        Ok(self
            .query_all(query)
            .await?
            .into_iter()
            .filter_map(|item| {
                let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
                Some((text("pk")?, text("sk")?))
            })
            .collect())
    }

    async fn delete_keys(&self, table: &str, keys: Vec<Key>) -> StoreResult<usize> {
        let count = keys.len();
        let requests = keys
            .into_iter()
            .map(|(pk, sk)| delete_request(pk, sk))
            .collect::<StoreResult<Vec<_>>>()?;
        self.write_batch(table, requests).await?;
        Ok(count)
    }

    /// The stored event items of a calendar (events, series, exceptions, soft-deleted ones) in
    /// key order after the sort key `after`, at most `max`, and the sort key to continue from
    /// when more remain. Reading stops there, so a huge calendar costs no more than `max`.
    pub async fn calendar_events(
        &self,
        connection_id: &str,
        after: Option<&str>,
        max: usize,
    ) -> StoreResult<(Vec<Event>, Option<String>)> {
        self.partition_page(
            &self.events,
            format!("CONN#{connection_id}"),
            Some("EVT#"),
            after,
            max,
        )
        .await
    }

    /// The user's whole audit log, oldest first.
    pub async fn audit_entries(&self, user_id: &str) -> StoreResult<Vec<AuditEntry>> {
        self.partition_items(&self.audit, format!("USER#{user_id}"), None)
            .await
    }

    /// The user's audit log oldest first after the sort key `after`, at most `max` entries, and
    /// the sort key to continue from when more remain.
    pub async fn audit_entries_after(
        &self,
        user_id: &str,
        after: Option<&str>,
        max: usize,
    ) -> StoreResult<(Vec<AuditEntry>, Option<String>)> {
        self.partition_page(&self.audit, format!("USER#{user_id}"), None, after, max)
            .await
    }

    /// Up to `max` items of a partition in key order after the sort key `after`, and the last
    /// one's sort key when more remain.
    async fn partition_page<T: serde::de::DeserializeOwned>(
        &self,
        table: &str,
        pk: String,
        sk_prefix: Option<&str>,
        after: Option<&str>,
        max: usize,
    ) -> StoreResult<(Vec<T>, Option<String>)> {
        let mut query = self.partition_query(table, pk.clone(), sk_prefix);
        if let Some(after) = after {
            query = query
                .exclusive_start_key("pk", s(pk))
                .exclusive_start_key("sk", s(after));
        }
        let (items, more) = self.query_up_to(query, max).await?;
        let resume = items
            .last()
            .filter(|_| more)
            .and_then(|item| item.get("sk")?.as_s().ok().cloned());
        let values = items
            .into_iter()
            .map(from_item)
            .collect::<StoreResult<_>>()?;
        Ok((values, resume))
    }

    /// Deletes every item of the user in every table, until `deadline`; `done` says whether
    /// it finished. Idempotent and resumable: each run deletes what is left, in the same order.
    /// Sessions and the e-mail claim go first (the account cannot be used, and the address is
    /// free), the profile and the erasure mark last (until then the erasure can be continued).
    pub async fn erase_user(
        &self,
        user: &User,
        deadline: std::time::Instant,
    ) -> StoreResult<Erased> {
        let user_pk = format!("USER#{}", user.id);
        let mut erased = Erased::default();
        let user_keys = self.partition_keys(&self.users, &user_pk).await?;
        let sessions: Vec<Key> = user_keys
            .iter()
            .filter_map(|(pk, sk)| {
                let hash = sk.strip_prefix("SESSION#")?;
                Some([
                    (format!("SESSION#{hash}"), "SESSION".to_owned()),
                    (pk.clone(), sk.clone()),
                ])
            })
            .flatten()
            .collect();
        erased.sessions = sessions.len() / 2;
        erased.items += self.delete_keys(&self.users, sessions).await?;
        erased.items += self.release_email(user).await?;

        let connection_keys = self.partition_keys(&self.connections, &user_pk).await?;
        for (_, sk) in &connection_keys {
            if let Some(connection_id) = sk.strip_prefix("CONN#") {
                erased.calendars += 1;
                let keys = self
                    .partition_keys(&self.events, &format!("CONN#{connection_id}"))
                    .await?;
                erased.events += keys.iter().filter(|(_, sk)| sk.starts_with("EVT#")).count();
                let (count, finished) =
                    self.delete_keys_until(&self.events, keys, deadline).await?;
                erased.items += count;
                if !finished {
                    return Ok(erased);
                }
            }
        }
        for (table, keys) in [
            (&self.connections, connection_keys),
            (
                &self.audit,
                self.partition_keys(&self.audit, &user_pk).await?,
            ),
            (
                &self.changes,
                self.partition_keys(&self.changes, &user_pk).await?,
            ),
        ] {
            if table == &self.audit {
                erased.audit_entries = keys.len();
            }
            let (count, finished) = self.delete_keys_until(table, keys, deadline).await?;
            erased.items += count;
            if !finished {
                return Ok(erased);
            }
        }

        let user_keys = self.partition_keys(&self.users, &user_pk).await?;
        let mut pointed = Vec::new();
        for (_, sk) in &user_keys {
            if let Some(hash) = sk.strip_prefix("FEED#") {
                erased.feeds += 1;
                pointed.push((format!("FEED#{hash}"), "FEED".to_owned()));
            }
        }
        erased.items += self.delete_keys(&self.users, pointed).await?;
        let (profile, rest): (Vec<Key>, Vec<Key>) =
            user_keys.into_iter().partition(|(_, sk)| sk == "PROFILE");
        erased.items += self.delete_keys(&self.users, rest).await?;
        let mark = erasure_mark(&user.id);
        erased.items += self
            .delete_keys(&self.users, [profile, vec![mark]].concat())
            .await?;
        erased.done = true;
        Ok(erased)
    }

    /// Deletes `keys` in chunks until `deadline`; whether all of them went.
    async fn delete_keys_until(
        &self,
        table: &str,
        keys: Vec<Key>,
        deadline: std::time::Instant,
    ) -> StoreResult<(usize, bool)> {
        let mut deleted = 0;
        for chunk in keys.chunks(ERASE_CHUNK) {
            if std::time::Instant::now() >= deadline {
                return Ok((deleted, false));
            }
            deleted += self.delete_keys(table, chunk.to_vec()).await?;
        }
        Ok((deleted, true))
    }

    /// Frees the user's e-mail address, if the claim is still theirs (another account may have
    /// taken it since an earlier run freed it).
    async fn release_email(&self, user: &User) -> StoreResult<usize> {
        self.stats.write();
        let result = self
            .ddb
            .delete_item()
            .table_name(&self.users)
            .key("pk", s(format!("EMAIL#{}", user.email)))
            .key("sk", s("EMAIL"))
            .condition_expression("userId = :id")
            .expression_attribute_values(":id", s(&user.id))
            .send()
            .await
            .map_err(StoreError::from_sdk);
        match result {
            Ok(_) => Ok(1),
            Err(StoreError::ConditionFailed) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Records that the user's erasure has begun, so the cleanup job finishes what a request
    /// could not (`byExpiry`, kind `ERASE`).
    pub async fn mark_erasure(&self, user_id: &str, now_epoch: i64) -> StoreResult<()> {
        let (pk, sk) = erasure_mark(user_id);
        self.stats.write();
        self.ddb
            .put_item()
            .table_name(&self.users)
            .item("pk", s(pk))
            .item("sk", s(sk))
            .item("userId", s(user_id))
            .item(
                "expiryPk",
                s(super::expiry::expiry_key(
                    "ERASE",
                    &crate::ids::sha256_hex(user_id),
                )),
            )
            .item("expiresAt", super::n(now_epoch))
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        Ok(())
    }
}

/// Items per delete round of an erasure, between deadline checks.
const ERASE_CHUNK: usize = 500;

fn erasure_mark(user_id: &str) -> Key {
    (format!("ERASING#{user_id}"), "ERASING".to_owned())
}
