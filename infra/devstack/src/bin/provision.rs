//! `provision --endpoint URL [--template template.yaml] [--prefix calsync-dev-] [--set KEY=VALUE ...]`
//! Creates template.yaml's resources in the emulator and prints the functions' environment as
//! `KEY=value` lines (for `cargo lambda watch --env-file`).

use std::path::PathBuf;

use calsync_devstack::http_relay::arg;
use calsync_devstack::{local_sdk_config, provision::provision, template::Template};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let endpoint = arg(&args, "--endpoint").ok_or("--endpoint URL is required")?;
    let template =
        PathBuf::from(arg(&args, "--template").unwrap_or_else(|| "template.yaml".into()));
    let prefix = arg(&args, "--prefix").unwrap_or_else(|| "calsync-dev-".into());
    let template = Template::load(&template)?;
    let sdk = local_sdk_config(&endpoint).await;
    let mut provisioned = provision(&sdk, &template, &prefix).await?;
    // `--set KEY=VALUE` (repeatable) overrides a value for the local stack.
    for pair in args.windows(2).filter(|w| w[0] == "--set").map(|w| &w[1]) {
        let (key, value) = pair.split_once('=').ok_or("--set takes KEY=VALUE")?;
        provisioned
            .environment
            .insert(key.to_owned(), value.to_owned());
    }
    for (key, value) in &provisioned.environment {
        println!("{key}={value}");
    }
    Ok(())
}
