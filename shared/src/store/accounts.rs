//! Provider accounts (`USER#<userId>` / `ACCT#<accountId>` in the Connections table) and the
//! calendars they reach. The sparse `byTokenExpiry` index holds connected accounts with a
//! refresh token, for the token-refresh job.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::connections::{conn_sk, shard_of, user_pk};
use super::{from_item, n, s, to_item, Item, Store, StoreError, StoreResult};
use crate::model::{Connection, ProviderAccount};
use crate::time::key_format;

pub(crate) fn account_sk(account_id: &str) -> String {
    format!("ACCT#{account_id}")
}

impl Store {
    fn account_item(&self, account: &ProviderAccount) -> StoreResult<Item> {
        let mut keys = vec![
            ("pk", user_pk(&account.user_id)),
            ("sk", account_sk(&account.id)),
        ];
        if account.is_connected
            && account.refresh_token.is_some()
            && account.token_expires_at.is_some()
        {
            keys.push(("refreshShard", shard_of(&account.id)));
        }
        let mut item = to_item(account, &keys)?;
        // tokenExpiresAt is the index's sort key: only refreshable accounts keep it.
        if !item.contains_key("refreshShard") {
            item.remove("tokenExpiresAt");
        }
        Ok(item)
    }

    /// Writes an account whole (on connect and re-connect).
    pub async fn put_account(&self, account: &ProviderAccount) -> StoreResult<()> {
        self.stats.write();
        self.ddb
            .put_item()
            .table_name(&self.connections)
            .set_item(Some(self.account_item(account)?))
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        Ok(())
    }

    /// Every provider account of a user, disconnected ones included.
    pub async fn accounts(&self, user_id: &str) -> StoreResult<Vec<ProviderAccount>> {
        self.partition_items(&self.connections, user_pk(user_id), Some("ACCT#"))
            .await
    }

    pub async fn account(&self, user_id: &str, id: &str) -> StoreResult<Option<ProviderAccount>> {
        self.get(&self.connections, user_pk(user_id), account_sk(id))
            .await?
            .map(from_item)
            .transpose()
    }

    /// Creates a discovered calendar, or refreshes it when it exists (a re-connect): the provider's
    /// name, the account and the connected state are updated; the user's colour and name, the
    /// creation time and the event count are kept; a soft delete is undone.
    pub async fn upsert_calendar(&self, conn: &Connection) -> StoreResult<Connection> {
        let now = key_format(conn.created_at);
        let account = conn
            .account_id
            .as_ref()
            .map_or("", |_| ", accountId = :account");
        let expression = format!(
            "SET userId = :user, id = :id, provider = :provider, calendarId = :calendar, \
             calendarName = :name, calendarColor = if_not_exists(calendarColor, :color), \
             isPrimary = :primary, isConnected = :true, #status = :active, \
             createdAt = if_not_exists(createdAt, :now), eventCount = if_not_exists(eventCount, :zero), \
             syncShard = :shard, nextSyncAt = :now{account} REMOVE deletedAt, lastError"
        );
        let update = self
            .ddb
            .update_item()
            .table_name(&self.connections)
            .key("pk", s(user_pk(&conn.user_id)))
            .key("sk", s(conn_sk(&conn.id)))
            .update_expression(expression)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":user", s(conn.user_id.clone()))
            .expression_attribute_values(":id", s(conn.id.clone()))
            .expression_attribute_values(":provider", s(conn.provider.as_str()))
            .expression_attribute_values(":calendar", s(conn.calendar_id.clone()))
            .expression_attribute_values(":name", s(conn.calendar_name.clone()))
            .expression_attribute_values(":color", s(conn.calendar_color.clone()))
            .expression_attribute_values(":primary", AttributeValue::Bool(conn.is_primary))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(
                ":active",
                s(crate::model::ConnectionStatus::Active.as_str()),
            )
            .expression_attribute_values(":now", s(now))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":shard", s(shard_of(&conn.id)))
            .return_values(ReturnValue::AllNew);
        let update = match &conn.account_id {
            Some(id) => update.expression_attribute_values(":account", s(id.clone())),
            None => update,
        };
        self.stats.write();
        let out = update.send().await.map_err(StoreError::from_sdk)?;
        from_item(out.attributes.unwrap_or_default())
    }
}

