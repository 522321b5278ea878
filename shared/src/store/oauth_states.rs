//! OAuth states in the Users table: `OAUTH#<sha256(state)>` / `OAUTH`, TTL `expiresAt`. A state
//! is launched (bound to one browser) and consumed by ONE conditional update each, so of two
//! browsers or two callbacks carrying it only one proceeds.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::expiry::expiry_key;
use super::{from_item, n, s, to_item, Store, StoreError, StoreResult};
use crate::model::{OAuthState, Provider};

const OAUTH: &str = "OAUTH";

fn state_pk(state_hash: &str) -> String {
    format!("OAUTH#{state_hash}")
}

/// A refused state, with the user it was issued to when it was ever issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    pub reason: StateRejection,
    pub user_id: Option<String>,
}

/// Why a callback's state was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateRejection {
    /// Never issued (or already cleaned up): possibly forged.
    Unknown,
    Expired,
    /// Already used by an earlier callback (or, at the start route, already opened once).
    Used,
    /// Issued for another provider's flow.
    WrongProvider,
}

impl Store {
    pub async fn create_oauth_state(
        &self,
        state_hash: &str,
        state: &OAuthState,
    ) -> StoreResult<()> {
        let item = to_item(
            state,
            &[
                ("pk", state_pk(state_hash)),
                ("sk", OAUTH.into()),
                ("expiryPk", expiry_key(OAUTH, state_hash)),
            ],
        )?;
        self.stats.write();
        self.ddb
            .put_item()
            .table_name(&self.users)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        Ok(())
    }

    /// Binds the state to the browser opening the start route: records `browser_hash` if the
    /// state exists, was never opened, is within its launch window and of this provider.
    pub async fn launch_oauth_state(
        &self,
        state_hash: &str,
        provider: Provider,
        browser_hash: &str,
        now_epoch: i64,
    ) -> StoreResult<Result<OAuthState, Rejected>> {
        let step = StateStep {
            condition: "attribute_not_exists(browserHash) AND launchBy > :now",
            update: "SET browserHash = :browser",
            value: (":browser", s(browser_hash)),
            returns: ReturnValue::AllNew,
        };
        self.state_step(state_hash, provider, now_epoch, step, |state| {
            state.browser_hash.is_some()
        })
        .await
    }

    /// Marks the state used if it exists, is unused, unexpired and of this provider; otherwise
    /// says which of those failed. Consuming also moves its expiry to now, so cleanup removes it.
    pub async fn consume_oauth_state(
        &self,
        state_hash: &str,
        provider: Provider,
        now_epoch: i64,
    ) -> StoreResult<Result<OAuthState, Rejected>> {
        let step = StateStep {
            condition: "expiresAt > :now",
            update: "SET #consumed = :true, expiresAt = :now",
            value: (":true", AttributeValue::Bool(true)),
            returns: ReturnValue::AllOld,
        };
        self.state_step(state_hash, provider, now_epoch, step, |_| false)
            .await
    }

    /// One conditional step of a state: it must exist, be unconsumed, of `provider`, and meet
    /// the step's own condition; `taken` tells from the item whether the step was done before.
    async fn state_step(
        &self,
        state_hash: &str,
        provider: Provider,
        now_epoch: i64,
        step: StateStep,
        taken: impl Fn(&OAuthState) -> bool,
    ) -> StoreResult<Result<OAuthState, Rejected>> {
        self.stats.write();
        let result = self
            .ddb
            .update_item()
            .table_name(&self.users)
            .key("pk", s(state_pk(state_hash)))
            .key("sk", s(OAUTH))
            .condition_expression(format!(
                "attribute_exists(pk) AND #consumed = :false AND provider = :provider AND {}",
                step.condition
            ))
            .update_expression(step.update)
            .expression_attribute_names("#consumed", "consumed")
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":now", n(now_epoch))
            .expression_attribute_values(":provider", s(provider.as_str()))
            .expression_attribute_values(step.value.0, step.value.1)
            .return_values(step.returns)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Ok(from_item(out.attributes.unwrap_or_default())?)),
            Err(err) => rejection(err, provider, taken),
        }
    }
}

/// What a step of a state checks and writes, beyond what every step does.
struct StateStep {
    condition: &'static str,
    update: &'static str,
    value: (&'static str, AttributeValue),
    returns: ReturnValue,
}

/// Why a conditional update of a state failed, from the item as it was; `used` says whether
/// the step was already taken.
fn rejection(
    err: aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::update_item::UpdateItemError,
    >,
    provider: Provider,
    used: impl Fn(&OAuthState) -> bool,
) -> StoreResult<Result<OAuthState, Rejected>> {
    use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
    let old = match err.as_service_error() {
        Some(UpdateItemError::ConditionalCheckFailedException(e)) => Some(e.item.clone()),
        _ => None,
    };
    match old {
        None => Err(StoreError::from_sdk(err)),
        Some(None) => Ok(Err(Rejected {
            reason: StateRejection::Unknown,
            user_id: None,
        })),
        Some(Some(item)) => {
            let state: OAuthState = from_item(item)?;
            let reason = if state.consumed || used(&state) {
                StateRejection::Used
            } else if state.provider != provider {
                StateRejection::WrongProvider
            } else {
                StateRejection::Expired
            };
            Ok(Err(Rejected {
                reason,
                user_id: Some(state.user_id),
            }))
        }
    }
}
