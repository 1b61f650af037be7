//! Value rules of the domain: emails, server keys, names, descriptions, URLs, origins, tool
//! names, session lifetimes and upstream timeouts, each a pure function with its own typed
//! error.
//!
//! Must not: do IO (no DNS, no connection: the SSRF guard on URLs belongs to whoever connects),
//! or know which API field a value came from (callers name the field when they report it).

use portcullis_proto::events::v1 as pb;
use portcullis_proto::{DEFAULT_SESSION_ABSOLUTE_SECONDS, DEFAULT_SESSION_IDLE_SECONDS};
// The bounds are part of the event contract (`decode_event` enforces them too), so they live
// beside it in `portcullis-proto`.
pub use portcullis_proto::{MAX_UPSTREAM_TIMEOUT_SECONDS, MIN_UPSTREAM_TIMEOUT_SECONDS};

/// Longest display name (server), in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest server description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 2000;
/// Longest tool description, in characters (upstreams write long ones).
pub const MAX_TOOL_DESCRIPTION_CHARS: usize = 8192;
/// Longest tool name, in characters (the MCP limit).
pub const MAX_TOOL_NAME_CHARS: usize = 128;
/// Most tools one server may have.
pub const MAX_TOOLS: usize = 1000;
/// Longest server key, in bytes: it is a subject token (at most 64) and a read-model key token.
pub const MAX_SERVER_KEY_LEN: usize = 48;
/// Longest email, in bytes (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;
/// Longest upstream URL, in bytes.
pub const MAX_URL_LEN: usize = 2048;
/// Most allowed origins per host.
pub const MAX_ALLOWED_ORIGINS: usize = 50;
/// Shortest session lifetime (idle or absolute): one minute. Shorter than anyone would run in
/// production, but stricter is never unsafe, and it lets an operator (or a test) watch a
/// session expire.
pub const MIN_SESSION_SECONDS: u64 = 60;
/// Longest session lifetime (idle or absolute): 365 days.
pub const MAX_SESSION_SECONDS: u64 = 365 * 24 * 60 * 60;

/// Why an email is not acceptable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEmail {
    /// Nothing but whitespace.
    #[error("email is empty")]
    Empty,
    /// Longer than `MAX_EMAIL_LEN`.
    #[error("email is longer than {MAX_EMAIL_LEN} bytes")]
    TooLong,
    /// Not `local@domain.tld` in ASCII.
    #[error("email must look like name@example.com (ASCII only)")]
    Format,
}

/// Trims and lower-cases an email, then checks that it is `local@domain` with a dotted
/// domain of DNS labels. ASCII only (internationalized addresses are not accepted).
pub fn normalize_email(input: &str) -> Result<String, InvalidEmail> {
    let email = input.trim().to_ascii_lowercase();
    if email.is_empty() {
        return Err(InvalidEmail::Empty);
    }
    if email.len() > MAX_EMAIL_LEN {
        return Err(InvalidEmail::TooLong);
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err(InvalidEmail::Format);
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if local_ok && domain_ok {
        Ok(email)
    } else {
        Err(InvalidEmail::Format)
    }
}

/// Why a server key is not acceptable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidServerKey {
    /// Empty or too long.
    #[error("key must be 1 to {MAX_SERVER_KEY_LEN} characters")]
    Length,
    /// Not URL-safe.
    #[error(
        "key may only contain lower-case letters, digits, '-' and '_', and must start with a \
         letter or digit"
    )]
    Characters,
}

/// Checks a server key: 1–48 of `[a-z0-9_-]`, starting with a letter or digit. Keys appear
/// in MCP URLs, subjects and read-model keys, so the set is the intersection of all three.
pub fn validate_server_key(key: &str) -> Result<(), InvalidServerKey> {
    if key.is_empty() || key.len() > MAX_SERVER_KEY_LEN {
        return Err(InvalidServerKey::Length);
    }
    let bytes = key.as_bytes();
    let allowed = bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_'));
    if !allowed || !bytes[0].is_ascii_alphanumeric() {
        return Err(InvalidServerKey::Characters);
    }
    Ok(())
}

