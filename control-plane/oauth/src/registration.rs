//! RFC 7591 dynamic client registration: the request as real MCP clients send it, its
//! validation, and the response.
//!
//! Accepted: `redirect_uris` (required, see `redirect`), `client_name`, `client_uri`,
//! `logo_uri` (checked, never fetched or stored), `token_endpoint_auth_method` (`none`; a
//! requested `client_secret_basic` / `client_secret_post` is replaced by `none`, which RFC 7591
//! §3.2.1 allows, since no secrets are issued), `grant_types` (must include
//! `authorization_code`; grants other than it and `refresh_token` are dropped), `response_types` (`code`), `application_type` (`native`, `web`), `scope`,
//! `software_id`, `software_version`. Unknown fields are ignored; a known field of the wrong
//! type or value is refused with `invalid_client_metadata`, a bad redirect URI with
//! `invalid_redirect_uri`, naming the field or URI.

use std::net::IpAddr;

use serde_json::{Map, Value, json};

use crate::redirect::{self, RedirectUriError};

/// Largest registration request body, bytes.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// Most redirect URIs one client may register.
pub const MAX_REDIRECT_URIS: usize = 10;
/// Longest `client_name`, characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest short text field (`software_id`, `software_version`, `scope`), characters.
pub const MAX_TEXT_CHARS: usize = 500;
/// Longest `client_uri` / `logo_uri`, bytes.
pub const MAX_URI_BYTES: usize = 2000;
/// The name given to a client that sent none.
pub const UNNAMED_CLIENT: &str = "Unnamed client";

/// Why a registration was refused. Display texts are safe to show the client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    /// A redirect URI is not acceptable (`invalid_redirect_uri`).
    #[error("redirect URI {uri:?}: {reason}")]
    InvalidRedirectUri {
        /// The URI (cut to 200 characters).
        uri: String,
        /// Why.
        reason: RedirectUriError,
    },
    /// A metadata field is not acceptable (`invalid_client_metadata`).
    #[error("{field}: {reason}")]
    InvalidClientMetadata {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The body is larger than `MAX_REQUEST_BYTES` (`invalid_client_metadata`, HTTP 413).
    #[error("the registration request is larger than {MAX_REQUEST_BYTES} bytes")]
    TooLarge,
    /// Too many registrations from this address or for this host (HTTP 429).
    #[error("too many client registrations; try again later")]
    RateLimited,
    /// The host does not exist (HTTP 404).
    #[error("not found")]
    HostNotFound,
    /// The store failed (HTTP 503).
    #[error("the authorization server is unavailable")]
    Unavailable,
}

impl RegistrationError {
    /// The RFC 7591 §3.2.2 error code.
    pub fn error_code(&self) -> &'static str {
        match self {
            RegistrationError::InvalidRedirectUri { .. } => "invalid_redirect_uri",
            RegistrationError::InvalidClientMetadata { .. } | RegistrationError::TooLarge => {
                "invalid_client_metadata"
            }
            RegistrationError::RateLimited => "slow_down",
            RegistrationError::HostNotFound => "not_found",
            RegistrationError::Unavailable => "server_error",
        }
    }

    /// The RFC 7591 error body.
    pub fn to_json(&self) -> Value {
        json!({ "error": self.error_code(), "error_description": self.to_string() })
    }

    fn metadata(field: &'static str, reason: impl Into<String>) -> Self {
        RegistrationError::InvalidClientMetadata {
            field,
            reason: reason.into(),
        }
    }
}

/// A registration request, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRegistration {
    /// Redirect URIs, each valid.
    pub redirect_uris: Vec<String>,
    /// Display name (client-supplied: untrusted, shown escaped).
    pub client_name: String,
    /// Whether the client sent a name.
    pub named: bool,
    /// The client's home page, if given (`https:` or loopback `http:`).
    pub client_uri: Option<String>,
    /// Grant types, as registered (always includes `authorization_code`).
    pub grant_types: Vec<String>,
    /// `native` or `web`, if given.
    pub application_type: Option<String>,
    /// `software_id`, if given.
    pub software_id: Option<String>,
    /// `software_version`, if given.
    pub software_version: Option<String>,
    /// The kind of client, guessed from its name and redirect URIs, for the admin's lists.
    pub agent_type: String,
}

