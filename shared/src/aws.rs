//! AWS SDK configuration. `AWS_ENDPOINT_URL` (read by aws-config) points every client at the local
//! emulator in development and tests; in Lambda it is unset and the real endpoints are used.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::{
    tls::{self, rustls_provider::CryptoMode},
    Builder,
};

/// Loads the SDK configuration from the environment with a rustls-on-ring HTTP client.
pub async fn load_sdk_config() -> SdkConfig {
    let http_client = Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client)
        .load()
        .await
}
