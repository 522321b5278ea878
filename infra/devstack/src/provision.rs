//! Creates template.yaml's tables (keys, GSIs, TTL), queues and keys in the AWS emulator, and
//! resolves the functions' environment (`Globals.Function.Environment`) to the local names.

use std::collections::{BTreeMap, HashMap};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;

use crate::template::{scalar_text, Template};

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("{resource}: {message}")]
    Resource { resource: String, message: String },
}

fn fail(resource: &str, message: impl std::fmt::Display) -> ProvisionError {
    ProvisionError::Resource {
        resource: resource.to_owned(),
        message: message.to_string(),
    }
}

/// What was created: `Ref` and `Fn::GetAtt ... Arn` values by logical id, and the resolved
/// function environment.
#[derive(Debug, Default)]
pub struct Provisioned {
    pub refs: HashMap<String, String>,
    pub arns: HashMap<String, String>,
    pub environment: BTreeMap<String, String>,
}

/// Provisions every supported resource under `prefix` (so several stacks can share one emulator).
pub async fn provision(
    sdk: &SdkConfig,
    template: &Template,
    prefix: &str,
) -> Result<Provisioned, ProvisionError> {
    let ddb = aws_sdk_dynamodb::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let kms = aws_sdk_kms::Client::new(sdk);
    let mut out = Provisioned::default();
    // Keys and plain queues first: aliases and redrive policies refer to them.
    let mut ordered: Vec<(&String, &crate::template::Resource)> =
        template.resources.iter().collect();
    ordered.sort_by_key(|(_, r)| match r.kind.as_str() {
        "AWS::KMS::Key" => 0,
        "AWS::SQS::Queue" if r.properties.get("RedrivePolicy").is_none() => 1,
        _ => 2,
    });
    for (name, resource) in ordered {
        let physical = format!("{prefix}{name}");
        match resource.kind.as_str() {
            "AWS::DynamoDB::Table" => {
                create_table(&ddb, name, &physical, &resource.properties).await?;
                out.arns.insert(
                    name.clone(),
                    format!("arn:aws:dynamodb:us-east-1:000000000000:table/{physical}"),
                );
                out.refs.insert(name.clone(), physical);
            }
            "AWS::SQS::Queue" => {
                let (url, arn) =
                    create_queue(&sqs, name, &physical, &resource.properties, &out).await?;
                out.refs.insert(name.clone(), url);
                out.arns.insert(name.clone(), arn);
            }
            "AWS::KMS::Key" => {
                let key = kms
                    .create_key()
                    .description(format!("calsync local {name}"))
                    .send()
                    .await
                    .map_err(|e| fail(name, aws_sdk_kms::error::DisplayErrorContext(e)))?;
                let meta = key
                    .key_metadata
                    .ok_or_else(|| fail(name, "no key metadata"))?;
                out.arns.insert(name.clone(), meta.arn.unwrap_or_default());
                out.refs.insert(name.clone(), meta.key_id);
            }
            "AWS::KMS::Alias" => {
                let alias = resource
                    .properties
                    .get("AliasName")
                    .map(scalar_text)
                    .unwrap_or_default();
                // Prefixed like every other resource, so several stacks share one emulator.
                let alias = format!("alias/{prefix}{}", alias.trim_start_matches("alias/"));
                let target = resolve(resource.properties.get("TargetKeyId"), template, &out)
                    .ok_or_else(|| fail(name, "unresolvable TargetKeyId"))?;
                kms.create_alias()
                    .alias_name(&alias)
                    .target_key_id(target)
                    .send()
                    .await
                    .map_err(|e| fail(name, aws_sdk_kms::error::DisplayErrorContext(e)))?;
                out.refs.insert(name.clone(), alias);
            }
            _ => {}
        }
    }
    // Locally every function shares one environment: the globals plus each function's own.
    let mut variables = template
        .globals
        .pointer("/Function/Environment/Variables")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for resource in template.resources.values() {
        if let Some(own) = resource
            .properties
            .pointer("/Environment/Variables")
            .and_then(Value::as_object)
        {
            variables.extend(own.clone());
        }
    }
    for (key, value) in &variables {
        let resolved = resolve(Some(value), template, &out)
            .ok_or_else(|| fail("Globals", format!("cannot resolve {key}")))?;
        out.environment.insert(key.clone(), resolved);
    }
    Ok(out)
}

/// Resolves a literal, `Ref` (resources and parameter defaults) or `Fn::GetAtt [X, Arn]`.
fn resolve(value: Option<&Value>, template: &Template, out: &Provisioned) -> Option<String> {
    let value = value?;
    if let Some(name) = value.get("Ref").and_then(Value::as_str) {
        return out
            .refs
            .get(name)
            .cloned()
            .or_else(|| template.parameter_default(name));
    }
    if let Some(att) = value.get("Fn::GetAtt").and_then(Value::as_array) {
        let name = att.first()?.as_str()?;
        return (att.get(1)?.as_str()? == "Arn").then(|| out.arns.get(name).cloned())?;
    }
    match value {
        Value::Object(_) | Value::Array(_) => None,
        other => Some(scalar_text(other)),
    }
}

