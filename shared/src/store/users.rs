//! Users table: profiles (`USER#<id>`), the e-mail uniqueness guard (`EMAIL#<email>`),
//! sessions (`SESSION#<sha256(token)>`, TTL `expiresAt`), each listed under its user
//! (`USER#<id>` / `SESSION#<sha256(token)>`, same TTL) so all of a user's sessions can be ended,
//! and the user's known devices (`USER#<id>` / `DEVICE#<sha256(token)>`, TTL `expiresAt`).

use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};

use super::footprint::delete_request;
use super::{from_item, n, s, to_item, Item, Store, StoreError, StoreResult};
use crate::model::{AuditEntry, Session, User};

const PROFILE: &str = "PROFILE";
const EMAIL: &str = "EMAIL";
const SESSION: &str = "SESSION";

/// A user id no user has, for reads that must cost the same whether or not a user exists.
const NO_USER: &str = "~none";

fn user_pk(id: &str) -> String {
    format!("USER#{id}")
}

fn session_entry_sk(token_hash: &str) -> String {
    format!("SESSION#{token_hash}")
}

fn device_sk(token_hash: &str) -> String {
    format!("DEVICE#{token_hash}")
}

fn email_pk(email: &str) -> String {
    format!("EMAIL#{email}")
}

fn session_pk(token_hash: &str) -> String {
    format!("SESSION#{token_hash}")
}

/// A device the user signed in on, by the hash of the token it was given, until `expires_at`
/// (epoch seconds): sign-ins from it are not held back by the account's lock (decisions 56).
pub struct KnownDevice {
    pub token_hash: String,
    pub expires_at: i64,
}

/// The outcome of registering: e-mail addresses are unique.
#[derive(Debug, PartialEq, Eq)]
pub enum Registration {
    Created,
    EmailTaken,
}

impl Store {
    /// Creates the profile, claims the e-mail and records the audit entry in one transaction.
    pub async fn create_user(&self, user: &User, audit: &AuditEntry) -> StoreResult<Registration> {
        let profile = to_item(user, &[("pk", user_pk(&user.id)), ("sk", PROFILE.into())])?;
        let mut claim = to_item(
            &serde_json::json!({ "userId": user.id }),
            &[("pk", email_pk(&user.email)), ("sk", EMAIL.into())],
        )?;
        claim.insert("email".into(), s(user.email.clone()));
        let new_item = |item| self.put_new(&self.users, item);
        let items = vec![new_item(profile)?, new_item(claim)?, self.audit_put(audit)?];
        match self.transact(items).await {
            Ok(()) => Ok(Registration::Created),
            Err(e) if e.failed_condition_at(1) => Ok(Registration::EmailTaken),
            Err(e) => Err(e),
        }
    }

