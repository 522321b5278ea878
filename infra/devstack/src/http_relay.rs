//! Relaying one HTTP request to an upstream and its answer back (the local gateway, the fault
//! proxy): hop-by-hop headers are dropped, everything else passes through.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::Response;

/// Command-line option `name`'s value (`--name value`), for the devstack binaries.
pub fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// Sends `method url` with `headers` and `body`; the upstream's answer as a hyper response.
pub async fn relay(
    client: &reqwest::Client,
    method: http::Method,
    url: &str,
    headers: &http::HeaderMap,
    body: Bytes,
) -> reqwest::Result<Response<Full<Bytes>>> {
    let mut forward = client.request(method, url).body(body);
    for (name, value) in headers {
        if name != "host" && name != "content-length" {
            forward = forward.header(name, value);
        }
    }
    let upstream = forward.send().await?;
    let status = upstream.status();
    let upstream_headers = upstream.headers().clone();
    let bytes = upstream.bytes().await?;
    let mut response = Response::new(Full::new(bytes));
    *response.status_mut() = status;
    for (name, value) in &upstream_headers {
        if name != "content-length" && name != "transfer-encoding" {
            response.headers_mut().append(name, value.clone());
        }
    }
    Ok(response)
}
