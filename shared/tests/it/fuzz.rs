//! Schemathesis against the API over HTTP (issue 10, item 7): every operation of the OpenAPI
//! document, with every check on and a bounded number of examples each, must answer no 5xx and
//! nothing the document does not describe.

use std::process::Command;

use crate::http_api::serve_http;
use crate::support::{app_on_own_emulator, connect, register};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_response_outside_the_document() {
    let provider = calsync_provider_emulator::spawn().expect("provider emulator");
    // Its own AWS emulator: its 1,600 requests in seconds neither see nor disturb the other
    // tests' data (moto serves concurrent writers to one table with races of its own).
    let outbox = std::env::temp_dir().join(format!("calsync-fuzz-outbox-{}", std::process::id()));
    let mut config = crate::oauth_flow::oauth_config(&provider);
    config.push(("MAIL_OUTBOX_DIR", outbox.display().to_string()));
    let (_aws, app) = app_on_own_emulator("fuzz", &config).await;
    let user = register(&app, "fuzz").await;
    // A calendar, so the links from its listing lead the fuzzer into event writes.
    let calendar = connect(&app, &user, "fuzz", true).await;
    let base = serve_http(app.clone()).await;
    let report =
        std::env::temp_dir().join(format!("calsync-schemathesis-{}", calsync::ids::new_id()));
    let schemathesis = calsync_devstack::peer::venv_tool("schemathesis");
    // Fixed for make test, so a red run reproduces; set them to explore further.
    let seed = std::env::var("CALSYNC_FUZZ_SEED").unwrap_or_else(|_| "20261203".into());
    let examples = std::env::var("CALSYNC_FUZZ_EXAMPLES").unwrap_or_else(|_| "25".into());
    let run = tokio::task::spawn_blocking(move || {
        Command::new(&schemathesis)
            .arg("--config-file")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../infra/schemathesis.toml"
            ))
            .arg("run")
            .arg(format!("{base}/v1/openapi.json"))
            .args(["--checks", "all"])
            .args(["--max-examples", &examples])
            .args(["--seed", &seed])
            // One worker: with two threads, CPython 3.11's `ast` (which hypothesis uses to describe
            // its filters) failed once with "AST constructor recursion depth mismatch".
            .args(["--workers", "1"])
            .args(["--header", &format!("Authorization: Bearer {}", user.token)])
            // It dials the CalDAV server named in its body: fuzzed, that would be any host on
            // the internet. Its hand-written tests cover it (connect.rs).
            .args(["--exclude-operation-id", "ConnectApple"])
            // It would end the session every other request runs with; accounts.rs covers it.
            .args(["--exclude-operation-id", "Logout"])
            // It would remove the calendar the rest of the run writes events to (schemathesis
            // reuses ids from answers); calendars.rs covers it.
            .args(["--exclude-operation-id", "DeleteCalendar"])
            .args(["--report", "junit", "--report-dir"])
            .arg(&report)
            .env(
                "SCHEMATHESIS_HOOKS",
                concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../infra/schemathesis_hooks.py"
                ),
            )
            .env("NO_COLOR", "1")
            .output()
    })
    .await
    .unwrap()
    .expect("schemathesis (make test installs it into the venv)");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "schemathesis found problems:\n{stdout}\n{stderr}"
    );
    eprintln!(
        "{}",
        stdout
            .lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Past "unknown calendar" (links and ids from answers) and "end before start" (the hooks):
    // it created, changed and deleted events.
    let (created, _) = app
        .store
        .calendar_events(&calendar.id, None, 10_000)
        .await
        .unwrap();
    assert!(!created.is_empty(), "the fuzzer created no event");
    eprintln!("the fuzzer left {} events in its calendar", created.len());
}
