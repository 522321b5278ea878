//! Emulators of Google's and Microsoft's OAuth 2.0, calendar-list and event APIs, in memory, on
//! loopback.
//!
//! Everything is under one base URL (`http://127.0.0.1:PORT`):
//!
//! | prefix | emulates |
//! |---|---|
//! | `/google/o/oauth2/v2/auth`, `/google/token`, `/google/revoke` | Google OAuth 2.0 (code + PKCE S256) |
//! | `/google/calendar/v3/users/me/calendarList` | Calendar API v3 `calendarList.list` |
//! | `/google/calendar/v3/calendars/{calendarId}/events[/{eventId}]` | Calendar API v3 `events` |
//! | `/microsoft/{tenant}/oauth2/v2.0/{authorize,token}` | Microsoft identity platform v2.0 |
//! | `/microsoft/v1.0/me`, `/microsoft/v1.0/me/calendars` | Microsoft Graph v1.0 |
//! | `/microsoft/v1.0/me[/calendars/{id}]/calendarView/delta`, `.../events[/{id}]` | Graph events |
//! | `/google/calendar/v3/calendars/{calendarId}/events/watch`, `/google/calendar/v3/channels/stop` | Calendar API push notification channels |
//! | `/microsoft/v1.0/subscriptions[/{id}]` | Graph change-notification subscriptions (webhooks) |
//! | `/admin/{reset,accounts,settings,faults,stats,push}`, `/admin/{google,microsoft}/calendars/...` | control plane for tests |
//!
//! Configured test users consent automatically; any `client_id` is accepted with any non-empty
//! `client_secret` (form field or HTTP Basic).

mod admin;
mod events;
mod google;
mod google_events;
mod graph_events;
mod http;
mod microsoft;
mod push;
mod recurrence;
mod state;
mod tz;

use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::json;

use crate::http::{Req, Resp};
use crate::state::State;

/// Request bodies larger than this are refused (the real token endpoints take a few hundred bytes).
const MAX_BODY: usize = 1024 * 1024;

/// A running emulator.
#[derive(Clone, Debug)]
pub struct EmulatorHandle {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub base_url: String,
}

/// Starts the emulator on 127.0.0.1 on a free port, on its own thread with its own tokio runtime
/// (the caller's runtime may be short-lived); it lives until the process exits. The port accepts
/// connections when this returns.
pub fn spawn() -> std::io::Result<EmulatorHandle> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    listener.set_nonblocking(true)?;
    let base_url = format!("http://{}", listener.local_addr()?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("provider-emulator".into())
        .spawn(move || {
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => {
                        if let Err(e) = serve(listener).await {
                            eprintln!("provider emulator stopped: {e}");
                        }
                    }
                    Err(e) => eprintln!("provider emulator could not start: {e}"),
                }
            })
        })?;
    Ok(EmulatorHandle { base_url })
}

/// Serves the emulator on `listener` until accepting fails for good. Each call has its own state.
pub async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    // Push deliveries go to loopback addresses only: never through a proxy, never redirected.
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(std::io::Error::other)?;
    let emulator = Arc::new(Emulator {
        base_url: format!("http://{}", listener.local_addr()?),
        state: Mutex::new(State::new()),
        client,
        workers: push::Workers::default(),
    });
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of file descriptors and the like: wait, then go on serving.
            Err(e) if is_transient(&e) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let emulator = emulator.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let emulator = emulator.clone();
                async move { Ok::<_, Infallible>(emulator.handle(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock | TimedOut
    ) || e
        .raw_os_error()
        .is_some_and(|code| code == 23 || code == 24) // ENFILE, EMFILE
}

pub(crate) struct Emulator {
    pub base_url: String,
    state: Mutex<State>,
    /// Sends push notifications and Graph's validation requests.
    pub client: reqwest::Client,
    /// Push delivery queues, one per channel or subscription.
    pub workers: push::Workers,
}

impl Emulator {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn handle(self: &Arc<Self>, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let resp = self.answer(req).await;
        // Whatever the request changed is notified once it is answered (the answer is built).
        push::dispatch(self);
        resp
    }

    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let body = match Limited::new(body, MAX_BODY).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return http::json(413, &json!({ "error": "request body too large" })),
        };
        let mut req = Req::new(parts.method, &parts.uri, parts.headers, body);
        if req.path == "/admin" || req.path.starts_with("/admin/") {
            return admin::handle(self, &req);
        }
        let fault = {
            let mut st = self.lock();
            *st.stats.requests.entry(req.path.clone()).or_default() += 1;
            *st.stats
                .requests_by_method
                .entry(format!("{} {}", req.method, req.path))
                .or_default() += 1;
            st.take_fault(req.method.as_str(), &req.path)
        };
        if let Some(fault) = fault {
            if fault.delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(fault.delay_ms)).await;
            }
            if let Some(resp) = admin::fault_response(&fault, &req) {
                return resp;
            }
            req.malformed_item = fault.malformed_item;
        }
        // Graph subscriptions answer after a validation handshake: the one asynchronous route.
        if let Some(resp) = push::graph_route(self, &req).await {
            return resp;
        }
        self.route(&req)
    }

    fn route(&self, req: &Req) -> Resp {
        if let Some(resp) = google::route(self, req) {
            return resp;
        }
        if let Some(resp) = microsoft::route(self, req) {
            return resp;
        }
        http::json(
            404,
            &json!({ "error": format!("the provider emulator has no route {} {}", req.method, req.path) }),
        )
    }
}
