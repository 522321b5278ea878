//! Real protocol peers for tests and benchmarks (the AWS emulator, Radicale, Xandikos,
//! oidc-provider), each started on a free loopback port. A peer stops when its handle is dropped,
//! and also when this process exits however it exits: a shell keeps it and kills it when our end
//! of its stdin closes.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Peer {
    pub port: u16,
    pub base_url: String,
    shell: Child,
    lifeline: Option<ChildStdin>,
    /// Files the peer needed (configuration, storage); removed with it.
    scratch: Option<PathBuf>,
}

pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A fresh scratch directory for one peer.
pub fn scratch_dir(name: &str) -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "calsync-{name}-{}-{}",
        std::process::id(),
        free_port()?
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// An executable of the project's Python venv (`$CALSYNC_VENV/bin/<name>`, the Makefile sets
/// it), else from PATH.
pub fn venv_tool(name: &str) -> String {
    match std::env::var("CALSYNC_VENV") {
        Ok(venv) if !venv.is_empty() => format!("{venv}/bin/{name}"),
        _ => name.to_owned(),
    }
}

impl Peer {
    /// Runs `program args` with `env`, and waits until it accepts connections on `port`.
    pub fn start(
        program: &str,
        args: &[String],
        env: &[(&str, String)],
        port: u16,
        scratch: Option<PathBuf>,
    ) -> std::io::Result<Self> {
        // fd 3: a background job's stdin is /dev/null before any redirection, and peers that stop
        // at EOF on stdin (oidc-provider) would stop at once; they get the lifeline pipe instead.
        let script =
            r#"exec 3<&0; "$@" <&3 >"${CALSYNC_PEER_LOG:-/dev/null}" 2>&1 & pid=$!; exec 3<&-;"#;
        let script = format!(
            "{script}{}",
            r#" echo started; cat >/dev/null; kill $pid 2>/dev/null; wait $pid"#
        );
        let mut command = Command::new("sh");
        command.args(["-c", &script, "sh", program]).args(args);
        for (k, v) in env {
            command.env(k, v);
        }
        let mut shell = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let lifeline = shell.stdin.take().expect("piped stdin");
        let mut line = String::new();
        BufReader::new(shell.stdout.take().expect("piped stdout")).read_line(&mut line)?;
        let mut peer = Self {
            port,
            base_url: format!("http://127.0.0.1:{port}"),
            shell,
            lifeline: Some(lifeline),
            scratch,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(std::io::Error::other(format!(
                    "{program} did not listen on {port} within 60 s"
                )));
            }
            if peer.shell.try_wait()?.is_some() {
                return Err(std::io::Error::other(format!(
                    "{program} exited at start; is it installed (make venv)?"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        peer.port = port;
        Ok(peer)
    }

    pub fn scratch(&self) -> Option<&Path> {
        self.scratch.as_deref()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        drop(self.lifeline.take());
        let _ = self.shell.wait();
        if let Some(dir) = &self.scratch {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Radicale with htpasswd (plain) users and owner-only rights: real multi-user CalDAV.
pub fn radicale(users: &[(&str, &str)]) -> std::io::Result<Peer> {
    let dir = scratch_dir("radicale")?;
    let port = free_port()?;
    let htpasswd: String = users.iter().map(|(u, p)| format!("{u}:{p}\n")).collect();
    std::fs::write(dir.join("users"), htpasswd)?;
    let config = format!(
        "[server]\nhosts = 127.0.0.1:{port}\n\
         [auth]\ntype = htpasswd\nhtpasswd_filename = {users}\nhtpasswd_encryption = plain\ndelay = 0\n\
         [rights]\ntype = owner_only\n\
         [storage]\nfilesystem_folder = {storage}\n\
         [logging]\nlevel = warning\n",
        users = dir.join("users").display(),
        storage = dir.join("collections").display(),
    );
    std::fs::write(dir.join("config"), config)?;
    let args = vec![
        "--config".to_owned(),
        dir.join("config").display().to_string(),
    ];
    Peer::start(&venv_tool("radicale"), &args, &[], port, Some(dir))
}

/// Xandikos (no authentication on plain HTTP), with a default calendar for `/user/`.
pub fn xandikos() -> std::io::Result<Peer> {
    let dir = scratch_dir("xandikos")?;
    let port = free_port()?;
    let args = [
        "serve",
        "--defaults",
        "-d",
        &dir.join("data").display().to_string(),
        "-l",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "--state-dir",
        &dir.join("state").display().to_string(),
    ]
    .map(str::to_owned);
    Peer::start(&venv_tool("xandikos"), &args, &[], port, Some(dir))
}

/// oidc-provider (infra/oidc-provider, after `npm ci`): a real OAuth server with PKCE required
/// and refresh-token rotation; client `calsync` / `calsync-secret`.
pub fn oidc_provider(redirect_uri: &str, access_token_ttl: u32) -> std::io::Result<Peer> {
    let port = free_port()?;
    let server = concat!(env!("CARGO_MANIFEST_DIR"), "/../oidc-provider/server.mjs");
    if !Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../oidc-provider/node_modules"
    ))
    .exists()
    {
        return Err(std::io::Error::other(
            "infra/oidc-provider/node_modules missing: run `make test` (npm ci)",
        ));
    }
    let env = [
        ("PORT", port.to_string()),
        ("REDIRECT_URI", redirect_uri.to_owned()),
        ("ACCESS_TOKEN_TTL", access_token_ttl.to_string()),
    ];
    Peer::start("node", &[server.to_owned()], &env, port, None)
}
