//! Starts the AWS emulator (moto server) on a free loopback port, for tests and benchmarks.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// A running moto server. It stops when this value is dropped, and also when this process exits
/// however it exits: a shell keeps it and kills it when our end of its stdin closes.
pub struct Emulator {
    pub endpoint: String,
    shell: Child,
    lifeline: Option<ChildStdin>,
}

/// The moto_server executable: `$MOTO_SERVER` (the Makefile sets it), else the one on PATH.
fn moto_binary() -> String {
    std::env::var("MOTO_SERVER").unwrap_or_else(|_| "moto_server".into())
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Emulator {
    pub fn start() -> std::io::Result<Self> {
        let port = free_port()?;
        let script = r#""$0" -H 127.0.0.1 -p "$1" >/dev/null 2>&1 & pid=$!; echo started; cat >/dev/null; kill $pid; wait $pid"#;
        let mut shell = Command::new("sh")
            .args(["-c", script, &moto_binary(), &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let lifeline = shell.stdin.take().expect("piped stdin");
        let mut line = String::new();
        BufReader::new(shell.stdout.take().expect("piped stdout")).read_line(&mut line)?;
        let endpoint = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
                if stream.write_all(b"GET /moto-api/ HTTP/1.0\r\n\r\n").is_ok() {
                    break;
                }
            }
            if let Some(status) = shell.try_wait()? {
                return Err(std::io::Error::other(format!(
                    "moto_server ({}) exited with {status}; run `make venv` or set MOTO_SERVER",
                    moto_binary()
                )));
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other(
                    "moto_server did not start within 30 s",
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Self {
            endpoint,
            shell,
            lifeline: Some(lifeline),
        })
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // Closing stdin makes the shell kill moto; wait so no zombie is left.
        drop(self.lifeline.take());
        let _ = self.shell.wait();
    }
}