/// Derives a valid server key from a server's name, else from its URL's host (without a
/// leading `www.` or `mcp.`), else `server`: lower-cased, every run of other characters
/// made one `-`, trimmed to `MAX_SERVER_KEY_LEN`.
pub fn derive_server_key(name: Option<&str>, url: &str) -> String {
    let from_url = || {
        url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .map(|host| {
                let host = host.strip_prefix("www.").unwrap_or(&host);
                let host = host.strip_prefix("mcp.").unwrap_or(host);
                // `api.github.com` → `api-github`: the TLD adds nothing.
                match host.rsplit_once('.') {
                    Some((rest, _tld)) => rest.to_owned(),
                    None => host.to_owned(),
                }
            })
    };
    let source = name
        .map(str::trim)
        .filter(|n| n.chars().any(|c| c.is_ascii_alphanumeric()))
        .map(str::to_owned)
        .or_else(from_url)
        .unwrap_or_default();
    let mut key = String::new();
    for c in source.chars() {
        if c.is_ascii_alphanumeric() {
            key.push(c.to_ascii_lowercase());
        } else if !key.is_empty() && !key.ends_with('-') {
            key.push('-');
        }
    }
    key.truncate(MAX_SERVER_KEY_LEN);
    let key = key.trim_end_matches('-').to_owned();
    if key.is_empty() {
        "server".to_owned()
    } else {
        key
    }
}

/// The `n`-th alternative (n ≥ 2) of a derived key, for when the key is taken: `key-n`,
/// shortening `key` so the result stays within `MAX_SERVER_KEY_LEN`.
pub fn numbered_server_key(key: &str, n: u32) -> String {
    let suffix = format!("-{n}");
    let keep = MAX_SERVER_KEY_LEN
        .saturating_sub(suffix.len())
        .min(key.len());
    format!("{}{suffix}", key[..keep].trim_end_matches('-'))
}

/// Why a display name or description is not acceptable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidText {
    /// Required but blank.
    #[error("must not be empty")]
    Empty,
    /// Too long.
    #[error("must be at most {max} characters")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// Holds control characters (other than newlines and tabs in descriptions).
    #[error("must not contain control characters")]
    ControlCharacters,
}

/// Trims a display name and checks it: 1–`MAX_NAME_CHARS` characters, no control characters.
pub fn validate_name(name: &str) -> Result<String, InvalidText> {
    let name = name.trim();
    if name.is_empty() {
        return Err(InvalidText::Empty);
    }
    check_text(name, MAX_NAME_CHARS, false)?;
    Ok(name.to_owned())
}

/// Trims a description and checks it: at most `max` characters; newlines and tabs allowed,
/// other control characters not. Empty is fine.
pub fn validate_description(description: &str, max: usize) -> Result<String, InvalidText> {
    let description = description.trim();
    check_text(description, max, true)?;
    Ok(description.to_owned())
}

fn check_text(text: &str, max: usize, multiline: bool) -> Result<(), InvalidText> {
    if text.chars().count() > max {
        return Err(InvalidText::TooLong { max });
    }
    if text
        .chars()
        .any(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t')))
    {
        return Err(InvalidText::ControlCharacters);
    }
    Ok(())
}

/// Why an upstream URL is not acceptable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidUrl {
    /// Too long.
    #[error("url is longer than {MAX_URL_LEN} bytes")]
    TooLong,
    /// Not an absolute URL.
    #[error("url is not an absolute URL")]
    Unparsable,
    /// Neither http nor https.
    #[error("url must use http or https")]
    Scheme,
    /// No host.
    #[error("url must name a host")]
    NoHost,
    /// Carries a user name or password.
    #[error("url must not carry credentials")]
    Credentials,
    /// Carries a fragment.
    #[error("url must not have a fragment")]
    Fragment,
}

