//! The emulator's in-memory world: accounts and their calendars, their events, authorization
//! codes, grants and tokens, queued faults and request statistics.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE;
use base64::Engine as _;
use serde::Serialize;

use crate::events::Events;
use crate::http::{random_token, sha256};
use crate::push::PushState;

/// Authorization codes live ten minutes at both providers.
pub(crate) const CODE_LIFETIME: Duration = Duration::from_secs(600);
pub(crate) const DEFAULT_ACCESS_TOKEN_TTL: u64 = 3600;

pub(crate) const DEFAULT_GOOGLE_ACCOUNT: &str = "alice@gmail.test";
pub(crate) const DEFAULT_MICROSOFT_ACCOUNT: &str = "bob@outlook.test";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Provider {
    Google,
    Microsoft,
}

#[derive(Clone, Debug)]
pub(crate) struct Calendar {
    pub id: String,
    pub name: String,
    /// Google: a colorId ("1".."24") or "#rrggbb"; Microsoft: a calendarColor name or "#rrggbb".
    pub color: Option<String>,
    pub primary: bool,
    pub access_role: String,
    pub time_zone: String,
    pub description: Option<String>,
    pub can_edit: bool,
    pub can_share: bool,
    pub is_removable: bool,
    /// Microseconds since the epoch of the last change: Google's entry etags are this number.
    pub updated_micros: i64,
}

#[derive(Clone, Debug)]
pub(crate) struct Account {
    pub provider: Provider,
    pub email: String,
    pub display_name: String,
    pub deny: bool,
    pub calendars: Vec<Calendar>,
    /// Bumped on every change; sync tokens and list etags are derived from it.
    pub version: u64,
}

impl Account {
    /// Graph's user id; for consumer accounts a 16-hex-digit id derived from the e-mail.
    pub fn user_id(&self) -> String {
        sha256(&format!("user:{}", self.email))[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// What an `/admin/accounts` request asks for, one calendar.
#[derive(Clone, Debug, Default)]
pub(crate) struct CalendarSpec {
    pub id: Option<String>,
    pub name: String,
    pub color: Option<String>,
    pub primary: bool,
    pub access_role: Option<String>,
    pub time_zone: Option<String>,
    pub description: Option<String>,
    pub can_edit: Option<bool>,
    pub is_removable: Option<bool>,
}

pub(crate) struct AuthCode {
    pub provider: Provider,
    pub account: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub challenge: String,
    pub offline: bool,
    pub issued: Instant,
    pub redeemed: bool,
}

pub(crate) struct Grant {
    pub provider: Provider,
    pub account: String,
    pub client_id: String,
    pub scopes: Vec<String>,
}

pub(crate) struct AccessToken {
    pub grant: u64,
    pub expires: Instant,
}

/// Why a bearer token was refused.
pub(crate) enum TokenProblem {
    Missing,
    Unknown,
    Expired,
}

#[derive(Clone, Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Fault {
    pub method: Option<String>,
    pub path_prefix: String,
    pub status: Option<u16>,
    pub retry_after: Option<u64>,
    #[serde(default)]
    pub delay_ms: u64,
    pub body: Option<String>,
    #[serde(default)]
    pub malformed: bool,
    /// The next events page (Google events.list, Graph calendarView delta) carries one extra
    /// event whose start cannot be parsed; the rest of the answer is normal.
    #[serde(default)]
    pub malformed_item: bool,
    #[serde(default = "one")]
    pub times: u32,
}

fn one() -> u32 {
    1
}

#[derive(Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GrantStats {
    /// Successful authorization requests (a code was issued).
    pub authorizations: u64,
    /// Authorization requests answered with an error redirect (denied, bad PKCE, ...).
    pub authorization_errors: u64,
    pub authorization_code_grants: u64,
    pub refresh_token_grants: u64,
    /// Token requests refused with `invalid_grant` / `invalid_client` / ...
    pub failed_token_requests: u64,
    pub revocations: u64,
    pub access_tokens_issued: u64,
    pub refresh_tokens_issued: u64,
}

#[derive(Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Stats {
    /// Requests per path (admin requests are not counted).
    pub requests: BTreeMap<String, u64>,
    /// Requests per "METHOD path".
    pub requests_by_method: BTreeMap<String, u64>,
    pub google: GrantStats,
    pub microsoft: GrantStats,
    pub faults_served: u64,
}

impl Stats {
    pub fn grants(&mut self, provider: Provider) -> &mut GrantStats {
        match provider {
            Provider::Google => &mut self.google,
            Provider::Microsoft => &mut self.microsoft,
        }
    }
}

