//! Attempt counters in the Users table, for throttling: `THROTTLE#<kind>#<subject>#<window>` /
//! `THROTTLE`, TTL `expiresAt`. Fixed windows: an attempt is counted by ONE atomic `ADD` before
//! the work it guards, so concurrent attempts cannot all slip under the limit; an attempt that
//! should not count (a login that succeeded) is refunded afterwards.

use aws_sdk_dynamodb::types::ReturnValue;

use super::{n, s, Store, StoreError, StoreResult};

const THROTTLE: &str = "THROTTLE";

/// At most `max` attempts of one kind by one subject per window of `window_seconds`.
#[derive(Clone, Copy, Debug)]
pub struct Limit {
    pub kind: &'static str,
    pub max: i64,
    pub window_seconds: i64,
}

/// The answer to one counted attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// Over the limit until the window ends. `first` is true for the first refused attempt of the
    /// window, so a refusal is recorded once, not once per attempt.
    Refused {
        retry_after_seconds: i64,
        first: bool,
    },
}

fn throttle_pk(limit: &Limit, subject: &str, window: i64) -> String {
    format!("{THROTTLE}#{}#{subject}#{window}", limit.kind)
}

impl Store {
    /// Counts one attempt of `subject` against `limit` at `now_epoch`.
    pub async fn count_attempt(
        &self,
        limit: &Limit,
        subject: &str,
        now_epoch: i64,
    ) -> StoreResult<Admission> {
        let window = now_epoch.div_euclid(limit.window_seconds);
        let window_end = (window + 1) * limit.window_seconds;
        self.stats.write();
        let out = self
            .ddb
            .update_item()
            .table_name(&self.users)
            .key("pk", s(throttle_pk(limit, subject, window)))
            .key("sk", s(THROTTLE))
            .update_expression("ADD attempts :one SET expiresAt = :expires")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":expires", n(window_end))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        let attempts = out
            .attributes
            .as_ref()
            .and_then(|a| a.get("attempts"))
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or_else(|| StoreError::Corrupt("throttle counter without attempts".into()))?;
        Ok(if attempts <= limit.max {
            Admission::Allowed
        } else {
            Admission::Refused {
                retry_after_seconds: (window_end - now_epoch).max(1),
                first: attempts == limit.max + 1,
            }
        })
    }

    /// Takes back an attempt counted at `counted_at_epoch` (same window), e.g. a login that
    /// succeeded, so the owner's own sign-ins never use up the limit.
    pub async fn refund_attempt(
        &self,
        limit: &Limit,
        subject: &str,
        counted_at_epoch: i64,
    ) -> StoreResult<()> {
        let window = counted_at_epoch.div_euclid(limit.window_seconds);
        self.stats.write();
        self.ddb
            .update_item()
            .table_name(&self.users)
            .key("pk", s(throttle_pk(limit, subject, window)))
            .key("sk", s(THROTTLE))
            .condition_expression("attempts > :zero")
            .update_expression("ADD attempts :minus_one")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":minus_one", n(-1))
            .send()
            .await
            .map(|_| ())
            .or_else(|err| match StoreError::from_sdk(err) {
                // Nothing to refund (the window's item expired meanwhile).
                StoreError::ConditionFailed => Ok(()),
                other => Err(other),
            })
    }
}