    /// The user signing in with `email`, in the same two reads whether or not there is one
    /// (the second for a user id that cannot exist), so the answer's timing does not tell.
    pub async fn login_candidate(&self, email: &str) -> StoreResult<Option<User>> {
        let claim = self.get(&self.users, email_pk(email), EMAIL.into()).await?;
        let user_id = match &claim {
            Some(claim) => claim
                .get("userId")
                .and_then(|v| v.as_s().ok())
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("e-mail claim {email} has no userId"))
                })?,
            None => NO_USER,
        };
        let user = self.user(user_id).await?;
        Ok(user.filter(|_| claim.is_some()))
    }

    pub async fn user(&self, id: &str) -> StoreResult<Option<User>> {
        self.get(&self.users, user_pk(id), PROFILE.into())
            .await?
            .map(from_item)
            .transpose()
    }

    pub async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let Some(claim) = self.get(&self.users, email_pk(email), EMAIL.into()).await? else {
            return Ok(None);
        };
        let user_id = claim
            .get("userId")
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| StoreError::Corrupt(format!("e-mail claim {email} has no userId")))?;
        self.user(user_id).await
    }

    /// Whether the device token's hash is a known device of the user (`None`: no user), in one
    /// read either way, so the answer's timing does not tell whether the user exists.
    pub async fn known_device(
        &self,
        user_id: Option<&str>,
        device_hash: &str,
        now_epoch: i64,
    ) -> StoreResult<bool> {
        let item = self
            .get(
                &self.users,
                user_pk(user_id.unwrap_or(NO_USER)),
                device_sk(device_hash),
            )
            .await?;
        let expires = item
            .as_ref()
            .and_then(|i| i.get("expiresAt"))
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok());
        Ok(user_id.is_some() && expires.is_some_and(|e| e > now_epoch))
    }

    /// Stores a session under the hash of its token, with the login's audit entry, and records
    /// (or renews) the device it was started on.
    pub async fn create_session(
        &self,
        token_hash: &str,
        session: &Session,
        device: &KnownDevice,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let item = to_item(
            session,
            &[
                ("pk", session_pk(token_hash)),
                ("sk", SESSION.into()),
                ("expiryPk", super::expiry::expiry_key(SESSION, token_hash)),
            ],
        )?;
        let put = self.put_new(&self.users, item)?;
        // Under the user: the list of sessions, so all of them can be ended (password change,
        // deletion), and the device the session starts on.
        let under_user = |sk: String, expires_at: i64| {
            let mut item = Item::new();
            item.insert("pk".into(), s(user_pk(&session.user_id)));
            item.insert("sk".into(), s(sk));
            item.insert("expiresAt".into(), n(expires_at));
            Put::builder()
                .table_name(&self.users)
                .set_item(Some(item))
                .build()
                .map(|put| TransactWriteItem::builder().put(put).build())
                .map_err(|e| StoreError::Backend(e.to_string()))
        };
        let entry = under_user(session_entry_sk(token_hash), session.expires_at)?;
        let known = under_user(device_sk(&device.token_hash), device.expires_at)?;
        self.transact(vec![put, entry, known, self.audit_put(audit)?])
            .await
    }

    /// Ends every session of the user but `keep` (a token hash); returns how many ended.
    pub async fn end_sessions(&self, user_id: &str, keep: Option<&str>) -> StoreResult<usize> {
        let query = self
            .partition_query(&self.users, user_pk(user_id), Some(&session_entry_sk("")))
            .projection_expression("sk");
        let mut requests = Vec::new();
        let mut ended = 0;
        for entry in self.query_all(query).await? {
            let Some(hash) = entry
                .get("sk")
                .and_then(|v| v.as_s().ok())
                .and_then(|sk| sk.strip_prefix(&session_entry_sk("")))
            else {
                continue;
            };
            if keep == Some(hash) {
                continue;
            }
            ended += 1;
            for (pk, sk) in [
                (session_pk(hash), SESSION.to_owned()),
                (user_pk(user_id), session_entry_sk(hash)),
            ] {
                requests.push(delete_request(pk, sk)?);
            }
        }
        self.write_batch(&self.users, requests).await?;
        Ok(ended)
    }

    /// Replaces the user's password hash, with its audit entry.
    pub async fn set_password_hash(
        &self,
        user_id: &str,
        password_hash: &str,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let update = aws_sdk_dynamodb::types::Update::builder()
            .table_name(&self.users)
            .key("pk", s(user_pk(user_id)))
            .key("sk", s(PROFILE))
            .condition_expression("attribute_exists(pk)")
            .update_expression("SET passwordHash = :hash")
            .expression_attribute_values(":hash", s(password_hash))
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        self.transact(vec![
            TransactWriteItem::builder().update(update).build(),
            self.audit_put(audit)?,
        ])
        .await
    }

    /// The session for a token hash, unless it has expired (TTL deletion is lazy, so the expiry is
    /// checked here too).
    pub async fn session(&self, token_hash: &str, now_epoch: i64) -> StoreResult<Option<Session>> {
        let Some(item) = self
            .get(&self.users, session_pk(token_hash), SESSION.into())
            .await?
        else {
            return Ok(None);
        };
        let session: Session = from_item(item)?;
        Ok((session.expires_at > now_epoch).then_some(session))
    }

    /// Ends a session, with the logout's audit entry.
    pub async fn delete_session(&self, token_hash: &str, audit: &AuditEntry) -> StoreResult<()> {
        let delete = Delete::builder()
            .table_name(&self.users)
            .key("pk", s(session_pk(token_hash)))
            .key("sk", s(SESSION))
            .condition_expression("attribute_exists(pk) AND expiresAt > :now")
            .expression_attribute_values(":now", n(audit.created_at.timestamp()))
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let entry = Delete::builder()
            .table_name(&self.users)
            .key("pk", s(user_pk(&audit.user_id)))
            .key("sk", s(session_entry_sk(token_hash)))
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        match self
            .transact(vec![
                TransactWriteItem::builder().delete(delete).build(),
                TransactWriteItem::builder().delete(entry).build(),
                self.audit_put(audit)?,
            ])
            .await
        {
            Err(e) if e.failed_condition_at(0) => Err(StoreError::ConditionFailed),
            other => other,
        }
    }

    /// Records that the user used the API at `now` (CalDAV polling speeds up for active users).
    pub async fn note_user_active(
        &self,
        user_id: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()> {
        self.stats.write();
        let result = self
            .ddb
            .update_item()
            .table_name(&self.users)
            .key("pk", s(user_pk(user_id)))
            .key("sk", s(PROFILE))
            .update_expression("SET activeAt = :now")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":now", s(crate::time::key_format(now)))
            .send()
            .await
            .map_err(StoreError::from_sdk);
        match result {
            Ok(_) | Err(StoreError::ConditionFailed) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// When the user last used the API, as far as [`Self::note_user_active`] recorded it.
    pub async fn user_active_at(
        &self,
        user_id: &str,
    ) -> StoreResult<Option<chrono::DateTime<chrono::Utc>>> {
        Ok(self
            .get(&self.users, user_pk(user_id), PROFILE.into())
            .await?
            .and_then(|item| item.get("activeAt")?.as_s().ok().cloned())
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.to_utc()))
    }
}