/// Parses and validates a registration request body (JSON).
pub fn parse(body: &[u8]) -> Result<ClientRegistration, RegistrationError> {
    if body.len() > MAX_REQUEST_BYTES {
        return Err(RegistrationError::TooLarge);
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| RegistrationError::metadata("body", "is not valid JSON"))?;
    let Value::Object(fields) = value else {
        return Err(RegistrationError::metadata("body", "must be a JSON object"));
    };
    let redirect_uris = redirect_uris(&fields)?;
    let name = text(&fields, "client_name", MAX_NAME_CHARS)?.filter(|n| !n.trim().is_empty());
    if name
        .as_deref()
        .is_some_and(|n| n.chars().any(char::is_control))
    {
        return Err(RegistrationError::metadata(
            "client_name",
            "must not contain control characters",
        ));
    }
    let client_uri = web_uri(&fields, "client_uri")?;
    web_uri(&fields, "logo_uri")?;
    match text(&fields, "token_endpoint_auth_method", MAX_TEXT_CHARS)?.as_deref() {
        None | Some("none" | "client_secret_basic" | "client_secret_post") => {}
        Some(other) => {
            return Err(RegistrationError::metadata(
                "token_endpoint_auth_method",
                format!("{other:?} is not supported; use \"none\" (a public client with PKCE)"),
            ));
        }
    }
    let grant_types = match list(&fields, "grant_types")? {
        None => vec!["authorization_code".to_owned(), "refresh_token".to_owned()],
        Some(grants) => {
            if !grants.iter().any(|g| g == "authorization_code") {
                return Err(RegistrationError::metadata(
                    "grant_types",
                    "must include authorization_code",
                ));
            }
            // Grants this server does not offer (VS Code also asks for the device-code
            // grant) are dropped from the registration rather than refused (RFC 7591
            // §3.2.1 lets the server replace requested values); the response says which
            // remain.
            let mut kept: Vec<String> = Vec::new();
            for grant in ["authorization_code", "refresh_token"] {
                if grants.iter().any(|g| g == grant) {
                    kept.push(grant.to_owned());
                }
            }
            kept
        }
    };
    if let Some(types) = list(&fields, "response_types")?
        && (types.is_empty() || types.iter().any(|t| t != "code"))
    {
        return Err(RegistrationError::metadata(
            "response_types",
            "only \"code\" is supported",
        ));
    }
    let application_type = text(&fields, "application_type", MAX_TEXT_CHARS)?;
    if let Some(kind) = &application_type
        && kind != "native"
        && kind != "web"
    {
        return Err(RegistrationError::metadata(
            "application_type",
            "must be \"native\" or \"web\"",
        ));
    }
    if let Some(scope) = text(&fields, "scope", MAX_TEXT_CHARS)?
        && !crate::is_valid_scope(&scope)
    {
        return Err(RegistrationError::metadata(
            "scope",
            "is not a space-separated list of scope tokens",
        ));
    }
    let software_id = text(&fields, "software_id", MAX_TEXT_CHARS)?;
    let software_version = text(&fields, "software_version", MAX_TEXT_CHARS)?;
    let agent_type = agent_type(name.as_deref(), &redirect_uris);
    Ok(ClientRegistration {
        redirect_uris,
        named: name.is_some(),
        client_name: name.unwrap_or_else(|| UNNAMED_CLIENT.to_owned()),
        client_uri,
        grant_types,
        application_type,
        software_id,
        software_version,
        agent_type,
    })
}

/// The RFC 7591 §3.2.1 response for a registered client.
pub fn response(
    registration: &ClientRegistration,
    client_id: &str,
    issued_at_seconds: u64,
) -> Value {
    let mut body = json!({
        "client_id": client_id,
        "client_id_issued_at": issued_at_seconds,
        "redirect_uris": registration.redirect_uris,
        "token_endpoint_auth_method": "none",
        "grant_types": registration.grant_types,
        "response_types": ["code"],
        "client_name": registration.client_name,
        "scope": crate::SCOPE,
    });
    if let Some(object) = body.as_object_mut() {
        for (field, value) in [
            ("client_uri", &registration.client_uri),
            ("application_type", &registration.application_type),
            ("software_id", &registration.software_id),
            ("software_version", &registration.software_version),
        ] {
            if let Some(value) = value {
                object.insert(field.to_owned(), json!(value));
            }
        }
    }
    body
}

