//! A fault-injecting HTTP proxy for peers that cannot fail on demand (Radicale): forwards every
//! request to the upstream, except those a queued fault answers first (a status with an optional
//! Retry-After, or a delay). Runs on its own thread and runtime until the process exits.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

#[derive(Clone, Debug)]
pub struct Fault {
    pub status: u16,
    pub retry_after: Option<u64>,
    /// Wait this long before answering (with the fault's status, or by forwarding when 0).
    pub delay: Duration,
}

/// A standing refusal: every request with this method whose body contains the marker gets the
/// answer (e.g. a server that does not support a REPORT).
#[derive(Clone, Debug)]
pub struct Refusal {
    pub method: String,
    pub body_contains: String,
    pub status: u16,
    pub body: String,
}

#[derive(Clone)]
pub struct FaultProxy {
    pub base_url: String,
    faults: Arc<Mutex<VecDeque<Fault>>>,
    refusals: Arc<Mutex<Vec<Refusal>>>,
    served: Arc<Mutex<u64>>,
}

impl FaultProxy {
    pub fn start(upstream: &str) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let proxy = Self {
            base_url: format!("http://127.0.0.1:{port}"),
            faults: Arc::default(),
            refusals: Arc::default(),
            served: Arc::default(),
        };
        let upstream = upstream.trim_end_matches('/').to_owned();
        let state = proxy.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let client = reqwest::Client::builder()
                    .no_proxy()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .expect("client");
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let (state, client, upstream) =
                        (state.clone(), client.clone(), upstream.clone());
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let (state, client, upstream) =
                                (state.clone(), client.clone(), upstream.clone());
                            async move {
                                Ok::<_, Infallible>(state.handle(req, &client, &upstream).await)
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        });
        Ok(proxy)
    }

    /// The next request gets `fault` instead of (or, with status 0, after a delay before) the
    /// upstream's answer.
    pub fn inject(&self, fault: Fault) {
        self.faults.lock().expect("faults").push_back(fault);
    }

    /// From now on, answer matching requests with the refusal.
    pub fn refuse(&self, refusal: Refusal) {
        self.refusals.lock().expect("refusals").push(refusal);
    }

    pub fn faults_served(&self) -> u64 {
        *self.served.lock().expect("served")
    }

    async fn handle(
        &self,
        req: Request<Incoming>,
        client: &reqwest::Client,
        upstream: &str,
    ) -> Response<Full<Bytes>> {
        let fault = self.faults.lock().expect("faults").pop_front();
        if let Some(fault) = fault {
            *self.served.lock().expect("served") += 1;
            tokio::time::sleep(fault.delay).await;
            if fault.status != 0 {
                let mut response = Response::new(Full::new(Bytes::from_static(b"injected fault")));
                *response.status_mut() = hyper::StatusCode::from_u16(fault.status)
                    .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
                if let Some(after) = fault.retry_after {
                    response.headers_mut().insert("retry-after", after.into());
                }
                return response;
            }
        }
        let path = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let refusal = self
            .refusals
            .lock()
            .expect("refusals")
            .iter()
            .find(|r| {
                r.method == parts.method.as_str()
                    && String::from_utf8_lossy(&body).contains(&r.body_contains)
            })
            .cloned();
        if let Some(refusal) = refusal {
            let mut response = Response::new(Full::new(Bytes::from(refusal.body)));
            *response.status_mut() =
                hyper::StatusCode::from_u16(refusal.status).unwrap_or(hyper::StatusCode::FORBIDDEN);
            return response;
        }
        match crate::http_relay::relay(
            client,
            parts.method,
            &format!("{upstream}{path}"),
            &parts.headers,
            body,
        )
        .await
        {
            Ok(response) => response,
            Err(_) => {
                let mut response =
                    Response::new(Full::new(Bytes::from_static(b"upstream unreachable")));
                *response.status_mut() = hyper::StatusCode::BAD_GATEWAY;
                response
            }
        }
    }
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FaultProxy({})", self.base_url)
    }
}
