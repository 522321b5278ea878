//! OAuth 2.0 authorization code + PKCE, refresh and revocation, with the `oauth2` crate.

use chrono::{DateTime, Duration, Utc};
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope, TokenResponse, TokenUrl,
};

use super::ProviderError;
use crate::crypto::Secret;
use crate::model::Provider;

/// How to reach one OAuth provider. Endpoints are configurable so tests and `make dev` can point
/// them at local peers.
#[derive(Clone, Debug)]
pub struct OAuthSettings {
    pub provider: Provider,
    pub client_id: String,
    pub client_secret: Secret,
    pub auth_url: String,
    pub token_url: String,
    pub revoke_url: Option<String>,
    pub scopes: Vec<String>,
    /// Extra authorisation parameters (Google: access_type=offline, prompt=consent).
    pub extra_params: Vec<(String, String)>,
    /// Send the client secret in the form body rather than HTTP Basic.
    pub secret_in_body: bool,
    /// The calendar API base URL.
    pub api_base: String,
}

impl OAuthSettings {
    /// Settings for `provider` from `<PREFIX>_*` variables; `None` when no client id is set.
    pub fn from_lookup(
        provider: Provider,
        lookup: &impl Fn(&str) -> Option<String>,
    ) -> Option<Self> {
        let (prefix, auth, token, revoke, api, scopes, extra, in_body): (
            _,
            _,
            _,
            _,
            _,
            &[&str],
            &[(&str, &str)],
            _,
        ) = match provider {
            Provider::Google => (
                "GOOGLE",
                "https://accounts.google.com/o/oauth2/v2/auth",
                "https://oauth2.googleapis.com/token",
                Some("https://oauth2.googleapis.com/revoke"),
                "https://www.googleapis.com/calendar/v3",
                &[
                    "openid",
                    "email",
                    "https://www.googleapis.com/auth/calendar",
                ],
                &[("access_type", "offline"), ("prompt", "consent")],
                false,
            ),
            Provider::Microsoft => (
                "MICROSOFT",
                "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
                "https://login.microsoftonline.com/common/oauth2/v2.0/token",
                None,
                "https://graph.microsoft.com/v1.0",
                &[
                    "openid",
                    "email",
                    "offline_access",
                    "Calendars.ReadWrite",
                    "User.Read",
                ],
                &[("prompt", "select_account")],
                true,
            ),
            Provider::Apple => return None,
        };
        let var = |name: &str| lookup(&format!("{prefix}_{name}")).filter(|v| !v.is_empty());
        Some(Self {
            provider,
            client_id: var("CLIENT_ID")?,
            client_secret: Secret::new(var("CLIENT_SECRET").unwrap_or_default()),
            auth_url: var("AUTH_URL").unwrap_or_else(|| auth.into()),
            token_url: var("TOKEN_URL").unwrap_or_else(|| token.into()),
            revoke_url: var("REVOKE_URL").or_else(|| revoke.map(Into::into)),
            scopes: var("SCOPES")
                .map(|s| s.split_whitespace().map(Into::into).collect())
                .unwrap_or_else(|| scopes.iter().map(|s| (*s).into()).collect()),
            extra_params: extra
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            secret_in_body: in_body,
            api_base: var("API_BASE").unwrap_or_else(|| api.into()),
        })
    }
}

/// Tokens from a grant. The access token expires; the refresh token may rotate.
#[derive(Debug)]
pub struct TokenSet {
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A PKCE pair: the verifier stays with us, the challenge goes into the authorisation URL.
pub struct Pkce {
    pub verifier: String,
    challenge: PkceCodeChallenge,
}

impl Pkce {
    pub fn new() -> Self {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        Self {
            verifier: verifier.secret().clone(),
            challenge,
        }
    }

