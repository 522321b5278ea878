//! `provider-emulator --listen 127.0.0.1:PORT`: Google's and Microsoft's OAuth and calendar-list
//! APIs, in memory, on loopback. Prints `provider emulator: http://ADDR` once it accepts requests.

use std::io::Write as _;
use std::net::SocketAddr;

fn usage() -> ! {
    eprintln!("usage: provider-emulator --listen 127.0.0.1:PORT");
    std::process::exit(2);
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut listen = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--listen" => listen = Some(it.next().unwrap_or_else(|| usage()).clone()),
            "-h" | "--help" => usage(),
            other => {
                if let Some(value) = other.strip_prefix("--listen=") {
                    listen = Some(value.to_owned());
                } else {
                    eprintln!("provider-emulator: unknown argument {other}");
                    usage();
                }
            }
        }
    }
    let listen = listen.unwrap_or_else(|| "127.0.0.1:0".into());
    let addr: SocketAddr = match listen.parse() {
        Ok(addr) => addr,
        Err(_) => {
            eprintln!("provider-emulator: --listen wants IP:PORT, got {listen}");
            std::process::exit(2);
        }
    };
    if !addr.ip().is_loopback() {
        eprintln!("provider-emulator: refusing to listen on {addr}: loopback addresses only");
        std::process::exit(2);
    }
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("provider-emulator: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    let bound = listener.local_addr().unwrap_or(addr);
    println!("provider emulator: http://{bound}");
    let _ = std::io::stdout().flush();
    if let Err(e) = calsync_provider_emulator::serve(listener).await {
        eprintln!("provider-emulator: {e}");
        std::process::exit(1);
    }
}
