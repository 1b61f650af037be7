//! The read models: what the projector writes and the data plane and control plane read.
//!
//! Every value is JSON. A live value is the model's fields plus `applied_through`, the last
//! log sequence folded into it; a deleted one is a tombstone `{"deleted": true,
//! "applied_through": n}`, kept (not removed) so that an at-least-once replay of an older
//! event can never bring a revoked grant or a deleted server back, even briefly.
//!
//! Key layout (bucket: key → model), `<host>` being the subject's host token:
//! - `organizations`: `org.<org_id>` → `Organization` (also rewritten by `HostCreated`, which
//!   adds the host to its organization's list); `admin_token.<token_id>` → `AdminToken`
//! - `hosts`: `host.<host_id>` → `Host`
//! - `servers`: `server.<host>.<server_id>` → `Server`; `server_key.<host>.<key>` →
//!   `ServerKeyOwner`
//! - `humans`: `human.<host>.<human_id>` → `Human`; `human_email.<host>.<email_sha256_hex>` →
//!   `HumanEmailOwner`
//! - `grants`: `grant.<host>.<human_id>.<server_id>` → `Grant`
//! - `agents`: `agent.<host>.<agent_id>` → `Agent`; `agent_client.<host>.<client_id_sha256_hex>`
//!   → `AgentClientOwner`
//! - `sessions`: `session.<host>.<session_id>` → `Session`
//!
//! The data plane decides a call by joining session → grant → server → agent: four small
//! keys, each rewritten only by events of its own aggregate (plus `HumanRemoved`, which
//! tombstones the human's grants).

use std::collections::BTreeMap;

use portcullis_proto::TrustLevel;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A stored read-model value: the model or a tombstone, and the last log sequence folded in.
#[derive(Clone, Debug, PartialEq)]
pub struct Versioned<M> {
    /// Log sequence of the last event folded into this value; an event at or below it is
    /// already in and is skipped.
    pub applied_through: u64,
    /// The model, or its tombstone.
    pub state: State<M>,
}

/// A read model's state.
#[derive(Clone, Debug, PartialEq)]
pub enum State<M> {
    /// The entity exists.
    Live(M),
    /// The entity was deleted or revoked; readers must treat it as absent.
    Deleted,
}

impl<M> Versioned<M> {
    /// The live model, if not deleted.
    pub fn live(&self) -> Option<&M> {
        match &self.state {
            State::Live(model) => Some(model),
            State::Deleted => None,
        }
    }
}

const DELETED: &str = "deleted";
const APPLIED_THROUGH: &str = "applied_through";

impl<M: Serialize> Serialize for Versioned<M> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Live<'a, M> {
            applied_through: u64,
            #[serde(flatten)]
            model: &'a M,
        }
        #[derive(Serialize)]
        struct Tombstone {
            deleted: bool,
            applied_through: u64,
        }
        match &self.state {
            State::Live(model) => Live {
                applied_through: self.applied_through,
                model,
            }
            .serialize(serializer),
            State::Deleted => Tombstone {
                deleted: true,
                applied_through: self.applied_through,
            }
            .serialize(serializer),
        }
    }
}

impl<'de, M: DeserializeOwned> Deserialize<'de> for Versioned<M> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut object = serde_json::Map::deserialize(deserializer)?;
        let applied_through = object
            .remove(APPLIED_THROUGH)
            .and_then(|v| v.as_u64())
            .ok_or_else(|| D::Error::missing_field(APPLIED_THROUGH))?;
        let deleted = match object.remove(DELETED) {
            None => false,
            Some(serde_json::Value::Bool(deleted)) => deleted,
            Some(_) => return Err(D::Error::custom("`deleted` must be a boolean")),
        };
        let state = if deleted {
            State::Deleted
        } else {
            State::Live(
                serde_json::from_value(serde_json::Value::Object(object))
                    .map_err(D::Error::custom)?,
            )
        };
        Ok(Versioned {
            applied_through,
            state,
        })
    }
}

/// An organization (`organizations`: `org.<org_id>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    /// Display name.
    pub name: String,
    /// The host answering requests whose Host header names no host, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_host_id: Option<String>,
    /// Every host ever created in it, oldest first (deleted ones included: their own
    /// `host.<host_id>` value is the tombstone).
    #[serde(default)]
    pub host_ids: Vec<String>,
}