pub(crate) struct State {
    pub access_token_ttl: u64,
    /// Google events.list pages hold fewer events than `maxResults`, some none at all.
    pub short_pages: bool,
    pub events: Events,
    pub accounts: HashMap<(Provider, String), Account>,
    pub codes: HashMap<String, AuthCode>,
    pub grants: HashMap<u64, Grant>,
    pub refresh_tokens: HashMap<String, u64>,
    pub access_tokens: HashMap<String, AccessToken>,
    pub faults: VecDeque<Fault>,
    pub stats: Stats,
    /// Google channels, Graph subscriptions, push faults and the delivery log.
    pub push: PushState,
    next_grant: u64,
    next_version: u64,
}

impl State {
    pub fn new() -> Self {
        let mut state = State {
            access_token_ttl: DEFAULT_ACCESS_TOKEN_TTL,
            short_pages: false,
            events: Events::default(),
            accounts: HashMap::new(),
            codes: HashMap::new(),
            grants: HashMap::new(),
            refresh_tokens: HashMap::new(),
            access_tokens: HashMap::new(),
            faults: VecDeque::new(),
            stats: Stats::default(),
            push: PushState::new(),
            next_grant: 1,
            next_version: 1,
        };
        state.put_account(
            Provider::Google,
            DEFAULT_GOOGLE_ACCOUNT,
            None,
            false,
            vec![
                CalendarSpec {
                    name: DEFAULT_GOOGLE_ACCOUNT.into(),
                    primary: true,
                    color: Some("14".into()),
                    ..Default::default()
                },
                CalendarSpec {
                    id: Some("team@group.calendar.google.test".into()),
                    name: "Team".into(),
                    color: Some("7".into()),
                    ..Default::default()
                },
                CalendarSpec {
                    id: Some("en.usa#holiday@group.v.calendar.google.test".into()),
                    name: "Holidays".into(),
                    color: Some("8".into()),
                    access_role: Some("reader".into()),
                    description: Some("Holidays and Observances in United States".into()),
                    ..Default::default()
                },
            ],
        );
        state.put_account(
            Provider::Microsoft,
            DEFAULT_MICROSOFT_ACCOUNT,
            None,
            false,
            vec![
                CalendarSpec {
                    name: "Calendar".into(),
                    primary: true,
                    color: Some("lightBlue".into()),
                    ..Default::default()
                },
                CalendarSpec {
                    name: "Birthdays".into(),
                    color: Some("auto".into()),
                    can_edit: Some(false),
                    is_removable: Some(false),
                    ..Default::default()
                },
            ],
        );
        crate::google_events::seed(&mut state);
        crate::graph_events::seed(&mut state);
        // The samples are there from the start: nobody is told of them.
        state.events.changes.clear();
        state
    }

    fn version(&mut self) -> u64 {
        self.next_version += 1;
        self.next_version
    }

    /// Creates or replaces an account. Tokens already issued for the e-mail stay valid.
    pub fn put_account(
        &mut self,
        provider: Provider,
        email: &str,
        display_name: Option<String>,
        deny: bool,
        specs: Vec<CalendarSpec>,
    ) -> &Account {
        let email = email.trim().to_ascii_lowercase();
        let version = self.version();
        let now_micros = chrono::Utc::now().timestamp_micros();
        let mut specs = specs;
        if !specs.iter().any(|c| c.primary) {
            match specs.first_mut() {
                Some(first) => first.primary = true,
                None => specs.push(CalendarSpec {
                    name: match provider {
                        Provider::Google => email.clone(),
                        Provider::Microsoft => "Calendar".into(),
                    },
                    primary: true,
                    ..Default::default()
                }),
            }
        }
        let mut seen_primary = false;
        let calendars = specs
            .into_iter()
            .enumerate()
            .map(|(i, spec)| {
                let primary = spec.primary && !seen_primary;
                seen_primary |= primary;
                let id = match provider {
                    // Google: the primary calendar's id is always the account's e-mail.
                    Provider::Google if primary => email.clone(),
                    Provider::Google => spec.id.unwrap_or_else(|| {
                        let h = sha256(&format!("google:{email}:{i}:{}", spec.name));
                        let local: String =
                            h.iter().take(26).map(|b| (b'a' + b % 26) as char).collect();
                        format!("{local}@group.calendar.google.test")
                    }),
                    Provider::Microsoft => spec.id.unwrap_or_else(|| {
                        let h = sha256(&format!("microsoft:{email}:{i}:{}", spec.name));
                        format!("AAMkA{}", URL_SAFE.encode(&h[..31]))
                    }),
                };
                Calendar {
                    id,
                    name: spec.name,
                    color: spec.color,
                    primary,
                    access_role: spec.access_role.unwrap_or_else(|| "owner".into()),
                    time_zone: spec.time_zone.unwrap_or_else(|| "Europe/London".into()),
                    description: spec.description,
                    can_edit: spec.can_edit.unwrap_or(true),
                    can_share: primary,
                    is_removable: spec.is_removable.unwrap_or(!primary),
                    updated_micros: now_micros,
                }
            })
            .collect();
        let display_name = display_name.unwrap_or_else(|| {
            let local = email.split('@').next().unwrap_or_default();
            let mut chars = local.chars();
            match chars.next() {
                Some(c) => c.to_uppercase().chain(chars).collect(),
                None => email.clone(),
            }
        });
        let key = (provider, email.clone());
        self.accounts.insert(
            key.clone(),
            Account {
                provider,
                email,
                display_name,
                deny,
                calendars,
                version,
            },
        );
        &self.accounts[&key]
    }