/// A hook the HTTP layer fills to limit registrations per client address and host (DCR is
/// unauthenticated, and every registration is an event). Returns whether to proceed.
pub trait RegistrationLimiter: Send + Sync + std::fmt::Debug {
    /// Whether a registration from `client_ip` (if known) in `host_id` may proceed now.
    fn allow(&self, host_id: &str, client_ip: Option<IpAddr>) -> bool;
}

/// No limit (the default until the HTTP layer provides one).
#[derive(Clone, Copy, Debug, Default)]
pub struct Unlimited;

impl RegistrationLimiter for Unlimited {
    fn allow(&self, _host_id: &str, _client_ip: Option<IpAddr>) -> bool {
        true
    }
}

fn redirect_uris(fields: &Map<String, Value>) -> Result<Vec<String>, RegistrationError> {
    let uris = list(fields, "redirect_uris")?
        .ok_or_else(|| RegistrationError::metadata("redirect_uris", "is required"))?;
    if uris.is_empty() {
        return Err(RegistrationError::metadata(
            "redirect_uris",
            "must list at least one URI",
        ));
    }
    if uris.len() > MAX_REDIRECT_URIS {
        return Err(RegistrationError::metadata(
            "redirect_uris",
            format!("must list at most {MAX_REDIRECT_URIS} URIs"),
        ));
    }
    // Every URI must pass: a client whose one bad URI were dropped silently would fail later,
    // at authorization, with a less helpful error.
    for uri in &uris {
        redirect::validate(uri).map_err(|reason| RegistrationError::InvalidRedirectUri {
            uri: uri.chars().take(200).collect(),
            reason,
        })?;
    }
    let mut unique = uris;
    unique.dedup();
    Ok(unique)
}

fn text(
    fields: &Map<String, Value>,
    field: &'static str,
    max_chars: usize,
) -> Result<Option<String>, RegistrationError> {
    match fields.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.chars().count() <= max_chars => Ok(Some(text.clone())),
        Some(Value::String(_)) => Err(RegistrationError::metadata(
            field,
            format!("must be at most {max_chars} characters"),
        )),
        Some(_) => Err(RegistrationError::metadata(field, "must be a string")),
    }
}

fn list(
    fields: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<Vec<String>>, RegistrationError> {
    match fields.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => Ok(text.clone()),
                _ => Err(RegistrationError::metadata(
                    field,
                    "must be an array of strings",
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(RegistrationError::metadata(
            field,
            "must be an array of strings",
        )),
    }
}

/// An informational URL: `https:`, or `http:` on loopback (local tools), nothing else.
fn web_uri(
    fields: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<String>, RegistrationError> {
    let Some(uri) = text(fields, field, MAX_URI_BYTES)?.filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    match redirect::validate(&uri) {
        Ok(redirect::RedirectKind::Https | redirect::RedirectKind::Loopback) => Ok(Some(uri)),
        _ => Err(RegistrationError::metadata(
            field,
            "must be an https URL (or http on loopback) without fragment or user information",
        )),
    }
}

/// A guess at the kind of client, for display only (never for decisions).
fn agent_type(name: Option<&str>, redirect_uris: &[String]) -> String {
    let name = name.unwrap_or_default().to_ascii_lowercase();
    let any_uri = |prefix: &str| redirect_uris.iter().any(|u| u.starts_with(prefix));
    let kind = if any_uri("cursor://") || name.contains("cursor") {
        "cursor"
    } else if any_uri("https://vscode.dev/") || name.contains("visual studio code") {
        "vscode"
    } else if name.contains("claude code") {
        "claude-code"
    } else if name.contains("mcp cli proxy") || name.contains("mcp-remote") {
        "mcp-remote"
    } else {
        "dcr"
    };
    kind.to_owned()
}

#[cfg(test)]
mod tests;