/// An admin token (`organizations`: `admin_token.<token_id>`); revoked tokens are tombstones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminToken {
    /// The organizations it acts for.
    pub org_ids: Vec<String>,
    /// Lower-case hex SHA-256 of the token secret; compare in constant time.
    pub token_sha256: String,
    /// The admin's label for it.
    pub label: String,
}

/// A host (`hosts`: `host.<host_id>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// The owning organization.
    pub org_id: String,
    /// The admin-chosen subdomain prefix.
    pub prefix: String,
    /// Whether it is its organization's default host.
    pub is_default: bool,
    /// Its settings, defaults resolved.
    pub settings: HostSettings,
    /// The public keys its access tokens are verified with, oldest first; the newest signs.
    #[serde(default)]
    pub signing_keys: Vec<PublicSigningKey>,
}

/// A host's public token-signing key (the private half stays sealed in the event log).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicSigningKey {
    /// Key id (the JWT header's `kid`).
    pub kid: String,
    /// JWS algorithm, `ES256`.
    pub algorithm: String,
    /// Lower-case hex of the uncompressed SEC1 public point.
    pub public_key: String,
    /// When it was added (ms since the Unix epoch; 0 in models folded before this field).
    #[serde(default)]
    pub added_at_ms: i64,
}

/// A host's settings with every default resolved, so readers need no defaults of their own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSettings {
    /// Whether agents may add MCP servers dynamically.
    pub dynamic_mcps: bool,
    /// Which tools `tools/list` shows.
    pub tool_visibility: ToolVisibility,
    /// Session idle lifetime, seconds.
    pub session_idle_seconds: u64,
    /// Session absolute lifetime, seconds.
    pub session_absolute_seconds: u64,
    /// Browser origins allowed to call the MCP endpoint.
    pub allowed_origins: Vec<String>,
    /// Sign-in methods and email-domain rules (defaults in models folded before they existed).
    #[serde(default)]
    pub auth: AuthSettings,
}

/// A sign-in method of the consent pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignInMethod {
    /// Email and password.
    Password,
    /// A 6-digit code sent by mail.
    EmailOtp,
    /// A passkey registered while signed in.
    Passkey,
}

impl SignInMethod {
    /// Every method, in the order pages offer them.
    pub const ALL: [SignInMethod; 3] = [
        SignInMethod::Password,
        SignInMethod::EmailOtp,
        SignInMethod::Passkey,
    ];

    /// The name settings and messages use.
    pub fn name(self) -> &'static str {
        match self {
            SignInMethod::Password => "password",
            SignInMethod::EmailOtp => "email_otp",
            SignInMethod::Passkey => "passkey",
        }
    }
}

/// A host's sign-in methods and email-domain rules, defaults resolved.
///
/// An email may use a method only if its domain is allowed by `allowed_domains` and by the
/// method's own rule; an absent rule allows every domain. Judged on the address the method
/// verified, never on what was typed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthSettings {
    /// Email and password.
    pub password: bool,
    /// A mailed 6-digit code.
    pub email_otp: bool,
    /// Domains every method accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_domains: Option<DomainRule>,
    /// Domains email and password accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_domains: Option<DomainRule>,
    /// Domains the mailed code accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_otp_domains: Option<DomainRule>,
    /// External identity providers, in the order the page offers them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<SignInProvider>,
    /// Passkeys (WebAuthn).
    #[serde(default)]
    pub passkeys: bool,
    /// Domains passkey sign-in accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passkey_domains: Option<DomainRule>,
}

/// What an external identity provider speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// Any OpenID Connect provider.
    Oidc,
    /// Google.
    Google,
    /// Microsoft Entra ID.
    Microsoft,
    /// GitHub.
    Github,
    /// SAML 2.0.
    Saml,
}

impl ProviderKind {
    /// The name settings use.
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::Oidc => "oidc",
            ProviderKind::Google => "google",
            ProviderKind::Microsoft => "microsoft",
            ProviderKind::Github => "github",
            ProviderKind::Saml => "saml",
        }
    }

    /// The label a button shows when the admin gave none.
    pub fn label(self) -> &'static str {
        match self {
            ProviderKind::Oidc => "single sign-on",
            ProviderKind::Google => "Google",
            ProviderKind::Microsoft => "Microsoft",
            ProviderKind::Github => "GitHub",
            ProviderKind::Saml => "SAML single sign-on",
        }
    }
}