    pub fn account(&self, provider: Provider, email: &str) -> Option<&Account> {
        self.accounts
            .get(&(provider, email.trim().to_ascii_lowercase()))
    }

    /// The account an authorization request signs in: `login_hint` if it names a configured
    /// account of the provider, else the default account.
    pub fn resolve_login(&self, provider: Provider, login_hint: Option<&str>) -> Option<&Account> {
        login_hint
            .and_then(|hint| self.account(provider, hint))
            .or_else(|| {
                self.account(
                    provider,
                    match provider {
                        Provider::Google => DEFAULT_GOOGLE_ACCOUNT,
                        Provider::Microsoft => DEFAULT_MICROSOFT_ACCOUNT,
                    },
                )
            })
    }

    pub fn new_grant(&mut self, grant: Grant) -> u64 {
        let id = self.next_grant;
        self.next_grant += 1;
        self.grants.insert(id, grant);
        id
    }

    pub fn issue_access_token(&mut self, grant: u64, prefix: &str) -> String {
        let token = format!("{prefix}{}", random_token(96));
        let ttl = Duration::from_secs(self.access_token_ttl);
        let provider = self.grants.get(&grant).map(|g| g.provider);
        self.access_tokens.insert(
            token.clone(),
            AccessToken {
                grant,
                expires: Instant::now() + ttl,
            },
        );
        if let Some(provider) = provider {
            self.stats.grants(provider).access_tokens_issued += 1;
        }
        token
    }

    pub fn issue_refresh_token(&mut self, grant: u64, prefix: &str) -> String {
        let token = format!("{prefix}{}", random_token(72));
        self.refresh_tokens.insert(token.clone(), grant);
        if let Some(provider) = self.grants.get(&grant).map(|g| g.provider) {
            self.stats.grants(provider).refresh_tokens_issued += 1;
        }
        token
    }

    /// The grant behind a bearer token of `provider`, if it is known and unexpired.
    pub fn check_bearer(
        &self,
        provider: Provider,
        token: Option<&str>,
    ) -> Result<&Grant, TokenProblem> {
        let token = match token {
            None | Some("") => return Err(TokenProblem::Missing),
            Some(t) => t,
        };
        let access = self.access_tokens.get(token).ok_or(TokenProblem::Unknown)?;
        let grant = self
            .grants
            .get(&access.grant)
            .filter(|g| g.provider == provider)
            .ok_or(TokenProblem::Unknown)?;
        if Instant::now() >= access.expires {
            return Err(TokenProblem::Expired);
        }
        Ok(grant)
    }

    /// Revokes a whole grant: its refresh token and every access token issued from it.
    pub fn revoke_grant(&mut self, grant: u64) {
        self.grants.remove(&grant);
        self.refresh_tokens.retain(|_, g| *g != grant);
        self.access_tokens.retain(|_, t| t.grant != grant);
    }

    /// Takes one use of the first queued fault that matches the request.
    pub fn take_fault(&mut self, method: &str, path: &str) -> Option<Fault> {
        let index = self.faults.iter().position(|f| {
            path.starts_with(&f.path_prefix)
                && f.method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method))
        })?;
        let fault = &mut self.faults[index];
        fault.times = fault.times.saturating_sub(1);
        let taken = fault.clone();
        if fault.times == 0 {
            self.faults.remove(index);
        }
        self.stats.faults_served += 1;
        Some(taken)
    }
}