/// Checks an upstream MCP URL (http or https, a host, no credentials or fragment) and returns
/// its normalized form. Whether the host may be connected to is the connector's SSRF guard.
pub fn validate_server_url(input: &str) -> Result<String, InvalidUrl> {
    let input = input.trim();
    if input.len() > MAX_URL_LEN {
        return Err(InvalidUrl::TooLong);
    }
    let url = url::Url::parse(input).map_err(|_| InvalidUrl::Unparsable)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(InvalidUrl::Scheme);
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(InvalidUrl::NoHost);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(InvalidUrl::Credentials);
    }
    if url.fragment().is_some() {
        return Err(InvalidUrl::Fragment);
    }
    Ok(url.to_string())
}

/// Why a browser origin is not acceptable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidOrigin {
    /// Not `scheme://host[:port]`.
    #[error("origin must be scheme://host[:port], e.g. https://app.example.com")]
    Format,
    /// Neither http nor https.
    #[error("origin must use http or https")]
    Scheme,
    /// Has a path, query, fragment or credentials.
    #[error("origin must not have a path, query, fragment or credentials")]
    NotAnOrigin,
}

/// Checks a browser origin and returns its serialization (`https://app.example.com`,
/// lower-cased, default port dropped). Wildcards are not origins and are refused.
pub fn normalize_origin(input: &str) -> Result<String, InvalidOrigin> {
    let input = input.trim();
    if input.is_empty() || input.len() > 512 || input.contains('*') {
        return Err(InvalidOrigin::Format);
    }
    let url = url::Url::parse(input).map_err(|_| InvalidOrigin::Format)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(InvalidOrigin::Scheme);
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(InvalidOrigin::Format);
    }
    // `https://app.example.com/` is accepted too: the slash is the empty path.
    let bare = url.path() == "/" || url.path().is_empty();
    if !bare
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(InvalidOrigin::NotAnOrigin);
    }
    Ok(url.origin().ascii_serialization())
}

/// Why a tool name is not acceptable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidToolName {
    /// Empty or too long.
    #[error("tool name must be 1 to {MAX_TOOL_NAME_CHARS} characters")]
    Length,
    /// Holds whitespace or control characters.
    #[error("tool name must not contain whitespace or control characters")]
    Characters,
}

/// Checks a tool name: 1–128 characters without whitespace or control characters.
pub fn validate_tool_name(name: &str) -> Result<(), InvalidToolName> {
    let count = name.chars().count();
    if count == 0 || count > MAX_TOOL_NAME_CHARS {
        return Err(InvalidToolName::Length);
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(InvalidToolName::Characters);
    }
    Ok(())
}

/// Why a server's upstream timeout is not acceptable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTimeout {
    /// Zero, or longer than an hour.
    #[error("must be {MIN_UPSTREAM_TIMEOUT_SECONDS} to {MAX_UPSTREAM_TIMEOUT_SECONDS} seconds")]
    OutOfRange,
}

/// Checks a server's upstream timeout (how long the data plane waits for the upstream's
/// response head): `MIN_UPSTREAM_TIMEOUT_SECONDS` to `MAX_UPSTREAM_TIMEOUT_SECONDS`.
pub fn validate_upstream_timeout(seconds: u64) -> Result<(), InvalidTimeout> {
    if (MIN_UPSTREAM_TIMEOUT_SECONDS..=MAX_UPSTREAM_TIMEOUT_SECONDS).contains(&seconds) {
        Ok(())
    } else {
        Err(InvalidTimeout::OutOfRange)
    }
}

