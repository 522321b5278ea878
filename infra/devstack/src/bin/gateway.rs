//! `gateway --listen 127.0.0.1:3000 --upstream http://127.0.0.1:9000 [--template template.yaml]
//! [--app-page] [--webhook-sink DIR]`: a local API Gateway in front of `cargo lambda watch`
//! ([`calsync_devstack::gateway`]); `--app-page` also serves the dev stack's `/connected` page,
//! `--webhook-sink` keeps what is POSTed to `/dev/webhook-sink` in DIR.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use calsync_devstack::gateway::{serve, Gateway};
use calsync_devstack::http_relay::arg;
use calsync_devstack::template::Template;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let listen: SocketAddr = arg(&args, "--listen")
        .unwrap_or_else(|| "127.0.0.1:3000".into())
        .parse()?;
    if !listen.ip().is_loopback() {
        return Err("the local gateway listens on loopback only".into());
    }
    let upstream = arg(&args, "--upstream").unwrap_or_else(|| "http://127.0.0.1:9000".into());
    let template =
        PathBuf::from(arg(&args, "--template").unwrap_or_else(|| "template.yaml".into()));
    let mut gateway = Gateway::new(&Template::load(&template)?, &upstream)?;
    if args.iter().any(|a| a == "--app-page") {
        gateway = gateway.with_app_page();
    }
    if let Some(dir) = arg(&args, "--webhook-sink") {
        gateway = gateway.with_webhook_sink(PathBuf::from(dir));
    }
    let gateway = Arc::new(gateway);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!(
        "calsync API: http://{listen}/v1  ({} routes from template.yaml)",
        gateway.route_count()
    );
    serve(listener, gateway).await?;
    Ok(())
}
