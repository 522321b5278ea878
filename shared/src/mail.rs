//! Mail to users (password resets): Amazon SES in AWS; in the dev stack and the tests, a local
//! outbox directory where each message is one `.eml` file a developer can open.

use std::path::PathBuf;

/// One plain-text message.
pub struct Message {
    pub to: String,
    pub subject: String,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
#[error("mail: {0}")]
pub struct MailError(String);

/// Where mail goes.
pub enum Mailer {
    /// `MAIL_OUTBOX_DIR`: files, never the network.
    Outbox(PathBuf),
    /// `MAIL_FROM`: SES v2 `SendEmail` from that verified address.
    Ses {
        client: aws_sdk_sesv2::Client,
        from: String,
    },
}

impl Mailer {
    pub async fn send(&self, message: &Message) -> Result<(), MailError> {
        match self {
            Self::Outbox(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| MailError(e.to_string()))?;
                let name = format!("{}.eml", crate::ids::new_id());
                let text = format!(
                    "To: {}\r\nSubject: {}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n",
                    message.to, message.subject, message.text
                );
                std::fs::write(dir.join(name), text).map_err(|e| MailError(e.to_string()))
            }
            Self::Ses { client, from } => {
                use aws_sdk_sesv2::error::ProvideErrorMetadata;
                use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent};
                let content = |text: &str| {
                    Content::builder()
                        .data(text)
                        .charset("UTF-8")
                        .build()
                        .map_err(|e| MailError(e.to_string()))
                };
                let body = Body::builder().text(content(&message.text)?).build();
                let email = aws_sdk_sesv2::types::Message::builder()
                    .subject(content(&message.subject)?)
                    .body(body)
                    .build();
                client
                    .send_email()
                    .from_email_address(from)
                    .destination(Destination::builder().to_addresses(&message.to).build())
                    .content(EmailContent::builder().simple(email).build())
                    .send()
                    .await
                    .map(|_| ())
                    // The SDK's error can hold the request; the kind is enough.
                    .map_err(|e| {
                        MailError(format!(
                            "SES SendEmail failed: {}",
                            e.code().unwrap_or("transport")
                        ))
                    })
            }
        }
    }
}
