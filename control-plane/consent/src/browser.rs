//! The browser session: a cookie holding the sealed `BrowserSession` (who is signed in,
//! whose email awaits a code, the CSRF token), so any control-plane replica serves any
//! page without a session store.
//!
//! Cookie: `__Host-portcullis` with `Secure` (plain `portcullis` without it only for a
//! plain-HTTP loopback `dev`, where browsers would drop a `Secure` cookie), `HttpOnly`,
//! `SameSite=Lax` (the consent pages are reached by a top-level navigation from the client),
//! `Path=/`, 12 hours. The session id is new at every sign-in and verification (fixation),
//! and the CSRF token with it.

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_projector::models::SignInMethod;
use portcullis_secrets::KeyRing;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;

use crate::sealed::{open_json, seal_json};

/// How long a browser session lasts, in milliseconds.
pub const SESSION_TTL_MS: i64 = 12 * 60 * 60 * 1000;

/// A browser's session with one host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrowserSession {
    /// Random id, new at every sign-in.
    pub sid: String,
    /// The host it is for.
    pub host_id: String,
    /// The signed-in human.
    pub human_id: Option<String>,
    /// The human whose email awaits a verification code.
    pub pending_human_id: Option<String>,
    /// The email the code went to (shown on the page).
    pub pending_email: Option<String>,
    /// Which code it was: `email_otp` for a sign-in code, else (absent) an email
    /// verification after a password sign-up or sign-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_method: Option<String>,
    /// The CSRF token every form carries.
    pub csrf: String,
    /// Deadline, milliseconds since the Unix epoch.
    pub expires_at_ms: i64,
}

impl BrowserSession {
    /// A new anonymous session.
    pub fn anonymous(host_id: &str, now_ms: i64) -> Self {
        Self {
            sid: random_token(),
            host_id: host_id.to_owned(),
            human_id: None,
            pending_human_id: None,
            pending_email: None,
            pending_method: None,
            csrf: random_token(),
            expires_at_ms: now_ms.saturating_add(SESSION_TTL_MS),
        }
    }

    /// The session after `human_id` signed in: new id and CSRF token.
    pub fn signed_in(&self, human_id: &str, now_ms: i64) -> Self {
        Self {
            human_id: Some(human_id.to_owned()),
            pending_human_id: None,
            pending_email: None,
            ..Self::anonymous(&self.host_id, now_ms)
        }
    }

    /// The session while `human_id` verifies `email`: new id and CSRF token, nobody signed in.
    pub fn pending(&self, human_id: &str, email: &str, now_ms: i64) -> Self {
        Self {
            pending_human_id: Some(human_id.to_owned()),
            pending_email: Some(email.to_owned()),
            ..Self::anonymous(&self.host_id, now_ms)
        }
    }

    /// A session waiting for the sign-in code (email OTP) mailed to `email`.
    pub fn pending_sign_in_code(&self, human_id: &str, email: &str, now_ms: i64) -> Self {
        Self {
            pending_method: Some(SignInMethod::EmailOtp.name().to_owned()),
            ..self.pending(human_id, email, now_ms)
        }
    }

    /// The method the pending code belongs to.
    pub fn pending_method(&self) -> SignInMethod {
        match self.pending_method.as_deref() {
            Some("email_otp") => SignInMethod::EmailOtp,
            _ => SignInMethod::Password,
        }
    }

    /// Whether `token` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, token: &str) -> bool {
        !token.is_empty() && bool::from(self.csrf.as_bytes().ct_eq(token.as_bytes()))
    }
}

/// Makes and reads the cookie.
#[derive(Clone, Debug)]
pub struct Cookies {
    ring: KeyRing,
    secure: bool,
}

fn aad(host_id: &str) -> String {
    format!("browser-session:{host_id}")
}

impl Cookies {
    /// Cookies sealed by `ring`; `secure` unless plain-HTTP loopback development.
    pub fn new(ring: KeyRing, secure: bool) -> Self {
        Self { ring, secure }
    }

    /// The cookie's name.
    pub fn name(&self) -> &'static str {
        if self.secure {
            "__Host-portcullis"
        } else {
            "portcullis"
        }
    }

    /// The live session of `host_id` in the request's cookies, if any.
    pub fn read(&self, headers: &HeaderMap, host_id: &str, now_ms: i64) -> Option<BrowserSession> {
        let value = cookie_value(headers, self.name())?;
        let session: BrowserSession = open_json(&self.ring, value, &aad(host_id)).ok()?;
        (session.host_id == host_id && session.expires_at_ms > now_ms).then_some(session)
    }

    /// The `Set-Cookie` value for `session`.
    pub fn write(&self, session: &BrowserSession) -> Option<HeaderValue> {
        let sealed = seal_json(&self.ring, session, &aad(&session.host_id)).ok()?;
        let max_age = SESSION_TTL_MS / 1000;
        let secure = if self.secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{}={sealed}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}",
            self.name()
        ))
        .ok()
    }
}

/// The value of the request's cookie `name`, if it sent one.
pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// 32 random bytes, base64url.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookies(secure: bool) -> Cookies {
        let ring = KeyRing::parse(&portcullis_secrets::generate_key_text()).expect("key");
        Cookies::new(ring, secure)
    }

    fn request_with(cookie: &HeaderValue) -> HeaderMap {
        let pair = cookie
            .to_str()
            .expect("ascii")
            .split(';')
            .next()
            .expect("pair")
            .to_owned();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {pair}")).expect("header"),
        );
        headers
    }

    #[test]
    fn the_cookie_round_trips_for_its_host_only_and_until_it_expires() {
        let cookies = cookies(true);
        let session = BrowserSession::anonymous("h1", 1_000);
        let cookie = cookies.write(&session).expect("cookie");
        let text = cookie.to_str().expect("ascii");
        assert!(text.starts_with("__Host-portcullis="), "{text}");
        for attribute in ["Path=/", "HttpOnly", "SameSite=Lax", "Secure"] {
            assert!(text.contains(attribute), "{attribute} in {text}");
        }
        let headers = request_with(&cookie);
        assert_eq!(cookies.read(&headers, "h1", 2_000), Some(session.clone()));
        assert_eq!(cookies.read(&headers, "h2", 2_000), None, "another host");
        assert_eq!(
            cookies.read(&headers, "h1", session.expires_at_ms),
            None,
            "expired"
        );
    }

    #[test]
    fn signing_in_rotates_the_session_id_and_csrf_token() {
        let anonymous = BrowserSession::anonymous("h1", 0);
        let signed_in = anonymous.signed_in("H1", 0);
        assert_ne!(anonymous.sid, signed_in.sid);
        assert_ne!(anonymous.csrf, signed_in.csrf);
        assert_eq!(signed_in.human_id.as_deref(), Some("H1"));
        assert!(signed_in.csrf_matches(&signed_in.csrf));
        assert!(!signed_in.csrf_matches(&anonymous.csrf));
        assert!(!signed_in.csrf_matches(""));
    }

    #[test]
    fn plain_http_development_cookies_are_not_secure() {
        let cookies = cookies(false);
        let cookie = cookies
            .write(&BrowserSession::anonymous("h1", 0))
            .expect("cookie");
        let text = cookie.to_str().expect("ascii");
        assert!(text.starts_with("portcullis="));
        assert!(!text.contains("Secure"));
    }
}