/// Why host settings are not acceptable; each variant names the setting.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSettings {
    /// `tool_visibility` is not a known value.
    #[error("tool_visibility must be permitted or all")]
    ToolVisibility,
    /// `session_idle_seconds` out of bounds.
    #[error("session_idle_seconds must be {MIN_SESSION_SECONDS} to {MAX_SESSION_SECONDS}")]
    IdleOutOfRange,
    /// `session_absolute_seconds` out of bounds.
    #[error("session_absolute_seconds must be {MIN_SESSION_SECONDS} to {MAX_SESSION_SECONDS}")]
    AbsoluteOutOfRange,
    /// The idle lifetime is longer than the absolute one.
    #[error("session_idle_seconds must not exceed session_absolute_seconds")]
    IdleExceedsAbsolute,
    /// Too many origins.
    #[error("at most {MAX_ALLOWED_ORIGINS} allowed origins")]
    TooManyOrigins,
    /// One origin is invalid.
    #[error("allowed_origins[{index}]: {source}")]
    Origin {
        /// Its position in the list.
        index: usize,
        /// Why.
        #[source]
        source: InvalidOrigin,
    },
    /// Every sign-in method is off: nobody could consent.
    #[error("auth: at least one sign-in method must be on")]
    NoSignInMethod,
    /// A domain rule lists too many domains.
    #[error("auth.{rule}.domains: at most {MAX_RULE_DOMAINS} domains")]
    TooManyDomains {
        /// The rule (`allowed_domains`, `password_domains`, …).
        rule: &'static str,
    },
    /// One domain of a rule is not a domain name.
    #[error("auth.{rule}.domains[{index}]: {reason}")]
    Domain {
        /// The rule.
        rule: &'static str,
        /// Its position in the rule.
        index: usize,
        /// Why.
        reason: String,
    },
    /// Too many identity providers.
    #[error("auth.providers: at most {MAX_PROVIDERS} providers")]
    TooManyProviders,
    /// A field of one identity provider is wrong.
    #[error("auth.providers[{index}].{field}: {reason}")]
    Provider {
        /// The provider's position in the list.
        index: usize,
        /// The field, e.g. `issuer` or `force_redirect_domains[1]`.
        field: String,
        /// Why.
        reason: String,
    },
}

impl InvalidSettings {
    /// The offending field, as the API names it.
    pub fn field(&self) -> String {
        match self {
            InvalidSettings::ToolVisibility => "tool_visibility".to_owned(),
            InvalidSettings::IdleOutOfRange | InvalidSettings::IdleExceedsAbsolute => {
                "session_idle_seconds".to_owned()
            }
            InvalidSettings::AbsoluteOutOfRange => "session_absolute_seconds".to_owned(),
            InvalidSettings::TooManyOrigins => "allowed_origins".to_owned(),
            InvalidSettings::Origin { index, .. } => format!("allowed_origins[{index}]"),
            InvalidSettings::NoSignInMethod => "auth".to_owned(),
            InvalidSettings::TooManyDomains { rule } => format!("auth.{rule}.domains"),
            InvalidSettings::Domain { rule, index, .. } => {
                format!("auth.{rule}.domains[{index}]")
            }
            InvalidSettings::TooManyProviders => "auth.providers".to_owned(),
            InvalidSettings::Provider { index, field, .. } => {
                format!("auth.providers[{index}].{field}")
            }
        }
    }
}

