//! ICS feeds in the Users table: `FEED#<sha256(token)>` / `FEED`, read by the feed URL, and a
//! listing entry `USER#<userId>` / `FEED#<sha256(token)>`, for the user's list; both written and
//! deleted in one transaction. The token is the credential of the feed URL, so only its hash is
//! stored; the hash is also the feed's id.

use aws_sdk_dynamodb::types::{Delete, TransactWriteItem};

use super::{from_item, s, to_item, Store, StoreError, StoreResult};

const FEED: &str = "FEED";

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Feed {
    pub user_id: String,
    pub name: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

fn feed_pk(token_hash: &str) -> String {
    format!("FEED#{token_hash}")
}

fn listing_key(user_id: &str, token_hash: &str) -> (String, String) {
    (format!("USER#{user_id}"), format!("FEED#{token_hash}"))
}

/// A feed as its owner lists it: its id (the token's hash), never the token.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeedEntry {
    pub id: String,
    pub name: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl Store {
    pub async fn create_feed(&self, token_hash: &str, feed: &Feed) -> StoreResult<()> {
        let build = |item| self.put_new(&self.users, item);
        let (pk, sk) = listing_key(&feed.user_id, token_hash);
        let entry = FeedEntry {
            id: token_hash.to_owned(),
            name: feed.name.clone(),
            created_at: feed.created_at,
        };
        self.transact(vec![
            build(to_item(
                feed,
                &[("pk", feed_pk(token_hash)), ("sk", FEED.into())],
            )?)?,
            build(to_item(&entry, &[("pk", pk), ("sk", sk)])?)?,
        ])
        .await
    }

    pub async fn feed(&self, token_hash: &str) -> StoreResult<Option<Feed>> {
        self.get(&self.users, feed_pk(token_hash), FEED.into())
            .await?
            .map(from_item)
            .transpose()
    }

    /// The user's feeds, oldest first.
    pub async fn feeds(&self, user_id: &str) -> StoreResult<Vec<FeedEntry>> {
        let (pk, prefix) = listing_key(user_id, "");
        let mut feeds: Vec<FeedEntry> =
            self.partition_items(&self.users, pk, Some(&prefix)).await?;
        feeds.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(feeds)
    }

    /// Revokes a feed of this user; `ConditionFailed` when there is no such feed of theirs.
    pub async fn delete_feed(&self, user_id: &str, token_hash: &str) -> StoreResult<()> {
        let feed = Delete::builder()
            .table_name(&self.users)
            .key("pk", s(feed_pk(token_hash)))
            .key("sk", s(FEED))
            .condition_expression("userId = :user")
            .expression_attribute_values(":user", s(user_id))
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let (pk, sk) = listing_key(user_id, token_hash);
        let entry = Delete::builder()
            .table_name(&self.users)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        match self
            .transact(vec![
                TransactWriteItem::builder().delete(feed).build(),
                TransactWriteItem::builder().delete(entry).build(),
            ])
            .await
        {
            Err(e) if e.failed_condition_at(0) => Err(StoreError::ConditionFailed),
            other => other,
        }
    }
}
