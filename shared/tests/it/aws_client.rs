//! The SDK's HTTP client (`calsync::aws`), on what the emulator tests do not reach.

use std::time::Duration;

use aws_sdk_dynamodb::config::StalledStreamProtectionConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An answer slower than the stalled-stream grace period is still an answer: the request body
/// was sent, so the upload is not stalled. (A body handed over without being polled looked
/// stalled: a 150-override edit failed with a 500 once moto took 20 s under CI load.)
#[tokio::test]
async fn an_answer_slower_than_the_stall_grace_period_is_not_a_stalled_upload() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = vec![0u8; 16 * 1024];
            let _ = stream.read(&mut buf).await;
            tokio::time::sleep(Duration::from_secs(3)).await;
            let body = r#"{"TableNames":[]}"#;
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        }
    });
    // The functions' configuration, with the grace period cut from 20 s to 1 s.
    let sdk = calsync::aws::emulator_sdk_config(&endpoint)
        .to_builder()
        .stalled_stream_protection(
            StalledStreamProtectionConfig::enabled()
                .grace_period(Duration::from_secs(1))
                .build(),
        )
        .build();
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let tables = dynamodb
        .list_tables()
        .send()
        .await
        .map_err(aws_sdk_dynamodb::error::DisplayErrorContext)
        .expect("a slow answer");
    assert!(tables.table_names().is_empty());
}