/// An external identity provider of a host. Holds no secret: the sealed client secret stays
/// in the host's events, where the consent pages read it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInProvider {
    /// Unique in the host; names it in its callback URL.
    pub id: String,
    /// What it speaks.
    pub kind: ProviderKind,
    /// The button's label (empty: the kind's).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    /// The OAuth client id.
    pub client_id: String,
    /// The master key id that sealed the client secret (empty: none stored).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret_key_id: String,
    /// OIDC issuer, or Google's override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Microsoft tenant: a GUID, `common` or `organizations`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Microsoft: the tenant ids accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_tenants: Vec<String>,
    /// Microsoft: the authority's override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// GitHub: the authorization endpoint's override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    /// GitHub: the token endpoint's override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    /// GitHub: the API base's override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_base: Option<String>,
    /// Domains it accepts (intersected with the global list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domains: Option<DomainRule>,
    /// Domains whose emails must sign in here and nowhere else.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub force_redirect_domains: Vec<String>,
    /// SAML: the IdP's single sign-on URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saml_sso_url: Option<String>,
    /// SAML: the IdP's entity id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saml_entity_id: Option<String>,
    /// SAML: the IdP's signing certificates (public).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub saml_certificates: Vec<String>,
}

impl SignInProvider {
    /// The button's label.
    pub fn label(&self) -> &str {
        if self.display_name.is_empty() {
            self.kind.label()
        } else {
            &self.display_name
        }
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            password: true,
            email_otp: false,
            allowed_domains: None,
            password_domains: None,
            email_otp_domains: None,
            providers: Vec::new(),
            passkeys: false,
            passkey_domains: None,
        }
    }
}

/// Email domains (lower-case ASCII); with `include_subdomains`, names below them match too.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainRule {
    /// The domains.
    pub domains: Vec<String>,
    /// Whether `a.example.com` matches `example.com`.
    pub include_subdomains: bool,
}

impl DomainRule {
    /// Whether `domain` (lower-case ASCII) is one of the domains, or below one at a label
    /// boundary when subdomains are included.
    pub fn allows(&self, domain: &str) -> bool {
        self.domains.iter().any(|allowed| {
            domain == allowed
                || (self.include_subdomains
                    && domain
                        .strip_suffix(allowed.as_str())
                        .is_some_and(|head| head.ends_with('.') && head.len() > 1))
        })
    }
}

impl AuthSettings {
    /// Whether the method is on.
    pub fn enabled(&self, method: SignInMethod) -> bool {
        match method {
            SignInMethod::Password => self.password,
            SignInMethod::EmailOtp => self.email_otp,
            SignInMethod::Passkey => self.passkeys,
        }
    }

    /// The method's own domain rule.
    pub fn rule(&self, method: SignInMethod) -> Option<&DomainRule> {
        match method {
            SignInMethod::Password => self.password_domains.as_ref(),
            SignInMethod::EmailOtp => self.email_otp_domains.as_ref(),
            SignInMethod::Passkey => self.passkey_domains.as_ref(),
        }
    }

    /// Whether `email` (normalized, so lower-case ASCII) may sign in with `method`: the
    /// method is on, both the global rule and the method's rule allow its domain, and the
    /// domain is not one an identity provider claims for itself (force-redirect).
    pub fn allows(&self, method: SignInMethod, email: &str) -> bool {
        let Some((_, domain)) = email.rsplit_once('@') else {
            return false;
        };
        self.enabled(method)
            && self.forced_provider(email).is_none()
            && self
                .allowed_domains
                .as_ref()
                .is_none_or(|rule| rule.allows(domain))
            && self.rule(method).is_none_or(|rule| rule.allows(domain))
    }

    /// The provider with `id`.
    pub fn provider(&self, id: &str) -> Option<&SignInProvider> {
        self.providers.iter().find(|provider| provider.id == id)
    }

    /// The provider whose force-redirect domains hold `email`'s domain (exactly).
    pub fn forced_provider(&self, email: &str) -> Option<&SignInProvider> {
        let (_, domain) = email.rsplit_once('@')?;
        self.providers.iter().find(|provider| {
            provider
                .force_redirect_domains
                .iter()
                .any(|forced| forced == domain)
        })
    }

    /// Whether `email` (normalized), as `provider` verified it, may sign in through it: both
    /// rules allow its domain, and no other provider claims the domain.
    pub fn allows_provider(&self, provider: &SignInProvider, email: &str) -> bool {
        let Some((_, domain)) = email.rsplit_once('@') else {
            return false;
        };
        self.forced_provider(email)
            .is_none_or(|forced| forced.id == provider.id)
            && self
                .allowed_domains
                .as_ref()
                .is_none_or(|rule| rule.allows(domain))
            && provider
                .domains
                .as_ref()
                .is_none_or(|rule| rule.allows(domain))
    }

