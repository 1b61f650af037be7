//! `ProviderConfig`: one external identity provider as an admin configured it, its checks,
//! and the defaults of the Google, Microsoft and GitHub presets.
//!
//! Owns the field-level validation (URL syntax, Microsoft tenant rules, fields that do not
//! apply to a kind) and the effective endpoints after defaults. Must not do I/O, and must not
//! print the client secret (`Debug` redacts it).

use std::fmt;

use portcullis_upstream::UrlPolicy;
use portcullis_upstream::url_guard::MAX_URL_LEN;
use url::Url;
use zeroize::Zeroizing;

use crate::error::IdpError;

/// Google's issuer, the default of the Google preset.
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";
/// Microsoft Entra ID's authority, the default of the Microsoft preset.
pub const MICROSOFT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// GitHub's authorization endpoint, the default of the GitHub preset.
pub const GITHUB_AUTHORIZATION_ENDPOINT: &str = "https://github.com/login/oauth/authorize";
/// GitHub's token endpoint, the default of the GitHub preset.
pub const GITHUB_TOKEN_ENDPOINT: &str = "https://github.com/login/oauth/access_token";
/// GitHub's REST API base, the default of the GitHub preset.
pub const GITHUB_API_BASE: &str = "https://api.github.com";

/// Which kind of provider, and so which rules apply to its answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Any OpenID Connect provider, found by discovery from its issuer.
    Oidc,
    /// Google: OpenID Connect with Google's issuer by default.
    Google,
    /// Microsoft Entra ID: OpenID Connect with tenant rules; identities keyed by (tid, oid).
    Microsoft,
    /// GitHub: OAuth 2.0 plus the REST API (`/user`, `/user/emails`); no OpenID Connect.
    GitHub,
}

impl ProviderKind {
    /// Whether sign-in uses OpenID Connect (discovery, ID token, nonce).
    pub fn is_oidc(self) -> bool {
        !matches!(self, ProviderKind::GitHub)
    }

    fn name(self) -> &'static str {
        match self {
            ProviderKind::Oidc => "OpenID Connect",
            ProviderKind::Google => "Google",
            ProviderKind::Microsoft => "Microsoft",
            ProviderKind::GitHub => "GitHub",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One external identity provider the gateway signs humans in with.
#[derive(Clone)]
pub struct ProviderConfig {
    /// Which preset and rules apply.
    pub kind: ProviderKind,
    /// The gateway's client id at the provider.
    pub client_id: String,
    /// The gateway's client secret at the provider (wiped from memory when dropped).
    pub client_secret: Zeroizing<String>,
    /// Oidc: the issuer (required). Google: overrides https://accounts.google.com. Others: None.
    pub issuer: Option<String>,
    /// Microsoft: a tenant GUID, "common" or "organizations".
    pub tenant: Option<String>,
    /// Microsoft: the tenant GUIDs accepted. Required (non-empty) for common/organizations;
    /// for a GUID tenant it must be empty or exactly that GUID.
    pub allowed_tenants: Vec<String>,
    /// Microsoft: overrides https://login.microsoftonline.com (tests point it at a local peer).
    pub authority: Option<String>,
    /// GitHub: overrides https://github.com/login/oauth/authorize.
    pub authorization_endpoint: Option<String>,
    /// GitHub: overrides https://github.com/login/oauth/access_token.
    pub token_endpoint: Option<String>,
    /// GitHub: overrides https://api.github.com.
    pub api_base: Option<String>,
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("kind", &self.kind)
            .field("client_id", &self.client_id)
            .field("client_secret", &"redacted")
            .field("issuer", &self.issuer)
            .field("tenant", &self.tenant)
            .field("allowed_tenants", &self.allowed_tenants)
            .field("authority", &self.authority)
            .field("authorization_endpoint", &self.authorization_endpoint)
            .field("token_endpoint", &self.token_endpoint)
            .field("api_base", &self.api_base)
            .finish()
    }
}

/// What a Microsoft `tenant` setting means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum MicrosoftTenant {
    /// One tenant, by its id (lowercased).
    Single(String),
    /// `common` or `organizations`: many tenants, restricted by `allowed_tenants`.
    Multi(&'static str),
}

impl ProviderConfig {
    /// Checks every field that does not depend on the deployment's URL policy: required fields,
    /// fields that do not apply to the kind, URL syntax (absolute http(s), no credentials, no
    /// fragment; no query where an identifier is expected) and the Microsoft tenant rules.
    /// [`ProviderConfig::check_for`] adds the policy's rules (https outside development).
    pub fn check(&self) -> Result<(), IdpError> {
        let config = |field: &'static str, reason: &str| IdpError::Config {
            field,
            reason: reason.to_owned(),
        };
        if self.client_id.trim().is_empty() {
            return Err(config("client_id", "is required"));
        }
        if self.client_id.chars().any(char::is_control) || self.client_id.len() > 512 {
            return Err(config(
                "client_id",
                "must be at most 512 characters without control characters",
            ));
        }
        if self.client_secret.is_empty() {
            return Err(config("client_secret", "is required"));
        }
        let unused = |field: &'static str, set: bool| {
            if set {
                Err(IdpError::Config {
                    field,
                    reason: format!("is not used by {} providers", self.kind),
                })
            } else {
                Ok(())
            }
        };
        let microsoft = self.kind == ProviderKind::Microsoft;
        let github = self.kind == ProviderKind::GitHub;
        unused("issuer", self.issuer.is_some() && (microsoft || github))?;
        unused("tenant", self.tenant.is_some() && !microsoft)?;
        unused(
            "allowed_tenants",
            !self.allowed_tenants.is_empty() && !microsoft,
        )?;
        unused("authority", self.authority.is_some() && !microsoft)?;
        unused(
            "authorization_endpoint",
            self.authorization_endpoint.is_some() && !github,
        )?;
        unused("token_endpoint", self.token_endpoint.is_some() && !github)?;
        unused("api_base", self.api_base.is_some() && !github)?;