/// Checks host settings and returns them normalized: origins serialized and de-duplicated
/// (first occurrence kept), an unset tool visibility made `PERMITTED`. Unset lifetimes stay
/// unset (the defaults apply) but are checked as their defaults.
pub fn normalize_host_settings(
    settings: &pb::HostSettings,
) -> Result<pb::HostSettings, InvalidSettings> {
    let visibility = match pb::ToolVisibility::try_from(settings.tool_visibility) {
        Ok(pb::ToolVisibility::Unspecified | pb::ToolVisibility::Permitted) => {
            pb::ToolVisibility::Permitted
        }
        Ok(pb::ToolVisibility::All) => pb::ToolVisibility::All,
        Err(_) => return Err(InvalidSettings::ToolVisibility),
    };
    let bounds = MIN_SESSION_SECONDS..=MAX_SESSION_SECONDS;
    let idle = settings
        .session_idle_seconds
        .unwrap_or(DEFAULT_SESSION_IDLE_SECONDS);
    let absolute = settings
        .session_absolute_seconds
        .unwrap_or(DEFAULT_SESSION_ABSOLUTE_SECONDS);
    if !bounds.contains(&idle) {
        return Err(InvalidSettings::IdleOutOfRange);
    }
    if !bounds.contains(&absolute) {
        return Err(InvalidSettings::AbsoluteOutOfRange);
    }
    if idle > absolute {
        return Err(InvalidSettings::IdleExceedsAbsolute);
    }
    if settings.allowed_origins.len() > MAX_ALLOWED_ORIGINS {
        return Err(InvalidSettings::TooManyOrigins);
    }
    let mut origins: Vec<String> = Vec::with_capacity(settings.allowed_origins.len());
    for (index, origin) in settings.allowed_origins.iter().enumerate() {
        let origin =
            normalize_origin(origin).map_err(|source| InvalidSettings::Origin { index, source })?;
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    Ok(pb::HostSettings {
        dynamic_mcps: settings.dynamic_mcps,
        tool_visibility: visibility as i32,
        session_idle_seconds: settings.session_idle_seconds,
        session_absolute_seconds: settings.session_absolute_seconds,
        allowed_origins: origins,
        auth: Some(normalize_auth_settings(settings.auth.as_ref())?),
    })
}

/// At most this many domains in one domain rule.
pub const MAX_RULE_DOMAINS: usize = 200;

/// Checks sign-in settings and returns them with every default made explicit (password on,
/// mailed codes and passkeys off; passkeys alone are not enough, as a passkey is registered
/// after signing in some other way) and every domain normalized (`normalize_domain`, de-duplicated).
pub fn normalize_auth_settings(
    auth: Option<&pb::HostAuthSettings>,
) -> Result<pb::HostAuthSettings, InvalidSettings> {
    let default = pb::HostAuthSettings::default();
    let auth = auth.unwrap_or(&default);
    let password = auth.password.unwrap_or(true);
    let email_otp = auth.email_otp.unwrap_or(false);
    if !password && !email_otp && auth.providers.is_empty() {
        return Err(InvalidSettings::NoSignInMethod);
    }
    let rule = |name: &'static str, rule: Option<&pb::DomainRule>| {
        rule.map(|rule| normalize_domain_rule(name, rule))
            .transpose()
    };
    if auth.providers.len() > MAX_PROVIDERS {
        return Err(InvalidSettings::TooManyProviders);
    }
    let allowed_domains = rule("allowed_domains", auth.allowed_domains.as_ref())?;
    let mut providers: Vec<pb::SignInProvider> = Vec::with_capacity(auth.providers.len());
    for (index, provider) in auth.providers.iter().enumerate() {
        let provider = normalize_provider(index, provider, allowed_domains.as_ref())?;
        let invalid = |field: String, reason: String| InvalidSettings::Provider {
            index,
            field,
            reason,
        };
        if providers.iter().any(|other| other.id == provider.id) {
            return Err(invalid(
                "id".to_owned(),
                format!("{:?} is used by another provider", provider.id),
            ));
        }
        for (at, domain) in provider.force_redirect_domains.iter().enumerate() {
            if let Some(other) = providers
                .iter()
                .find(|other| other.force_redirect_domains.contains(domain))
            {
                return Err(invalid(
                    format!("force_redirect_domains[{at}]"),
                    format!("{domain} is already forced to provider {:?}", other.id),
                ));
            }
        }
        if provider.kind == pb::SignInProviderKind::Saml as i32
            && providers
                .iter()
                .any(|other| other.kind == pb::SignInProviderKind::Saml as i32)
        {
            return Err(invalid(
                "kind".to_owned(),
                "a host has one saml provider (its assertion consumer service is per host)"
                    .to_owned(),
            ));
        }
        providers.push(provider);
    }
    Ok(pb::HostAuthSettings {
        password: Some(password),
        email_otp: Some(email_otp),
        allowed_domains,
        password_domains: rule("password_domains", auth.password_domains.as_ref())?,
        email_otp_domains: rule("email_otp_domains", auth.email_otp_domains.as_ref())?,
        providers,
        passkeys: Some(auth.passkeys.unwrap_or(false)),
        passkey_domains: rule("passkey_domains", auth.passkey_domains.as_ref())?,
    })
}

/// At most this many identity providers per host.
pub const MAX_PROVIDERS: usize = 20;