    /// What in these settings is probably a mistake: an enabled method whose rules no email
    /// can satisfy (an empty list, or two lists with nothing in common).
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        for method in SignInMethod::ALL {
            if self.enabled(method) && nobody(self.allowed_domains.as_ref(), self.rule(method)) {
                warnings.push(format!(
                    "no email can sign in with {}: auth.allowed_domains and auth.{}_domains \
                     allow no domain in common",
                    method.name(),
                    method.name()
                ));
            }
        }
        for (index, provider) in self.providers.iter().enumerate() {
            if nobody(self.allowed_domains.as_ref(), provider.domains.as_ref()) {
                warnings.push(format!(
                    "no email can sign in with provider {:?}: auth.allowed_domains and \
                     auth.providers[{index}].domains allow no domain in common",
                    provider.id
                ));
            }
        }
        warnings
    }
}

/// Whether no domain satisfies both rules (an absent rule allows every domain).
fn nobody(global: Option<&DomainRule>, own: Option<&DomainRule>) -> bool {
    match (global, own) {
        (None, None) => false,
        (Some(only), None) | (None, Some(only)) => only.domains.is_empty(),
        (Some(global), Some(own)) => !overlaps(global, own),
    }
}

/// Whether some domain satisfies both rules.
fn overlaps(a: &DomainRule, b: &DomainRule) -> bool {
    a.domains.iter().any(|domain| b.allows(domain))
        || b.domains.iter().any(|domain| a.allows(domain))
}

/// Which tools `tools/list` shows an agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolVisibility {
    /// Only the tools the session may call (the default).
    Permitted,
    /// Every enabled tool.
    All,
}

/// An imported server's catalog (`servers`: `server.<host>.<server_id>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Server {
    /// URL-safe key, unique in the host.
    pub key: String,
    /// Upstream MCP URL.
    pub url: String,
    /// Display name.
    pub name: String,
    /// Description.
    pub description: String,
    /// How the gateway authenticates upstream (never the secret).
    pub upstream_auth: UpstreamAuth,
    /// How long the data plane waits for the upstream's response head, in seconds (1 to
    /// 3600, as the event codec guarantees); absent means the data plane's global
    /// `--upstream-timeout`. Absent from values written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// Tools by name.
    pub tools: BTreeMap<String, Tool>,
}

/// How the gateway authenticates to an upstream server. Holds no secret: the sealed client
/// secret stays in the event log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UpstreamAuth {
    /// No authentication.
    None,
    /// OAuth with a pre-registered client.
    Oauth {
        /// The OAuth client id.
        client_id: String,
        /// The master key id that sealed the client secret.
        key_id: String,
    },
}

/// One tool of a server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tool {
    /// Description from the upstream.
    pub description: String,
    /// Lower-case hex SHA-256 of the canonical input schema.
    pub input_schema_sha256: String,
    /// The trust level a caller needs.
    pub trust_level: TrustLevel,
    /// Disabled tools are never callable.
    pub enabled: bool,
    /// How the trust level was decided.
    pub classification: Classification,
}

/// How a tool's trust level was decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Classification {
    /// By the product rule.
    Auto {
        /// The keyword that matched; empty when none did.
        matched_keyword: String,
        /// Explanation.
        reason: String,
    },
    /// Set by an admin.
    AdminOverride,
}

/// The reservation of a server key (`servers`: `server_key.<host>.<key>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerKeyOwner {
    /// The server holding the key.
    pub server_id: String,
}

/// A human (`humans`: `human.<host>.<human_id>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Human {
    /// Normalized email.
    pub email: String,
    /// Added by an admin before first sign-in.
    pub pre_authorized: bool,
    /// Whether they proved the email with a code (they can sign in). Absent from values
    /// written before accounts existed.
    #[serde(default)]
    pub email_verified: bool,
}

/// The reservation of an email (`humans`: `human_email.<host>.<email_sha256_hex>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HumanEmailOwner {
    /// The human holding the email.
    pub human_id: String,
}

/// A grant (`grants`: `grant.<host>.<human_id>.<server_id>`); revoked grants are tombstones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The human.
    pub human_id: String,
    /// The server.
    pub server_id: String,
    /// The ceiling the human may delegate.
    pub max_trust_level: TrustLevel,
    /// Log sequence of the `GrantIssued` that made it live: a session started before it
    /// predates this grant (e.g. consented under an earlier, since revoked grant).
    pub issued_sequence: u64,
}

