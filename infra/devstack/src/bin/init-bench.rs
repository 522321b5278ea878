//! `make bench` (init part): how long each function's release bootstrap takes from spawn to its
//! first `GET /runtime/invocation/next` (what Lambda bills as init), against a hello-world
//! `lambda_http` built the same way, and how big each package is.
//!
//! A fake Lambda Runtime API on loopback answers nothing: the first request is the measurement,
//! then the process is killed. Rounds alternate hello-world and the function, so a machine that
//! slows down mid-run slows both. Prints a Markdown table for docs/benchmarks.md and exits 1
//! when a budget is missed.
//!
//! usage: init-bench --lambda-dir DIR --shipped-dir DIR --hello NAME [--rounds N] FUNCTION...
//! (--lambda-dir holds cargo-lambda's build for this machine, DIR/<name>/bootstrap and
//! bootstrap.zip, which is timed; --shipped-dir the arm64 packages `make build` makes, whose
//! zips are held to the budget: this machine cannot run them.)

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Budgets from the issue "Lean functions": every zip at most 3 MB, init at most 2x hello-world.
const ZIP_BUDGET_BYTES: u64 = 3_000_000;
const INIT_BUDGET_RATIO: f64 = 2.0;

/// What the functions read at init. Nothing here is contacted: every endpoint is a closed
/// loopback port, so a function that calls out during init shows up as slow, not as traffic.
const ENV: &[(&str, &str)] = &[
    ("AWS_LAMBDA_FUNCTION_NAME", "init-bench"),
    ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
    ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
    ("AWS_LAMBDA_LOG_STREAM_NAME", "init-bench"),
    ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/init-bench"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_ACCESS_KEY_ID", "init-bench"),
    ("AWS_SECRET_ACCESS_KEY", "init-bench"),
    ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
    ("USERS_TABLE", "users"),
    ("CONNECTIONS_TABLE", "connections"),
    ("EVENTS_TABLE", "events"),
    ("AUDIT_TABLE", "audit"),
    ("CHANGES_TABLE", "changes"),
    ("TOKEN_KEY_ID", "alias/calsync-tokens"),
    ("SYNC_QUEUE_URL", "http://127.0.0.1:9/000000000000/sync"),
    ("OAUTH_CALLBACK_BASE", "http://127.0.0.1:9"),
    ("GOOGLE_CLIENT_ID", "bench"),
    ("GOOGLE_CLIENT_SECRET", "bench"),
    ("MICROSOFT_CLIENT_ID", "bench"),
    ("MICROSOFT_CLIENT_SECRET", "bench"),
    ("RUST_LOG", "warn"),
];

struct Args {
    lambda_dir: PathBuf,
    shipped_dir: PathBuf,
    hello: String,
    rounds: usize,
    functions: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut lambda_dir, mut shipped_dir, mut hello) = (None, None, None);
    let (mut rounds, mut functions) = (30, Vec::new());
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--lambda-dir" => lambda_dir = Some(PathBuf::from(value("--lambda-dir")?)),
            "--shipped-dir" => shipped_dir = Some(PathBuf::from(value("--shipped-dir")?)),
            "--hello" => hello = Some(value("--hello")?),
            "--rounds" => {
                rounds = value("--rounds")?
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or("--rounds must be a positive number")?
            }
            name if !name.starts_with('-') => functions.push(name.to_owned()),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(Args {
        lambda_dir: lambda_dir.ok_or("--lambda-dir is required")?,
        shipped_dir: shipped_dir.ok_or("--shipped-dir is required")?,
        hello: hello.ok_or("--hello is required")?,
        rounds,
        functions,
    })
}

/// One measured start: time to the first `/next`, and the peak resident memory at that moment.
struct Start {
    init: Duration,
    peak_rss_kib: u64,
}

fn start_once(bootstrap: &Path, listener: &TcpListener) -> Result<Start, String> {
    let api = listener.local_addr().map_err(|e| e.to_string())?;
    let mut command = Command::new(bootstrap);
    command
        .env_clear()
        .envs(ENV.iter().copied())
        .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let began = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| format!("{}: {e}", bootstrap.display()))?;
    let result = wait_for_next(&mut child, listener, began);
    let _ = child.kill();
    let _ = child.wait();
    result.map_err(|e| {
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        format!("{}: {e}; stderr: {}", bootstrap.display(), stderr.trim())
    })
}

