//! Provider secrets (OAuth tokens, CalDAV app passwords) under KMS envelope encryption.
//!
//! A data key comes from KMS `GenerateDataKey` and encrypts locally with AES-256-GCM; the KMS-
//! encrypted data key is stored beside each ciphertext. Each ciphertext's AAD names the user, the
//! account and the field, so a ciphertext copied to another row or field does not decrypt. Plain
//! data keys are cached per container: decrypting N secrets costs one KMS call per data key, and one
//! data key serves encryptions for up to an hour.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};

const FORMAT: &str = "v1";
/// How long one data key encrypts before a fresh one is generated.
const DATA_KEY_LIFETIME: Duration = Duration::from_secs(3600);
/// Decrypted data keys kept per container.
const CACHE_CAPACITY: usize = 256;

/// A secret in memory: never printed, never serialised.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// A sealed secret as stored: `v1.<encrypted data key>.<nonce>.<ciphertext>`, base64url.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sealed(String);

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealed(..)")
    }
}

/// What a secret belongs to; becomes the AES-GCM associated data.
#[derive(Clone, Copy, Debug)]
pub struct SecretContext<'a> {
    pub user_id: &'a str,
    pub account_id: &'a str,
    pub field: &'a str,
}

impl SecretContext<'_> {
    fn aad(&self) -> Vec<u8> {
        format!(
            "calsync|user={}|account={}|field={}",
            self.user_id, self.account_id, self.field
        )
        .into_bytes()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("KMS: {0}")]
    Kms(String),
    /// Wrong context, tampered or foreign ciphertext. Deliberately says nothing more.
    #[error("the secret does not decrypt in this context")]
    Undecryptable,
}

struct CurrentKey {
    plain: [u8; 32],
    encrypted: Vec<u8>,
    created: Instant,
}

/// Seals and opens secrets with one KMS key. One per container; cheap to share behind an `Arc`.
pub struct TokenCipher {
    kms: aws_sdk_kms::Client,
    key_id: String,
    current: Mutex<Option<CurrentKey>>,
    opened: Mutex<HashMap<Vec<u8>, [u8; 32]>>,
    kms_calls: AtomicU64,
}

/// The KMS encryption context of every data key: which service and purpose it serves.
fn kms_context() -> [(&'static str, &'static str); 2] {
    [("service", "calsync"), ("purpose", "provider-secrets")]
}

impl TokenCipher {
    pub fn new(kms: aws_sdk_kms::Client, key_id: impl Into<String>) -> Self {
        Self {
            kms,
            key_id: key_id.into(),
            current: Mutex::new(None),
            opened: Mutex::new(HashMap::new()),
            kms_calls: AtomicU64::new(0),
        }
    }

    /// KMS requests made so far (for benchmarks and tests).
    pub fn kms_calls(&self) -> u64 {
        self.kms_calls.load(Ordering::Relaxed)
    }

    async fn data_key(&self) -> Result<([u8; 32], Vec<u8>), CryptoError> {
        if let Some(key) = self.current.lock().expect("key lock").as_ref() {
            if key.created.elapsed() < DATA_KEY_LIFETIME {
                return Ok((key.plain, key.encrypted.clone()));
            }
        }
        self.kms_calls.fetch_add(1, Ordering::Relaxed);
        let mut request = self
            .kms
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256);
        for (k, v) in kms_context() {
            request = request.encryption_context(k, v);
        }
        let out = request.send().await.map_err(|e| {
            CryptoError::Kms(aws_sdk_kms::error::DisplayErrorContext(e).to_string())
        })?;
        let plain: [u8; 32] = out
            .plaintext
            .as_ref()
            .and_then(|b| b.as_ref().try_into().ok())
            .ok_or_else(|| CryptoError::Kms("GenerateDataKey returned no 32-byte key".into()))?;
        let encrypted = out
            .ciphertext_blob
            .map(Blob::into_inner)
            .ok_or_else(|| CryptoError::Kms("GenerateDataKey returned no ciphertext".into()))?;
        self.remember(&encrypted, plain);
        *self.current.lock().expect("key lock") = Some(CurrentKey {
            plain,
            encrypted: encrypted.clone(),
            created: Instant::now(),
        });
        Ok((plain, encrypted))
    }

    fn remember(&self, encrypted: &[u8], plain: [u8; 32]) {
        let mut opened = self.opened.lock().expect("cache lock");
        if opened.len() >= CACHE_CAPACITY {
            opened.clear();
        }
        opened.insert(encrypted.to_vec(), plain);
    }

    async fn open_data_key(&self, encrypted: &[u8]) -> Result<[u8; 32], CryptoError> {
        if let Some(plain) = self.opened.lock().expect("cache lock").get(encrypted) {
            return Ok(*plain);
        }
        self.kms_calls.fetch_add(1, Ordering::Relaxed);
        let mut request = self
            .kms
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(encrypted));
        for (k, v) in kms_context() {
            request = request.encryption_context(k, v);
        }
        let out = request
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(s) if s.is_invalid_ciphertext_exception() => CryptoError::Undecryptable,
                _ => CryptoError::Kms(aws_sdk_kms::error::DisplayErrorContext(e).to_string()),
            })?;
        let plain: [u8; 32] = out
            .plaintext
            .as_ref()
            .and_then(|b| b.as_ref().try_into().ok())
            .ok_or(CryptoError::Undecryptable)?;
        self.remember(encrypted, plain);
        Ok(plain)
    }

    pub async fn seal(
        &self,
        secret: &Secret,
        context: SecretContext<'_>,
    ) -> Result<Sealed, CryptoError> {
        let (plain, encrypted) = self.data_key().await?;
        let mut nonce = [0u8; 12];
        OsRng.fill_bytes(&mut nonce);
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&plain));
        let aad = context.aad();
        let ciphertext = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret.expose().as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Kms("AES-GCM encryption failed".into()))?;
        Ok(Sealed(format!(
            "{FORMAT}.{}.{}.{}",
            URL_SAFE_NO_PAD.encode(encrypted),
            URL_SAFE_NO_PAD.encode(nonce),
            URL_SAFE_NO_PAD.encode(ciphertext)
        )))
    }

    pub async fn open(
        &self,
        sealed: &Sealed,
        context: SecretContext<'_>,
    ) -> Result<Secret, CryptoError> {
        let mut parts = sealed.0.split('.');
        let (Some(FORMAT), Some(edk), Some(nonce), Some(ct), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(CryptoError::Undecryptable);
        };
        let decode = |s: &str| {
            URL_SAFE_NO_PAD
                .decode(s)
                .map_err(|_| CryptoError::Undecryptable)
        };
        let (edk, nonce, ct) = (decode(edk)?, decode(nonce)?, decode(ct)?);
        if nonce.len() != 12 {
            return Err(CryptoError::Undecryptable);
        }
        let plain_key = self.open_data_key(&edk).await?;
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&plain_key));
        let aad = context.aad();
        let plain = cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ct,
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Undecryptable)?;
        String::from_utf8(plain)
            .map(Secret)
            .map_err(|_| CryptoError::Undecryptable)
    }
}

/// Compares two secrets (or their hashes) in time that depends on their length only.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