/// An agent (`agents`: `agent.<host>.<agent_id>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    /// The OAuth client id.
    pub client_id: String,
    /// Display name.
    pub name: String,
    /// The client's URI.
    pub uri: String,
    /// The kind of client.
    pub agent_type: String,
    /// Registered redirect URIs.
    pub redirect_uris: Vec<String>,
    /// The human who connected it, once known.
    pub human_id: Option<String>,
    /// Admin caps by server id.
    pub caps: BTreeMap<String, TrustLevel>,
    /// Revocations by server id: the log sequence of the latest `AgentServerRevoked`. A
    /// session on that server whose `started_sequence` is at or below it is dead.
    pub revoked_servers: BTreeMap<String, u64>,
}

impl Agent {
    /// Whether a session on `server_id` started at log sequence `started_sequence` survives
    /// this agent's revocations.
    pub fn session_survives_revocations(&self, server_id: &str, started_sequence: u64) -> bool {
        self.revoked_servers
            .get(server_id)
            .is_none_or(|revoked_at| started_sequence > *revoked_at)
    }
}

/// Which agent holds an OAuth client id (`agents`:
/// `agent_client.<host>.<client_id_sha256_hex>`), for the authorization server's lookups.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentClientOwner {
    /// The agent registered with the client id.
    pub agent_id: String,
}

/// A consent session (`sessions`: `session.<host>.<session_id>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The consenting human.
    pub human_id: String,
    /// The agent.
    pub agent_id: String,
    /// The agent's OAuth client id.
    pub client_id: String,
    /// The one server consented to.
    pub server_id: String,
    /// The consented trust level.
    pub trust_level: TrustLevel,
    /// Start, milliseconds since the Unix epoch.
    pub started_at_ms: i64,
    /// Last refresh (or the start), milliseconds since the Unix epoch.
    pub last_used_ms: i64,
    /// Idle lifetime, seconds.
    pub idle_timeout_seconds: u64,
    /// Absolute lifetime, seconds.
    pub absolute_timeout_seconds: u64,
    /// Log sequence of the `SessionStarted`; compared with the agent's revocations.
    pub started_sequence: u64,
    /// Set once revoked; a revoked session never comes back.
    pub revoked: Option<SessionRevocation>,
}

/// A human's tokens at an OAuth-protected upstream
/// (`grants`: `upstream_credential.<host>.<human_id>.<server_id>`), sealed: only holders of
/// the master key (control planes, data planes) can open them. Revoked ones are tombstones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamCredential {
    /// Base64 of the sealed credential (see `UpstreamCredentialStored`).
    pub credential_sealed: String,
    /// When the access token expires (ms since the Unix epoch; 0 if not stated).
    pub expires_at_ms: i64,
}

/// Why and when a session was revoked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRevocation {
    /// Reason given.
    pub reason: String,
    /// When, by the revoking command's clock (milliseconds since the Unix epoch).
    pub at_ms: i64,
}

impl Session {
    /// When the session ends if not refreshed or revoked: the earlier of its idle and
    /// absolute deadlines (milliseconds since the Unix epoch).
    pub fn expires_at_ms(&self) -> i64 {
        Self::expiry_at_ms(
            self.started_at_ms,
            self.last_used_ms,
            self.idle_timeout_seconds,
            self.absolute_timeout_seconds,
        )
    }

    /// The rule of `expires_at_ms`, on a session's fields (for other forms of a session).
    pub fn expiry_at_ms(
        started_at_ms: i64,
        last_used_ms: i64,
        idle_timeout_seconds: u64,
        absolute_timeout_seconds: u64,
    ) -> i64 {
        let idle = last_used_ms.saturating_add(seconds_to_ms(idle_timeout_seconds));
        let absolute = started_at_ms.saturating_add(seconds_to_ms(absolute_timeout_seconds));
        idle.min(absolute)
    }

    /// Whether the session is usable at `now_ms`: not revoked and not expired.
    pub fn is_live_at(&self, now_ms: i64) -> bool {
        self.revoked.is_none() && now_ms < self.expires_at_ms()
    }
}

fn seconds_to_ms(seconds: u64) -> i64 {
    i64::try_from(seconds)
        .unwrap_or(i64::MAX)
        .saturating_mul(1000)
}

#[cfg(test)]
mod tests;