        match self.kind {
            ProviderKind::Oidc => {
                let issuer = self
                    .issuer
                    .as_deref()
                    .ok_or_else(|| config("issuer", "is required for OpenID Connect providers"))?;
                check_url("issuer", issuer, UrlShape::Identifier)?;
            }
            ProviderKind::Google => {
                if let Some(issuer) = &self.issuer {
                    check_url("issuer", issuer, UrlShape::Identifier)?;
                }
            }
            ProviderKind::Microsoft => {
                if let Some(authority) = &self.authority {
                    check_url("authority", authority, UrlShape::Identifier)?;
                }
                self.microsoft_tenant()?;
            }
            ProviderKind::GitHub => {
                if let Some(url) = &self.authorization_endpoint {
                    check_url("authorization_endpoint", url, UrlShape::Endpoint)?;
                }
                if let Some(url) = &self.token_endpoint {
                    check_url("token_endpoint", url, UrlShape::Endpoint)?;
                }
                if let Some(url) = &self.api_base {
                    check_url("api_base", url, UrlShape::Identifier)?;
                }
            }
        }
        Ok(())
    }

    /// [`ProviderConfig::check`] plus the URL policy's rules for every configured or default
    /// URL: https is required unless the policy allows private destinations (development), and
    /// an IP-literal host must be an allowed address. Names are resolved and checked later, at
    /// connection time.
    pub fn check_for(&self, policy: UrlPolicy) -> Result<(), IdpError> {
        self.check()?;
        let urls: Vec<(&'static str, String)> = match self.kind {
            ProviderKind::Oidc | ProviderKind::Google => {
                vec![("issuer", self.oidc_issuer().unwrap_or_default())]
            }
            ProviderKind::Microsoft => vec![("authority", self.microsoft_authority())],
            ProviderKind::GitHub => vec![
                (
                    "authorization_endpoint",
                    self.github_authorization_endpoint().to_owned(),
                ),
                ("token_endpoint", self.github_token_endpoint().to_owned()),
                ("api_base", self.github_api_base()),
            ],
        };
        for (field, url) in urls {
            policy
                .check_syntax(&url)
                .map_err(|rejected| IdpError::Config {
                    field,
                    reason: rejected.to_string(),
                })?;
        }
        Ok(())
    }

    /// The issuer of an OpenID Connect or Google provider (Google's default applied).
    pub(crate) fn oidc_issuer(&self) -> Option<String> {
        match self.kind {
            ProviderKind::Oidc => self.issuer.clone(),
            ProviderKind::Google => Some(
                self.issuer
                    .clone()
                    .unwrap_or_else(|| GOOGLE_ISSUER.to_owned()),
            ),
            ProviderKind::Microsoft | ProviderKind::GitHub => None,
        }
    }

    /// The Microsoft authority without a trailing slash (default applied).
    pub(crate) fn microsoft_authority(&self) -> String {
        self.authority
            .as_deref()
            .unwrap_or(MICROSOFT_AUTHORITY)
            .trim_end_matches('/')
            .to_owned()
    }

    /// The Microsoft tenant setting, checked against the tenant rules.
    pub(crate) fn microsoft_tenant(&self) -> Result<MicrosoftTenant, IdpError> {
        let config = |field: &'static str, reason: String| IdpError::Config { field, reason };
        let tenant = self.tenant.as_deref().ok_or_else(|| {
            config(
                "tenant",
                "is required for Microsoft: a tenant id (GUID), \"common\" or \"organizations\""
                    .to_owned(),
            )
        })?;
        for allowed in &self.allowed_tenants {
            if !is_guid(allowed) {
                return Err(config(
                    "allowed_tenants",
                    format!("{allowed:?} is not a tenant id (a GUID)"),
                ));
            }
        }
        let multi = match tenant {
            "common" => Some("common"),
            "organizations" => Some("organizations"),
            _ => None,
        };
        if let Some(segment) = multi {
            if self.allowed_tenants.is_empty() {
                return Err(config(
                    "allowed_tenants",
                    format!(
                        "must list the tenant ids that may sign in when the tenant is \"{segment}\""
                    ),
                ));
            }
            return Ok(MicrosoftTenant::Multi(segment));
        }
        if !is_guid(tenant) {
            return Err(config(
                "tenant",
                format!(
                    "{tenant:?} is not a tenant id (a GUID), \"common\" or \"organizations\" \
                     (personal Microsoft accounts are not supported)"
                ),
            ));
        }
        let only_itself = match self.allowed_tenants.as_slice() {
            [] => true,
            [one] => one.eq_ignore_ascii_case(tenant),
            _ => false,
        };
        if !only_itself {
            return Err(config(
                "allowed_tenants",
                "must be empty or exactly the configured tenant when the tenant is a tenant id"
                    .to_owned(),
            ));
        }
        Ok(MicrosoftTenant::Single(tenant.to_ascii_lowercase()))
    }

    pub(crate) fn github_authorization_endpoint(&self) -> &str {
        self.authorization_endpoint
            .as_deref()
            .unwrap_or(GITHUB_AUTHORIZATION_ENDPOINT)
    }

    pub(crate) fn github_token_endpoint(&self) -> &str {
        self.token_endpoint
            .as_deref()
            .unwrap_or(GITHUB_TOKEN_ENDPOINT)
    }

    /// The API base without a trailing slash.
    pub(crate) fn github_api_base(&self) -> String {
        self.api_base
            .as_deref()
            .unwrap_or(GITHUB_API_BASE)
            .trim_end_matches('/')
            .to_owned()
    }
}

/// What kind of URL a field holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum UrlShape {
    /// An identifier or base (issuer, authority, API base): no query either.
    Identifier,
    /// An endpoint, which may carry a query (RFC 6749 section 3.1).
    Endpoint,
}

fn check_url(field: &'static str, value: &str, shape: UrlShape) -> Result<(), IdpError> {
    let bad = |reason: String| IdpError::Config { field, reason };
    if value.len() > MAX_URL_LEN {
        return Err(bad(format!("is longer than {MAX_URL_LEN} bytes")));
    }
    if value.trim() != value || value.is_empty() {
        return Err(bad("must be a URL without surrounding spaces".to_owned()));
    }
    let url =
        Url::parse(value).map_err(|error| bad(format!("is not an absolute URL ({error})")))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(bad("must be an http(s) URL".to_owned()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not contain a user name or password".to_owned()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host".to_owned()));
    }
    if url.fragment().is_some() {
        return Err(bad("must not have a fragment (#…)".to_owned()));
    }
    if shape == UrlShape::Identifier && url.query().is_some() {
        return Err(bad("must not have a query (?…)".to_owned()));
    }
    Ok(())
}

/// A GUID in its usual text form, `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (hex, any case).
pub(crate) fn is_guid(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests;
