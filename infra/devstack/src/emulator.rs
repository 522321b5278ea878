//! The AWS emulator (moto server: DynamoDB, KMS, SQS) on a free loopback port.

use crate::peer::{free_port, venv_tool, Peer};

/// A running moto server; stops when dropped or when this process exits.
pub struct Emulator {
    pub endpoint: String,
    _peer: Peer,
}

/// moto_server with transactions that undo only their own writes (`infra/aws_emulator.py`),
/// run by the project venv's Python.
const LAUNCHER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../aws_emulator.py");

impl Emulator {
    pub fn start() -> std::io::Result<Self> {
        let port = free_port()?;
        let args = [LAUNCHER, "-H", "127.0.0.1", "-p", &port.to_string()].map(str::to_owned);
        let peer = Peer::start(&venv_tool("python"), &args, &[], port, None)?;
        Ok(Self {
            endpoint: peer.base_url.clone(),
            _peer: peer,
        })
    }
}