    /// The pair derived from a browser binding secret, so no verifier is ever stored: only the
    /// browser holding the binding can finish the exchange. The verifier is the unpadded
    /// base64url of a SHA-256 (43 characters, as RFC 7636 asks).
    pub fn derived_from(binding: &str) -> Self {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        use sha2::{Digest, Sha256};
        let digest = Sha256::new()
            .chain_update(b"calsync oauth pkce v1\0")
            .chain_update(binding.as_bytes())
            .finalize();
        let verifier = PkceCodeVerifier::new(URL_SAFE_NO_PAD.encode(digest));
        Self {
            challenge: PkceCodeChallenge::from_code_verifier_sha256(&verifier),
            verifier: verifier.secret().clone(),
        }
    }
}

impl Default for Pkce {
    fn default() -> Self {
        Self::new()
    }
}

type Client = oauth2::Client<
    oauth2::StandardErrorResponse<BasicErrorResponseType>,
    oauth2::basic::BasicTokenResponse,
    oauth2::basic::BasicTokenIntrospectionResponse,
    oauth2::StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

fn client(settings: &OAuthSettings, redirect_uri: Option<&str>) -> Result<Client, ProviderError> {
    let bad = |what: &str| ProviderError::Protocol(format!("invalid {what} URL in configuration"));
    let mut client = BasicClient::new(ClientId::new(settings.client_id.clone()))
        .set_client_secret(ClientSecret::new(
            settings.client_secret.expose().to_owned(),
        ))
        .set_auth_uri(AuthUrl::new(settings.auth_url.clone()).map_err(|_| bad("auth"))?)
        .set_token_uri(TokenUrl::new(settings.token_url.clone()).map_err(|_| bad("token"))?)
        .set_auth_type(if settings.secret_in_body {
            AuthType::RequestBody
        } else {
            AuthType::BasicAuth
        });
    if let Some(uri) = redirect_uri {
        client =
            client.set_redirect_uri(RedirectUrl::new(uri.to_owned()).map_err(|_| bad("redirect"))?);
    }
    Ok(client)
}

/// The URL to send the user to: carries the state and the PKCE S256 challenge.
pub fn authorization_url(
    settings: &OAuthSettings,
    redirect_uri: &str,
    state: &str,
    pkce: &Pkce,
) -> Result<String, ProviderError> {
    let client = client(settings, Some(redirect_uri))?;
    let state = state.to_owned();
    let mut request = client
        .authorize_url(move || CsrfToken::new(state))
        .add_scopes(settings.scopes.iter().cloned().map(Scope::new))
        .set_pkce_challenge(pkce.challenge.clone());
    for (k, v) in &settings.extra_params {
        request = request.add_extra_param(k.clone(), v.clone());
    }
    Ok(request.url().0.to_string())
}

fn token_error<RE: std::error::Error + 'static>(
    err: RequestTokenError<RE, oauth2::StandardErrorResponse<BasicErrorResponseType>>,
) -> ProviderError {
    match err {
        RequestTokenError::ServerResponse(response) => match response.error() {
            BasicErrorResponseType::InvalidGrant => ProviderError::InvalidGrant,
            BasicErrorResponseType::InvalidClient | BasicErrorResponseType::UnauthorizedClient => {
                ProviderError::Unauthorized
            }
            other => ProviderError::Protocol(format!("token endpoint error {}", other.as_ref())),
        },
        RequestTokenError::Request(e) => ProviderError::Unavailable(format!("token endpoint: {e}")),
        RequestTokenError::Parse(_, body) => {
            // A 429/5xx from the token endpoint arrives here with a non-OAuth body.
            ProviderError::Unavailable(format!("unparseable token response ({} bytes)", body.len()))
        }
        RequestTokenError::Other(e) => ProviderError::Protocol(e),
    }
}

fn token_set(response: &oauth2::basic::BasicTokenResponse) -> TokenSet {
    TokenSet {
        access_token: Secret::new(response.access_token().secret().clone()),
        refresh_token: response
            .refresh_token()
            .map(|t| Secret::new(t.secret().clone())),
        expires_at: response
            .expires_in()
            .and_then(|d| Duration::from_std(d).ok())
            .map(|d| Utc::now() + d),
    }
}

/// Exchanges an authorisation code, proving possession of the PKCE verifier.
pub async fn exchange_code(
    http: &reqwest::Client,
    settings: &OAuthSettings,
    redirect_uri: &str,
    code: &str,
    pkce_verifier: &str,
) -> Result<TokenSet, ProviderError> {
    let response = client(settings, Some(redirect_uri))?
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
        .request_async(http)
        .await
        .map_err(token_error)?;
    Ok(token_set(&response))
}

/// Refreshes an access token. A rotated refresh token, when the provider returns one, replaces
/// the old one, which may no longer work.
pub async fn refresh(
    http: &reqwest::Client,
    settings: &OAuthSettings,
    refresh_token: &Secret,
) -> Result<TokenSet, ProviderError> {
    let response = client(settings, None)?
        .exchange_refresh_token(&RefreshToken::new(refresh_token.expose().to_owned()))
        .request_async(http)
        .await
        .map_err(token_error)?;
    Ok(token_set(&response))
}

/// Revokes a token at the provider where it offers revocation (RFC 7009 form post).
pub async fn revoke(
    http: &reqwest::Client,
    settings: &OAuthSettings,
    token: &Secret,
) -> Result<(), ProviderError> {
    let Some(url) = &settings.revoke_url else {
        return Ok(());
    };
    let response = http
        .post(url)
        .form(&[("token", token.expose())])
        .send()
        .await
        .map_err(super::transport_error)?;
    match response.status().as_u16() {
        200..=299 => Ok(()),
        // Already invalid: nothing left to revoke.
        400 => Ok(()),
        _ => Err(super::status_error(
            response.status(),
            &response.headers().clone(),
            "",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_derived_pkce_pair_is_rfc7636_shaped_and_tied_to_its_binding() {
        let pkce = Pkce::derived_from("binding-a");
        assert_eq!(pkce.verifier.len(), 43);
        assert!(pkce
            .verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(pkce.verifier, Pkce::derived_from("binding-a").verifier);
        assert_ne!(pkce.verifier, Pkce::derived_from("binding-b").verifier);
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(
            pkce.verifier.clone(),
        ));
        assert_eq!(challenge.as_str(), pkce.challenge.as_str());
        assert_eq!(challenge.method().as_str(), "S256");
    }
}