fn wait_for_next(
    child: &mut Child,
    listener: &TcpListener,
    began: Instant,
) -> Result<Start, String> {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                let init = began.elapsed();
                let peak_rss_kib = peak_rss_kib(child.id());
                check_is_next(stream)?;
                return Ok(Start { init, peak_rss_kib });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.to_string()),
        }
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("exited with {status} before asking for an event"));
        }
        if began.elapsed() > Duration::from_secs(10) {
            return Err("no request to the Runtime API within 10 s".into());
        }
        std::thread::sleep(Duration::from_micros(20));
    }
}

fn check_is_next(mut stream: TcpStream) -> Result<(), String> {
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    let mut head = [0u8; 256];
    let n = stream.read(&mut head).map_err(|e| e.to_string())?;
    let line = String::from_utf8_lossy(&head[..n]);
    if line.starts_with("GET /2018-06-01/runtime/invocation/next") {
        Ok(())
    } else {
        Err(format!(
            "first request was not /next: {:?}",
            line.lines().next()
        ))
    }
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 0 {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

/// Files under /etc/ssl the bootstrap opens before its first `/next`, by strace (None without it).
fn certificate_files_opened(bootstrap: &Path, listener: &TcpListener) -> Option<usize> {
    let api = listener.local_addr().ok()?;
    let mut child = Command::new("strace")
        .args(["-f", "-e", "trace=open,openat", "--"])
        .arg(bootstrap)
        .env_clear()
        .envs(ENV.iter().copied())
        .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let result = wait_for_next(&mut child, listener, Instant::now());
    let _ = child.kill();
    let output = child.wait_with_output().ok()?;
    result.ok()?;
    let trace = String::from_utf8_lossy(&output.stderr);
    Some(
        trace
            .lines()
            .filter(|l| l.contains("\"/etc/ssl") || l.contains("\"/usr/lib/ssl"))
            .count(),
    )
}

fn file_size(path: &Path) -> Result<u64, String> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn mb(bytes: u64) -> String {
    format!("{:.2}", bytes as f64 / 1_000_000.0)
}

fn run(args: Args) -> Result<bool, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let bootstrap = |name: &str| args.lambda_dir.join(name).join("bootstrap");
    let zip = |name: &str| args.lambda_dir.join(name).join("bootstrap.zip");
    let hello = bootstrap(&args.hello);
    let hello_zip = file_size(&zip(&args.hello))?;
    for _ in 0..3 {
        start_once(&hello, &listener)?; // warm the page cache
    }

    println!(
        "| function | arm64 zip MB (shipped) | x86_64 binary MB | x86_64 zip MB | init ms (median of {}) | hello-world init ms | ratio | peak RSS at init MiB | certificate files read |",
        args.rounds
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} (hello-world) | | {} | {} | | | | | |",
        args.hello,
        mb(file_size(&hello)?),
        mb(hello_zip)
    );
    let mut within_budget = true;
    for function in &args.functions {
        let path = bootstrap(function);
        let zip_size = file_size(&zip(function))?;
        let shipped = file_size(&args.shipped_dir.join(function).join("bootstrap.zip"))?;
        start_once(&path, &listener)?;
        let (mut inits, mut hello_inits, mut rss) = (Vec::new(), Vec::new(), 0);
        for _ in 0..args.rounds {
            hello_inits.push(start_once(&hello, &listener)?.init.as_secs_f64() * 1e3);
            let start = start_once(&path, &listener)?;
            inits.push(start.init.as_secs_f64() * 1e3);
            rss = rss.max(start.peak_rss_kib);
        }
        let (init, hello_init) = (median(inits), median(hello_inits));
        let ratio = init / hello_init;
        let certificates = certificate_files_opened(&path, &listener)
            .map_or_else(|| "(no strace)".to_owned(), |n| n.to_string());
        let over = shipped > ZIP_BUDGET_BYTES || ratio > INIT_BUDGET_RATIO;
        within_budget &= !over;
        println!(
            "| {function}{} | {} | {} | {} | {init:.2} | {hello_init:.2} | {ratio:.2} | {:.1} | {certificates} |",
            if over { " **over budget**" } else { "" },
            mb(shipped),
            mb(file_size(&path)?),
            mb(zip_size),
            rss as f64 / 1024.0,
        );
    }
    println!(
        "\nBudgets: arm64 zip <= {} MB, init <= {INIT_BUDGET_RATIO}x hello-world.",
        mb(ZIP_BUDGET_BYTES)
    );
    Ok(within_budget)
}

fn main() {
    let outcome = parse_args().and_then(run);
    match outcome {
        Ok(true) => {}
        Ok(false) => {
            eprintln!("init-bench: a function is over budget");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("init-bench: {e}");
            std::process::exit(2);
        }
    }
}