/// Checks one identity provider and returns it normalized. Its client secret must already be
/// sealed (the control plane seals it before deciding, so a recorded event never holds it
/// in plain text).
fn normalize_provider(
    index: usize,
    provider: &pb::SignInProvider,
    allowed_domains: Option<&pb::DomainRule>,
) -> Result<pb::SignInProvider, InvalidSettings> {
    use pb::SignInProviderKind as Kind;
    let invalid = |field: &str, reason: String| InvalidSettings::Provider {
        index,
        field: field.to_owned(),
        reason,
    };
    let id = provider.id.trim();
    let id_ok = (1..=32).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !id_ok {
        return Err(invalid(
            "id",
            "1 to 32 of a-z, 0-9 and '-', starting with a letter".to_owned(),
        ));
    }
    let kind = match Kind::try_from(provider.kind) {
        Ok(Kind::Unspecified) | Err(_) => {
            return Err(invalid(
                "kind",
                "one of oidc, google, microsoft, github, saml".to_owned(),
            ));
        }
        Ok(kind) => kind,
    };
    let display_name = provider.display_name.trim();
    if display_name.chars().count() > 64 || display_name.chars().any(char::is_control) {
        return Err(invalid(
            "display_name",
            "at most 64 characters, no control characters".to_owned(),
        ));
    }
    let saml = kind == Kind::Saml;
    let client_id = provider.client_id.trim();
    if !provider.client_secret.is_empty() {
        return Err(invalid(
            "client_secret",
            "must be sealed before it is recorded".to_owned(),
        ));
    }
    if saml {
        if !client_id.is_empty() || !provider.sealed_client_secret.is_empty() {
            return Err(invalid(
                "client_id",
                "saml providers have no client id or secret".to_owned(),
            ));
        }
    } else {
        if client_id.is_empty()
            || client_id.len() > 512
            || client_id.chars().any(|c| c.is_control() || c == ' ')
        {
            return Err(invalid(
                "client_id",
                "required: 1 to 512 characters without spaces or control characters".to_owned(),
            ));
        }
        if provider.sealed_client_secret.is_empty() || provider.key_id.is_empty() {
            return Err(invalid(
                "client_secret",
                "required for a new provider (or a provider whose kind changed)".to_owned(),
            ));
        }
    }
    let url = |field: &str, value: &str| -> Result<String, InvalidSettings> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(String::new());
        }
        check_provider_url(value)
            .map_err(|reason| invalid(field, reason))
            .map(|()| value.trim_end_matches('/').to_owned())
    };
    let issuer = url("issuer", &provider.issuer)?;
    let authority = url("authority", &provider.authority)?;
    let authorization_endpoint = url("authorization_endpoint", &provider.authorization_endpoint)?;
    let token_endpoint = url("token_endpoint", &provider.token_endpoint)?;
    let api_base = url("api_base", &provider.api_base)?;
    let saml_sso_url = url("saml_sso_url", &provider.saml_sso_url)?;
    let saml_entity_id = provider.saml_entity_id.trim().to_owned();
    let saml_certificates: Vec<String> = provider
        .saml_certificates
        .iter()
        .map(|certificate| certificate.trim().to_owned())
        .collect();
    if saml {
        if saml_sso_url.is_empty() {
            return Err(invalid("saml_sso_url", "required for saml".to_owned()));
        }
        if saml_entity_id.is_empty()
            || saml_entity_id.chars().count() > 1024
            || saml_entity_id.chars().any(char::is_whitespace)
        {
            return Err(invalid(
                "saml_entity_id",
                "required for saml: 1 to 1024 characters without spaces".to_owned(),
            ));
        }
        if saml_certificates.is_empty() || saml_certificates.len() > 8 {
            return Err(invalid(
                "saml_certificates",
                "saml needs 1 to 8 signing certificates: responses are never accepted unsigned"
                    .to_owned(),
            ));
        }
        if let Some(at) = saml_certificates
            .iter()
            .position(|c| c.is_empty() || c.len() > 16 * 1024)
        {
            return Err(invalid(
                &format!("saml_certificates[{at}]"),
                "a PEM or base64 DER certificate of at most 16 KiB".to_owned(),
            ));
        }
    } else {
        for (field, set) in [
            ("saml_sso_url", !saml_sso_url.is_empty()),
            ("saml_entity_id", !saml_entity_id.is_empty()),
            ("saml_certificates", !saml_certificates.is_empty()),
        ] {
            if set {
                return Err(invalid(field, "applies only to saml".to_owned()));
            }
        }
    }
    let tenant = provider.tenant.trim().to_ascii_lowercase();
    let mut allowed_tenants: Vec<String> = Vec::new();
    for (at, allowed) in provider.allowed_tenants.iter().enumerate() {
        let allowed = allowed.trim().to_ascii_lowercase();
        if !is_guid(&allowed) {
            return Err(invalid(
                &format!("allowed_tenants[{at}]"),
                "a tenant id (GUID)".to_owned(),
            ));
        }
        if !allowed_tenants.contains(&allowed) {
            allowed_tenants.push(allowed);
        }
    }
    let only_for = |field: &str, set: bool, kinds: &str| -> Result<(), InvalidSettings> {
        if set {
            Err(invalid(field, format!("applies only to {kinds}")))
        } else {
            Ok(())
        }
    };
    match kind {
        Kind::Oidc if issuer.is_empty() => {
            return Err(invalid("issuer", "required for oidc".to_owned()));
        }
        Kind::Microsoft => {
            let multi = tenant == "common" || tenant == "organizations";
            if !multi && !is_guid(&tenant) {
                return Err(invalid(
                    "tenant",
                    "required for microsoft: a tenant id (GUID), \"common\" or \"organizations\""
                        .to_owned(),
                ));
            }
            if multi && allowed_tenants.is_empty() {
                return Err(invalid(
                    "allowed_tenants",
                    format!(
                        "required with tenant {tenant:?}: list the tenant ids whose users may sign in"
                    ),
                ));
            }
            if !multi && allowed_tenants.iter().any(|allowed| *allowed != tenant) {
                return Err(invalid(
                    "allowed_tenants",
                    "with a single tenant, may only repeat that tenant".to_owned(),
                ));
            }
        }
        _ => {}
    }
    only_for(
        "issuer",
        !issuer.is_empty() && !matches!(kind, Kind::Oidc | Kind::Google),
        "oidc and google",
    )?;
    only_for(
        "tenant",
        !tenant.is_empty() && kind != Kind::Microsoft,
        "microsoft",
    )?;
    only_for(
        "allowed_tenants",
        !allowed_tenants.is_empty() && kind != Kind::Microsoft,
        "microsoft",
    )?;
    only_for(
        "authority",
        !authority.is_empty() && kind != Kind::Microsoft,
        "microsoft",
    )?;
    for (field, value) in [
        ("authorization_endpoint", &authorization_endpoint),
        ("token_endpoint", &token_endpoint),
        ("api_base", &api_base),
    ] {
        only_for(field, !value.is_empty() && kind != Kind::Github, "github")?;
    }
    let rule_name = "providers[].domains";
    let domains = provider
        .domains
        .as_ref()
        .map(|rule| normalize_domain_rule(rule_name, rule))
        .transpose()
        .map_err(|error| match error {
            InvalidSettings::Domain {
                index: at, reason, ..
            } => invalid(&format!("domains.domains[{at}]"), reason),
            _ => invalid(
                "domains.domains",
                format!("at most {MAX_RULE_DOMAINS} domains"),
            ),
        })?;
    let mut forced: Vec<String> = Vec::new();
    for (at, domain) in provider.force_redirect_domains.iter().enumerate() {
        let field = format!("force_redirect_domains[{at}]");
        let domain = normalize_domain(domain).map_err(|reason| invalid(&field, reason))?;
        let allowed =
            |rule: Option<&pb::DomainRule>| rule.is_none_or(|rule| rule_allows(rule, &domain));
        if !allowed(allowed_domains) || !allowed(domains.as_ref()) {
            return Err(invalid(
                &field,
                format!(
                    "{domain} must be allowed for this provider by auth.allowed_domains and its own domains"
                ),
            ));
        }
        if !forced.contains(&domain) {
            forced.push(domain);
        }
    }
    if forced.len() > MAX_RULE_DOMAINS {
        return Err(invalid(
            "force_redirect_domains",
            format!("at most {MAX_RULE_DOMAINS} domains"),
        ));
    }
    Ok(pb::SignInProvider {
        id: id.to_owned(),
        kind: kind as i32,
        display_name: display_name.to_owned(),
        client_id: client_id.to_owned(),
        client_secret: String::new(),
        sealed_client_secret: provider.sealed_client_secret.clone(),
        key_id: provider.key_id.clone(),
        issuer,
        tenant,
        allowed_tenants,
        authority,
        authorization_endpoint,
        token_endpoint,
        api_base,
        domains,
        force_redirect_domains: forced,
        client_secret_set: false,
        saml_sso_url,
        saml_entity_id,
        saml_certificates,
    })
}

