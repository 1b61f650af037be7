//! `IssuerRule`: which issuer an OpenID Connect provider must present, in its discovery
//! document, in the callback's RFC 9207 `iss` and in the ID token, including Microsoft's
//! multi-tenant issuer template `{authority}/{tenantid}/v2.0`.
//!
//! Owns the issuer comparisons and the Microsoft tenant allow-list decisions. Must not do I/O
//! or verify signatures: callers hand it values from documents and verified tokens.

use crate::config::{GOOGLE_ISSUER, MicrosoftTenant, ProviderConfig, ProviderKind, is_guid};
use crate::error::IdpError;

/// Google's ID tokens may name the issuer without the scheme (Google's documentation says
/// `iss` is "accounts.google.com or https://accounts.google.com").
const GOOGLE_BARE_ISSUER: &str = "accounts.google.com";

/// The literal placeholder in Entra's multi-tenant discovery documents.
const TENANT_PLACEHOLDER: &str = "{tenantid}";

/// The issuer rule of one OpenID Connect provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum IssuerRule {
    /// Generic OIDC and Google: one issuer, compared exactly. `alias` is a second spelling the
    /// ID token may use (Google's bare host); the identity always records `issuer`.
    Exact {
        issuer: String,
        alias: Option<&'static str>,
    },
    /// Microsoft with a tenant id: `{authority}/{tenant}/v2.0`, and the token's `tid` must be
    /// that tenant.
    MicrosoftTenant { issuer: String, tenant: String },
    /// Microsoft `common` or `organizations`: the document carries the template; each token's
    /// issuer is `{authority}/{tid}/v2.0` with `tid` in `allowed`.
    MicrosoftMulti {
        authority: String,
        segment: &'static str,
        allowed: Vec<String>,
    },
}

impl IssuerRule {
    /// The rule for `config`; refuses a GitHub config (no OpenID Connect).
    pub(crate) fn for_config(config: &ProviderConfig) -> Result<Self, IdpError> {
        match config.kind {
            ProviderKind::Oidc | ProviderKind::Google => {
                let issuer = config.oidc_issuer().ok_or(IdpError::Config {
                    field: "issuer",
                    reason: "is required for OpenID Connect providers".to_owned(),
                })?;
                let alias = (config.kind == ProviderKind::Google && issuer == GOOGLE_ISSUER)
                    .then_some(GOOGLE_BARE_ISSUER);
                Ok(IssuerRule::Exact { issuer, alias })
            }
            ProviderKind::Microsoft => {
                let authority = config.microsoft_authority();
                Ok(match config.microsoft_tenant()? {
                    MicrosoftTenant::Single(tenant) => IssuerRule::MicrosoftTenant {
                        issuer: format!("{authority}/{tenant}/v2.0"),
                        tenant,
                    },
                    MicrosoftTenant::Multi(segment) => IssuerRule::MicrosoftMulti {
                        authority,
                        segment,
                        allowed: config
                            .allowed_tenants
                            .iter()
                            .map(|t| t.to_ascii_lowercase())
                            .collect(),
                    },
                })
            }
            ProviderKind::GitHub => Err(IdpError::Config {
                field: "kind",
                reason: "GitHub is not an OpenID Connect provider".to_owned(),
            }),
        }
    }

    /// Where the discovery document is.
    pub(crate) fn discovery_url(&self) -> String {
        let base = match self {
            IssuerRule::Exact { issuer, .. } | IssuerRule::MicrosoftTenant { issuer, .. } => {
                issuer.trim_end_matches('/').to_owned()
            }
            IssuerRule::MicrosoftMulti {
                authority, segment, ..
            } => format!("{authority}/{segment}/v2.0"),
        };
        format!("{base}/.well-known/openid-configuration")
    }

    /// The issuer expected in the discovery document (for multi-tenant, the template).
    pub(crate) fn expected(&self) -> String {
        match self {
            IssuerRule::Exact { issuer, .. } | IssuerRule::MicrosoftTenant { issuer, .. } => {
                issuer.clone()
            }
            IssuerRule::MicrosoftMulti { authority, .. } => {
                format!("{authority}/{TENANT_PLACEHOLDER}/v2.0")
            }
        }
    }

