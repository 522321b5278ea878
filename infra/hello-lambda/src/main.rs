//! The smallest useful `lambda_http` function. `make bench` measures every calsync function's init
//! and package size against this one, built with the same profile and crate versions.

use lambda_http::{service_fn, Body, Error, Request, Response};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|_: Request| async {
        Ok::<_, Error>(Response::new(Body::from("hello")))
    }))
    .await
}