/// Whether `domain` (normalized) matches `rule` (exactly, or below at a label boundary when
/// subdomains are included).
fn rule_allows(rule: &pb::DomainRule, domain: &str) -> bool {
    rule.domains.iter().any(|allowed| {
        domain == allowed
            || (rule.include_subdomains
                && domain
                    .strip_suffix(allowed.as_str())
                    .is_some_and(|head| head.ends_with('.') && head.len() > 1))
    })
}

/// A provider URL's form: absolute `http` or `https`, a host, no credentials, query or
/// fragment. Where it may point (https, public addresses) is the SSRF guard's call when it
/// is used.
fn check_provider_url(value: &str) -> Result<(), String> {
    if value.len() > 2048 {
        return Err("at most 2048 bytes".to_owned());
    }
    let url = url::Url::parse(value).map_err(|e| format!("not an absolute URL: {e}"))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err("must be an https URL".to_owned());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain a user name or password".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".to_owned());
    }
    Ok(())
}

/// Whether `value` is a GUID in its 8-4-4-4-12 hex form.
fn is_guid(value: &str) -> bool {
    let groups: Vec<&str> = value.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.chars().all(|c| c.is_ascii_hexdigit()))
}

fn normalize_domain_rule(
    name: &'static str,
    rule: &pb::DomainRule,
) -> Result<pb::DomainRule, InvalidSettings> {
    if rule.domains.len() > MAX_RULE_DOMAINS {
        return Err(InvalidSettings::TooManyDomains { rule: name });
    }
    let mut domains: Vec<String> = Vec::with_capacity(rule.domains.len());
    for (index, domain) in rule.domains.iter().enumerate() {
        let domain = normalize_domain(domain).map_err(|reason| InvalidSettings::Domain {
            rule: name,
            index,
            reason,
        })?;
        if !domains.contains(&domain) {
            domains.push(domain);
        }
    }
    Ok(pb::DomainRule {
        domains,
        include_subdomains: rule.include_subdomains,
    })
}

/// An email domain as rules hold it: trimmed, without a final dot, IDNA (UTS #46, STD3
/// rules) to lower-case ASCII, with at least two labels. `Err` says why not.
pub fn normalize_domain(input: &str) -> Result<String, String> {
    let trimmed = input.trim();
    let trimmed = trimmed.strip_suffix('.').unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if trimmed.contains(['@', '*', '/', ':', ' ']) {
        return Err(format!(
            "{trimmed:?} is not a domain name; write e.g. `example.com` (no `@`, wildcard, scheme or port)"
        ));
    }
    let ascii = idna::domain_to_ascii_strict(trimmed)
        .map_err(|_| format!("{trimmed:?} is not a valid domain name"))?;
    let labels: Vec<&str> = ascii.split('.').collect();
    if labels.len() < 2 || labels.iter().any(|label| label.is_empty()) {
        return Err(format!(
            "{trimmed:?} needs at least two labels, e.g. `example.com`"
        ));
    }
    if ascii.len() > 253 {
        return Err("longer than 253 characters".to_owned());
    }
    Ok(ascii)
}

#[cfg(test)]
mod tests;