    /// The discovery document's `issuer` must be exactly the expected one.
    pub(crate) fn check_document(&self, found: &str) -> Result<(), IdpError> {
        let expected = self.expected();
        if found == expected {
            Ok(())
        } else {
            Err(IdpError::IssuerMismatch {
                expected,
                found: shown(found),
            })
        }
    }

    /// The callback's RFC 9207 `iss`: the issuer, or (multi-tenant) a tenant issuer of an
    /// allowed tenant.
    pub(crate) fn check_callback(&self, found: &str) -> Result<(), IdpError> {
        match self {
            IssuerRule::Exact { issuer, .. } | IssuerRule::MicrosoftTenant { issuer, .. } => {
                if found == issuer {
                    Ok(())
                } else {
                    Err(IdpError::IssuerMismatch {
                        expected: issuer.clone(),
                        found: shown(found),
                    })
                }
            }
            IssuerRule::MicrosoftMulti { .. } => {
                let tenant = self
                    .tenant_in(found)
                    .ok_or_else(|| IdpError::IssuerMismatch {
                        expected: self.expected(),
                        found: shown(found),
                    })?;
                self.check_allowed(tenant)
            }
        }
    }

    /// The ID token's `iss` (and, for Microsoft, `tid`), from a verified token. Returns the
    /// issuer the identity is recorded under.
    pub(crate) fn check_token(&self, iss: &str, tid: Option<&str>) -> Result<String, IdpError> {
        match self {
            IssuerRule::Exact { issuer, alias } => {
                if iss == issuer || alias.is_some_and(|alias| iss == alias) {
                    Ok(issuer.clone())
                } else {
                    Err(IdpError::IssuerMismatch {
                        expected: issuer.clone(),
                        found: iss.to_owned(),
                    })
                }
            }
            IssuerRule::MicrosoftTenant { issuer, tenant } => {
                let tid = tid.ok_or_else(missing_tid)?;
                if !tid.eq_ignore_ascii_case(tenant) {
                    return Err(IdpError::TenantNotAllowed {
                        tenant: printable_tenant(tid),
                    });
                }
                if iss != issuer {
                    return Err(IdpError::IssuerMismatch {
                        expected: issuer.clone(),
                        found: iss.to_owned(),
                    });
                }
                Ok(issuer.clone())
            }
            IssuerRule::MicrosoftMulti { authority, .. } => {
                let tid = tid.ok_or_else(missing_tid)?;
                self.check_allowed(tid)?;
                let expected = format!("{authority}/{tid}/v2.0");
                if iss != expected {
                    return Err(IdpError::IssuerMismatch {
                        expected,
                        found: iss.to_owned(),
                    });
                }
                Ok(expected)
            }
        }
    }

    /// The tenant id in a multi-tenant issuer `{authority}/{tid}/v2.0`, if `iss` has that form.
    fn tenant_in<'a>(&self, iss: &'a str) -> Option<&'a str> {
        let IssuerRule::MicrosoftMulti { authority, .. } = self else {
            return None;
        };
        let tenant = iss
            .strip_prefix(authority.as_str())?
            .strip_prefix('/')?
            .strip_suffix("/v2.0")?;
        is_guid(tenant).then_some(tenant)
    }

    fn check_allowed(&self, tenant: &str) -> Result<(), IdpError> {
        let allowed = match self {
            IssuerRule::MicrosoftMulti { allowed, .. } => {
                allowed.iter().any(|t| t.eq_ignore_ascii_case(tenant))
            }
            IssuerRule::MicrosoftTenant { tenant: only, .. } => only.eq_ignore_ascii_case(tenant),
            IssuerRule::Exact { .. } => true,
        };
        if allowed {
            Ok(())
        } else {
            Err(IdpError::TenantNotAllowed {
                tenant: printable_tenant(tenant),
            })
        }
    }
}

/// An issuer a provider or a callback query supplied, cleaned and cut for messages.
pub(crate) fn shown(found: &str) -> String {
    crate::error::sanitize_text(found, 200)
}

fn missing_tid() -> IdpError {
    IdpError::InvalidIdToken("the token has no tenant id (tid claim)".to_owned())
}

/// A `tid` from a token, cut and cleaned for an error message.
fn printable_tenant(tid: &str) -> String {
    crate::error::sanitize_text(tid, 64)
}

#[cfg(test)]
mod tests;