/// A held refresh lease: only its owner may write the account's new tokens.
pub struct Lease {
    pub owner: String,
    pub account: ProviderAccount,
}

impl Store {
    /// Accounts in `shard` whose access token expires before `before` (user id, account id).
    pub async fn accounts_expiring(
        &self,
        shard: u32,
        before: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Vec<(String, String)>> {
        let due = super::connections::DueIndex {
            index: "byTokenExpiry",
            shard_attribute: "refreshShard",
            time_attribute: "tokenExpiresAt",
            item_prefix: "ACCT#",
        };
        self.due_in_shard(&due, shard, before).await
    }

    /// Takes the refresh lease of a connected account until `until`, unless another refresher
    /// holds an unexpired one (`None` then).
    pub async fn lease_account(
        &self,
        user_id: &str,
        account_id: &str,
        now: chrono::DateTime<chrono::Utc>,
        until: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Option<Lease>> {
        let spec = super::connections::LeaseSpec {
            sk: account_sk(account_id),
            until_attribute: "leaseUntil",
            owner_attribute: "leaseOwner",
            condition: "isConnected = :true",
            clears: None,
        };
        self.take_lease(user_id, &spec, now, until)
            .await?
            .map(|taken| {
                let owner = taken.owner;
                from_item(taken.item).map(|account| Lease { owner, account })
            })
            .transpose()
    }

    /// Writes the account as the lease holder left it (releasing the lease), and, when it is no
    /// longer connected, takes its calendars out of sync with the same status; with an audit
    /// entry, all in one transaction. `ConditionFailed` when the lease was lost.
    pub async fn release_account(
        &self,
        lease: &Lease,
        account: &ProviderAccount,
        calendars: &[Connection],
        audit: Option<&crate::model::AuditEntry>,
    ) -> StoreResult<()> {
        use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
        let build = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Backend(e.to_string());
        let put = Put::builder()
            .table_name(&self.connections)
            .set_item(Some(self.account_item(account)?))
            .condition_expression("leaseOwner = :owner")
            .expression_attribute_values(":owner", s(lease.owner.clone()))
            .build()
            .map_err(build)?;
        let mut items = vec![TransactWriteItem::builder().put(put).build()];
        if !account.is_connected {
            for calendar in calendars.iter().filter(|c| c.deleted_at.is_none()) {
                let update = Update::builder()
                    .table_name(&self.connections)
                    .key("pk", s(user_pk(&calendar.user_id)))
                    .key("sk", s(conn_sk(&calendar.id)))
                    .condition_expression("attribute_exists(pk)")
                    .update_expression(
                        "SET isConnected = :false, #status = :status, lastError = :error REMOVE syncShard, nextSyncAt",
                    )
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":false", AttributeValue::Bool(false))
                    .expression_attribute_values(":status", s(account.status.as_str()))
                    .expression_attribute_values(":error", s(account.last_error.clone().unwrap_or_default()))
                    .build()
                    .map_err(build)?;
                items.push(TransactWriteItem::builder().update(update).build());
            }
        }
        if let Some(audit) = audit {
            items.push(self.audit_put(audit)?);
        }
        match self.transact(items).await {
            Err(e) if e.failed_condition_at(0) => Err(StoreError::ConditionFailed),
            other => other,
        }
    }
}

impl Store {
    /// Forgets an account's credentials: sealed tokens and password removed, out of the refresh
    /// index, marked disconnected.
    pub async fn erase_credentials(
        &self,
        user_id: &str,
        account_id: &str,
        audit: &crate::model::AuditEntry,
    ) -> StoreResult<()> {
        use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
        let update = Update::builder()
            .table_name(&self.connections)
            .key("pk", s(user_pk(user_id)))
            .key("sk", s(account_sk(account_id)))
            .condition_expression("attribute_exists(pk)")
            .update_expression(
                "SET isConnected = :false, updatedAt = :now \
                 REMOVE accessToken, refreshToken, tokenExpiresAt, refreshShard, leaseUntil, leaseOwner",
            )
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":now", s(key_format(audit.created_at)))
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        self.transact(vec![
            TransactWriteItem::builder().update(update).build(),
            self.audit_put(audit)?,
        ])
        .await
    }
}
