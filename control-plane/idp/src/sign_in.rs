//! The values that cross the browser round trip of a sign-in: what `start` returns
//! (`SignInStart`, `PendingSignIn`), what the provider sends back (`Callback`), and who signed
//! in (`ExternalIdentity`).
//!
//! Owns callback parsing (a parameter given twice counts as absent), the constant-time `state`
//! comparison, and the pending sign-in's lifetime. Must not print secrets: `Debug` of
//! `PendingSignIn` and `Callback` redacts state, nonce, verifier and code.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::config::ProviderKind;
use crate::error::IdpError;

/// How long a started sign-in may take before `finish` refuses it.
pub const SIGN_IN_MAX_AGE: Duration = Duration::from_secs(10 * 60);

/// What `Idp::start` returns: where to send the browser, and what to keep until the callback.
/// `Debug` shows the URL without its query (it carries the state and nonce).
pub struct SignInStart {
    /// The provider's authorization URL, with PKCE, state (and nonce for OpenID Connect).
    pub authorization_url: String,
    /// What `Idp::finish` needs; the caller seals it (encrypted and authenticated) into a
    /// cookie or server-side session bound to this browser.
    pub pending: PendingSignIn,
}

impl fmt::Debug for SignInStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let without_query = self
            .authorization_url
            .split(['?', '#'])
            .next()
            .unwrap_or_default();
        f.debug_struct("SignInStart")
            .field("authorization_url", &format_args!("{without_query}?…"))
            .field("pending", &self.pending)
            .finish()
    }
}

/// A started sign-in, kept by the caller until the provider redirects back. It holds secrets
/// (state, PKCE verifier): persist it only sealed. `Debug` redacts them.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct PendingSignIn {
    pub(crate) kind: ProviderKind,
    /// The client id the sign-in was started with; `finish` refuses another configuration.
    pub(crate) client_id: String,
    pub(crate) state: Zeroizing<String>,
    pub(crate) nonce: Option<Zeroizing<String>>,
    pub(crate) pkce_verifier: Zeroizing<String>,
    pub(crate) redirect_uri: String,
    /// The issuer the callback's `iss` must match (for Microsoft multi-tenant, the template).
    pub(crate) issuer: String,
    /// The provider promised RFC 9207 `iss` in authorization responses.
    pub(crate) iss_required: bool,
    /// Unix seconds when the sign-in started.
    pub(crate) started_at: u64,
}

impl PendingSignIn {
    /// The kind of provider the sign-in was started with.
    pub fn kind(&self) -> ProviderKind {
        self.kind
    }

    /// The redirect URI sent to the provider (the callback must arrive there).
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Refuses a pending sign-in older than [`SIGN_IN_MAX_AGE`] (or dated in the future).
    pub(crate) fn check_age(&self, now: SystemTime) -> Result<(), IdpError> {
        let now = unix_seconds(now);
        let age = now.saturating_sub(self.started_at);
        if age > SIGN_IN_MAX_AGE.as_secs() || self.started_at > now.saturating_add(60) {
            return Err(IdpError::Expired);
        }
        Ok(())
    }

    /// Compares the callback's `state` with this one in constant time.
    pub(crate) fn check_state(&self, callback: &Callback) -> Result<(), IdpError> {
        let matches = callback.state.as_deref().is_some_and(|state| {
            !state.is_empty() && bool::from(state.as_bytes().ct_eq(self.state.as_bytes()))
        });
        if matches {
            Ok(())
        } else {
            Err(IdpError::StateMismatch)
        }
    }
}

impl fmt::Debug for PendingSignIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingSignIn")
            .field("kind", &self.kind)
            .field("client_id", &self.client_id)
            .field("state", &"redacted")
            .field("nonce", &self.nonce.as_ref().map(|_| "redacted"))
            .field("pkce_verifier", &"redacted")
            .field("redirect_uri", &self.redirect_uri)
            .field("issuer", &self.issuer)
            .field("iss_required", &self.iss_required)
            .field("started_at", &self.started_at)
            .finish()
    }
}

pub(crate) fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// The query parameters of the provider's redirect back to the gateway.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Callback {
    /// The authorization code.
    pub code: Option<String>,
    /// The echoed `state`.
    pub state: Option<String>,
    /// RFC 9207: the issuer that sent the response.
    pub iss: Option<String>,
    /// An OAuth error code, when the provider refused.
    pub error: Option<String>,
    /// The provider's text for the error (untrusted).
    pub error_description: Option<String>,
}

impl Callback {
    /// Reads the parameters from a query string (without the leading `?`). A parameter given
    /// more than once is treated as absent: which copy a provider meant is unknowable, and
    /// taking either would let an injected copy win.
    pub fn from_query(query: &str) -> Self {
        #[derive(Default)]
        enum Seen {
            #[default]
            Absent,
            Once(String),
            Repeated,
        }
        impl Seen {
            fn add(&mut self, value: String) {
                *self = match self {
                    Seen::Absent => Seen::Once(value),
                    Seen::Once(_) | Seen::Repeated => Seen::Repeated,
                };
            }
            fn value(self) -> Option<String> {
                match self {
                    Seen::Once(value) => Some(value),
                    Seen::Absent | Seen::Repeated => None,
                }
            }
        }
        let query = query.strip_prefix('?').unwrap_or(query);
        let [mut code, mut state, mut iss, mut error, mut description] =
            std::array::from_fn::<Seen, 5, _>(|_| Seen::Absent);
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let slot = match key.as_ref() {
                "code" => &mut code,
                "state" => &mut state,
                "iss" => &mut iss,
                "error" => &mut error,
                "error_description" => &mut description,
                _ => continue,
            };
            slot.add(value.into_owned());
        }
        Callback {
            code: code.value(),
            state: state.value(),
            iss: iss.value(),
            error: error.value(),
            error_description: description.value(),
        }
    }
}

impl fmt::Debug for Callback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callback")
            .field("code", &self.code.as_ref().map(|_| "redacted"))
            .field("state", &self.state.as_ref().map(|_| "redacted"))
            .field("iss", &self.iss)
            .field("error", &self.error)
            .field("error_description", &self.error_description)
            .finish()
    }
}

/// Who signed in, as the provider vouches for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalIdentity {
    /// Together with `subject`, the identity's stable key. OIDC/Google: the ID token `iss`.
    /// Microsoft: the tenant's issuer `…/{tid}/v2.0` (so the key is (tenant, oid)). GitHub:
    /// "https://github.com" (or the configured authorization endpoint's origin when
    /// overridden).
    pub issuer: String,
    /// OIDC/Google: `sub`. Microsoft: `oid` (NOT sub: sub is pairwise per app). GitHub: the
    /// numeric user id as a string.
    pub subject: String,
    /// Email addresses the provider vouches for, best first, exactly as given (the caller
    /// normalizes). OIDC/Google: [email] only if `email_verified` is true (missing or "false"
    /// or non-boolean ⇒ not verified). Microsoft: [email] only if `xms_edov` is true (nOAuth
    /// defence; `email_verified` is not sent by Entra). GitHub: from GET /user/emails, entries
    /// with verified==true, primary first, never `*@users.noreply.github.com`.
    pub verified_emails: Vec<String>,
    /// An address the provider gave but did not vouch for (for a clear refusal message).
    pub unverified_email: Option<String>,
    /// The human's name as the provider has it, for display only.
    pub display_name: Option<String>,
}

#[cfg(test)]
mod tests;
