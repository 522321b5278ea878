//! The AWS emulator (moto server: DynamoDB, KMS, SQS) on a free loopback port.

use crate::peer::{free_port, venv_tool, Peer};

/// A running moto server; stops when dropped or when this process exits.
pub struct Emulator {
    pub endpoint: String,
    _peer: Peer,
}

/// The moto_server executable: `$MOTO_SERVER`, else the project venv's, else PATH's.
fn moto_binary() -> String {
    std::env::var("MOTO_SERVER").unwrap_or_else(|_| venv_tool("moto_server"))
}

impl Emulator {
    pub fn start() -> std::io::Result<Self> {
        let port = free_port()?;
        let args = ["-H", "127.0.0.1", "-p", &port.to_string()].map(str::to_owned);
        let peer = Peer::start(&moto_binary(), &args, &[], port, None)?;
        Ok(Self {
            endpoint: peer.base_url.clone(),
            _peer: peer,
        })
    }
}