fn str_field<'v>(value: &'v Value, field: &str, resource: &str) -> Result<&'v str, ProvisionError> {
    value
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| fail(resource, format!("missing {field}")))
}

fn key_schema(
    list: Option<&Value>,
    resource: &str,
) -> Result<Vec<KeySchemaElement>, ProvisionError> {
    list.and_then(Value::as_array)
        .ok_or_else(|| fail(resource, "missing KeySchema"))?
        .iter()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(str_field(k, "AttributeName", resource)?)
                .key_type(KeyType::from(str_field(k, "KeyType", resource)?))
                .build()
                .map_err(|e| fail(resource, e))
        })
        .collect()
}

async fn create_table(
    ddb: &aws_sdk_dynamodb::Client,
    name: &str,
    physical: &str,
    props: &Value,
) -> Result<(), ProvisionError> {
    let attributes = props
        .get("AttributeDefinitions")
        .and_then(Value::as_array)
        .ok_or_else(|| fail(name, "missing AttributeDefinitions"))?
        .iter()
        .map(|a| {
            AttributeDefinition::builder()
                .attribute_name(str_field(a, "AttributeName", name)?)
                .attribute_type(ScalarAttributeType::from(str_field(
                    a,
                    "AttributeType",
                    name,
                )?))
                .build()
                .map_err(|e| fail(name, e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let indexes = props
        .get("GlobalSecondaryIndexes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|gsi| {
            let projection = gsi.get("Projection").cloned().unwrap_or_default();
            let non_key: Option<Vec<String>> = projection
                .get("NonKeyAttributes")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                });
            GlobalSecondaryIndex::builder()
                .index_name(str_field(gsi, "IndexName", name)?)
                .set_key_schema(Some(key_schema(gsi.get("KeySchema"), name)?))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::from(
                            projection
                                .get("ProjectionType")
                                .and_then(Value::as_str)
                                .unwrap_or("ALL"),
                        ))
                        .set_non_key_attributes(non_key)
                        .build(),
                )
                .build()
                .map_err(|e| fail(name, e))
        })
        .collect::<Result<Vec<_>, ProvisionError>>()?;
    let created = ddb
        .create_table()
        .table_name(physical)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(attributes))
        .set_key_schema(Some(key_schema(props.get("KeySchema"), name)?))
        .set_global_secondary_indexes((!indexes.is_empty()).then_some(indexes))
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) =>
        {
            return Ok(())
        }
        Err(e) => return Err(fail(name, aws_sdk_dynamodb::error::DisplayErrorContext(e))),
    }
    if let Some(ttl) = props.get("TimeToLiveSpecification") {
        ddb.update_time_to_live()
            .table_name(physical)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(str_field(ttl, "AttributeName", name)?)
                    .enabled(ttl.get("Enabled").and_then(Value::as_bool).unwrap_or(false))
                    .build()
                    .map_err(|e| fail(name, e))?,
            )
            .send()
            .await
            .map_err(|e| fail(name, aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
    }
    Ok(())
}

async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    physical: &str,
    props: &Value,
    out: &Provisioned,
) -> Result<(String, String), ProvisionError> {
    let fifo = props
        .get("FifoQueue")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let queue_name = if fifo {
        format!("{physical}.fifo")
    } else {
        physical.to_owned()
    };
    let mut request = sqs.create_queue().queue_name(&queue_name);
    let simple = [
        ("FifoQueue", QueueAttributeName::FifoQueue),
        (
            "ContentBasedDeduplication",
            QueueAttributeName::ContentBasedDeduplication,
        ),
        ("VisibilityTimeout", QueueAttributeName::VisibilityTimeout),
        (
            "MessageRetentionPeriod",
            QueueAttributeName::MessageRetentionPeriod,
        ),
        (
            "ReceiveMessageWaitTimeSeconds",
            QueueAttributeName::ReceiveMessageWaitTimeSeconds,
        ),
    ];
    for (field, attribute) in simple {
        if let Some(v) = props.get(field) {
            request = request.attributes(attribute, scalar_text(v));
        }
    }
    if let Some(redrive) = props.get("RedrivePolicy") {
        let target = redrive
            .get("deadLetterTargetArn")
            .and_then(|t| t.get("Fn::GetAtt")?.get(0)?.as_str())
            .and_then(|dlq| out.arns.get(dlq))
            .ok_or_else(|| {
                fail(
                    name,
                    "RedrivePolicy must name a queue of this template by Fn::GetAtt",
                )
            })?;
        let max = redrive
            .get("maxReceiveCount")
            .map(scalar_text)
            .unwrap_or_else(|| "5".into());
        let policy = serde_json::json!({"deadLetterTargetArn": target, "maxReceiveCount": max});
        request = request.attributes(QueueAttributeName::RedrivePolicy, policy.to_string());
    }
    let url = request
        .send()
        .await
        .map_err(|e| fail(name, aws_sdk_sqs::error::DisplayErrorContext(e)))?
        .queue_url
        .ok_or_else(|| fail(name, "no queue URL"))?;
    let arn = format!("arn:aws:sqs:us-east-1:123456789012:{queue_name}");
    Ok((url, arn))
}
