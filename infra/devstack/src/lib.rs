//! calsync on one machine. template.yaml is the single source of truth: this crate reads it to
//! create the local tables, indexes, TTL settings, queues and keys in the AWS emulator
//! ([`provision`]), and to route HTTP requests to functions as API Gateway would ([`template`]).

pub mod app_page;
pub mod emulator;
pub mod fault_proxy;
pub mod gateway;
pub mod http_relay;
pub mod peer;
pub mod provision;
pub mod recurrence_corpus;
pub mod template;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use aws_smithy_http_client::{
    tls::{self, rustls_provider::CryptoMode},
    Builder,
};

/// SDK configuration for the local emulator at `endpoint`, with dummy credentials.
pub async fn local_sdk_config(endpoint: &str) -> SdkConfig {
    let http_client = Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client)
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "test",
            "test",
            None,
            None,
            "calsync-local",
        ))
        .load()
        .await
}
