//! Passkeys (WebAuthn, webauthn-rs) on the consent pages: a signed-in human registers one,
//! and later signs in with it, email first. The relying party id is the host's own domain
//! (from its base URL) and the only accepted origin is that base URL, so a passkey made for
//! one host never signs in at another.
//!
//! The browser half is `static/passkey.js` (served at `/consent/passkey.js`; the pages' CSP
//! allows scripts and `fetch` from the host itself only): it asks for options, calls
//! `navigator.credentials.create`/`get`, and posts the result.
//!
//! A ceremony's state travels sealed (host-bound, tied to the browser session that started
//! it, 5 minutes) and is spent exactly once: finishing records its id in the code ledger
//! (`CodeLedger::redeem`, compare-and-set), so a replayed answer is refused even on another
//! replica. Sign-in options for an address without passkeys (or unknown) are a decoy of the
//! same shape, with credential ids derived from the address under a key-ring MAC, so the
//! answer does not tell whether the address has an account or a passkey. Domain rules are
//! checked on the address before anything else and again, on the account's verified address,
//! when the sign-in finishes.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use portcullis_domain::human::{HumanCommand, HumanRejected};
use portcullis_domain::validate::normalize_email;
use portcullis_oauth::code::{CodeGrant, Redemption};
use portcullis_projector::models::SignInMethod;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use webauthn_rs::prelude::{
    Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
};

use crate::accounts::human_context;
use crate::consent::{Posted, admit_post, domain_refused, method_off};
use crate::limits::Action;
use crate::sealed::{open_json, seal_json};
use crate::{HostContext, Inner, client_ip, now_ms};

/// How long a ceremony may take.
const CEREMONY_TTL_MS: i64 = 5 * 60 * 1000;
/// Largest JSON body a passkey route reads.
const MAX_JSON_BYTES: usize = 16 * 1024;

/// The browser half, served as a file so the pages need no inline script.
const SCRIPT: &str = include_str!("../static/passkey.js");

/// `GET /consent/passkey.js`.
pub(crate) async fn script() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        SCRIPT,
    )
        .into_response()
}

/// What a ceremony waits for, sealed in its `ceremony` token.
#[derive(Serialize, Deserialize)]
struct Ceremony {
    host_id: String,
    /// The browser session that started it.
    sid: String,
    /// Random id: the key that spends it in the ledger.
    id: String,
    expires_at_ms: i64,
    step: Step,
}

#[derive(Serialize, Deserialize)]
enum Step {
    Register {
        human_id: String,
        state: PasskeyRegistration,
    },
    SignIn {
        human_id: String,
        state: PasskeyAuthentication,
    },
    /// Options for an address without passkeys: nothing can finish it.
    Decoy,
}

fn ceremony_aad(host_id: &str) -> String {
    format!("passkey-ceremony:{host_id}")
}

/// A JSON answer with `status`.
fn answer(status: StatusCode, body: Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn problem(status: StatusCode, message: &str) -> Response {
    answer(status, json!({ "ok": false, "error": message }))
}

fn unavailable() -> Response {
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "The gateway could not complete this step. Wait a moment and try again.",
    )
}

/// The relying party of `host`: id = the host's domain, origin = its base URL.
fn relying_party(host: &HostContext) -> Option<Webauthn> {
    let origin = Url::parse(&host.base).ok()?;
    let rp_id = origin.host_str()?.to_owned();
    WebauthnBuilder::new(&rp_id, &origin)
        .and_then(|builder| builder.rp_name("Portcullis").build())
        .map_err(|error| {
            tracing::warn!(host_id = %host.host_id, %error, "No WebAuthn relying party for the host.");
        })
        .ok()
}

/// The WebAuthn user handle of a human: stable, opaque, not the email.
fn user_handle(host_id: &str, human_id: &str) -> Uuid {
    let digest = Sha256::digest(format!("passkey-user:{host_id}:{human_id}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
}

#[derive(Deserialize)]
pub(crate) struct StartBody {
    #[serde(default)]
    flow: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
}

#[derive(Deserialize)]
pub(crate) struct FinishBody {
    #[serde(default)]
    flow: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    ceremony: String,
    credential: Value,
}

/// Reads a JSON body (at most `MAX_JSON_BYTES`) with the headers and the client's address.
async fn read_json<T: serde::de::DeserializeOwned>(
    request: axum::http::Request<axum::body::Body>,
) -> Result<(Option<std::net::IpAddr>, HeaderMap, T), Response> {
    let ip = client_ip(request.extensions());
    let headers = request.headers().clone();
    let bytes = axum::body::to_bytes(request.into_body(), MAX_JSON_BYTES)
        .await
        .map_err(|_| problem(StatusCode::PAYLOAD_TOO_LARGE, "The request is too large."))?;
    let body = serde_json::from_slice(&bytes)
        .map_err(|_| problem(StatusCode::BAD_REQUEST, "The request could not be read."))?;
    Ok((ip, headers, body))
}

/// `admit_post`'s checks (Origin, cookie, CSRF, flow), answered as JSON.
async fn admit(
    inner: &Inner,
    headers: &HeaderMap,
    flow: &str,
    csrf: &str,
) -> Result<Posted, Response> {
    admit_post(inner, headers, flow, csrf)
        .await
        .map_err(|page| {
            let status = page.status();
            problem(
                status,
                "This page has expired or was not sent from this gateway. Reload it and try again.",
            )
        })
}

/// Seals `step` as a new ceremony of `posted`'s browser session.
fn seal_ceremony(inner: &Inner, posted: &Posted, step: Step) -> Option<String> {
    let ceremony = Ceremony {
        host_id: posted.host.host_id.clone(),
        sid: posted.session.sid.clone(),
        id: crate::browser::random_token(),
        expires_at_ms: now_ms().saturating_add(CEREMONY_TTL_MS),
        step,
    };
    seal_json(
        &inner.config.key_ring,
        &ceremony,
        &ceremony_aad(&posted.host.host_id),
    )
    .ok()
}

/// Opens a ceremony of `posted`'s browser session and spends it; `Err` is the answer.
async fn spend_ceremony(inner: &Inner, posted: &Posted, text: &str) -> Result<Ceremony, Response> {
    let now = now_ms();
    let expired = || {
        problem(
            StatusCode::BAD_REQUEST,
            "This passkey request has expired or was already used. Try again.",
        )
    };
    let ceremony: Ceremony = open_json(
        &inner.config.key_ring,
        text,
        &ceremony_aad(&posted.host.host_id),
    )
    .map_err(|_| expired())?;
    if ceremony.host_id != posted.host.host_id
        || ceremony.sid != posted.session.sid
        || ceremony.expires_at_ms <= now
    {
        return Err(expired());
    }
    let key = hex(&Sha256::digest(format!("passkey-ceremony:{}", ceremony.id)));
    let spent = CodeGrant {
        host_id: posted.host.host_id.clone(),
        client_id: "passkey".to_owned(),
        redirect_uri: String::new(),
        code_challenge: String::new(),
        resource: String::new(),
        scope: String::new(),
        session_id: String::new(),
        human_id: String::new(),
        expires_at_ms: ceremony.expires_at_ms,
    };
    match inner
        .codes
        .redeem(&posted.host.host_id, &key, &spent, now)
        .await
    {
        Ok(Redemption::First) => Ok(ceremony),
        Ok(Redemption::Again) => Err(expired()),
        Err(error) => {
            tracing::warn!(%error, "Passkey ceremony not recorded.");
            Err(unavailable())
        }
    }
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The human's stored passkeys, decoded.
fn passkeys_of(account: &portcullis_domain::human::Account) -> Vec<Passkey> {
    account
        .passkeys
        .iter()
        .filter_map(|stored| serde_json::from_str(&stored.passkey_json).ok())
        .collect()
}

/// `POST /consent/passkey/register/start`: options for a new passkey of the signed-in human.
pub(crate) async fn register_start(
    State(inner): State<Arc<Inner>>,
    request: axum::http::Request<axum::body::Body>,
) -> Response {
    let (_, headers, body) = match read_json::<StartBody>(request).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    let posted = match admit(&inner, &headers, &body.flow, &body.csrf).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    if !posted.host.auth.passkeys {
        return problem(StatusCode::FORBIDDEN, method_off(SignInMethod::Passkey));
    }
    let Some(human_id) = posted.session.human_id.clone() else {
        return problem(StatusCode::UNAUTHORIZED, "Sign in first.");
    };
    let account = match inner.control.account(&posted.host.host_id, &human_id).await {
        Ok(Some(account)) if account.account.email_verified => account,
        Ok(_) => return problem(StatusCode::UNAUTHORIZED, "Sign in first."),
        Err(error) => {
            tracing::warn!(%error, "Account not read.");
            return unavailable();
        }
    };
    let Some(rp) = relying_party(&posted.host) else {
        return unavailable();
    };
    let existing: Vec<_> = passkeys_of(&account.account)
        .iter()
        .map(|passkey| passkey.cred_id().clone())
        .collect();
    let (options, state) = match rp.start_passkey_registration(
        user_handle(&posted.host.host_id, &human_id),
        &account.email,
        &account.email,
        Some(existing),
    ) {
        Ok(started) => started,
        Err(error) => {
            tracing::warn!(%error, "Passkey registration could not start.");
            return unavailable();
        }
    };
    match seal_ceremony(&inner, &posted, Step::Register { human_id, state }) {
        Some(ceremony) => answer(
            StatusCode::OK,
            json!({ "ok": true, "options": options, "ceremony": ceremony }),
        ),
        None => unavailable(),
    }
}

/// `POST /consent/passkey/register/finish`: checks the new credential and records it.
pub(crate) async fn register_finish(
    State(inner): State<Arc<Inner>>,
    request: axum::http::Request<axum::body::Body>,
) -> Response {
    let (_, headers, body) = match read_json::<FinishBody>(request).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    let posted = match admit(&inner, &headers, &body.flow, &body.csrf).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    let ceremony = match spend_ceremony(&inner, &posted, &body.ceremony).await {
        Ok(ceremony) => ceremony,
        Err(response) => return response,
    };
    let Step::Register { human_id, state } = ceremony.step else {
        return problem(StatusCode::BAD_REQUEST, "This is not a registration.");
    };
    if posted.session.human_id.as_deref() != Some(human_id.as_str()) {
        return problem(StatusCode::UNAUTHORIZED, "Sign in first.");
    }
    let Ok(credential) = serde_json::from_value::<RegisterPublicKeyCredential>(body.credential)
    else {
        return problem(
            StatusCode::BAD_REQUEST,
            "The passkey answer could not be read.",
        );
    };
    let Some(rp) = relying_party(&posted.host) else {
        return unavailable();
    };
    let passkey = match rp.finish_passkey_registration(&credential, &state) {
        Ok(passkey) => passkey,
        Err(error) => {
            tracing::info!(host_id = %posted.host.host_id, %error, "Passkey registration refused.");
            return problem(
                StatusCode::BAD_REQUEST,
                "The passkey could not be verified. Try again.",
            );
        }
    };
    let Ok(passkey_json) = serde_json::to_string(&passkey) else {
        return unavailable();
    };
    let command = HumanCommand::RegisterPasskey {
        credential_id: passkey.cred_id().to_vec(),
        passkey_json,
    };
    match inner
        .control
        .account_command(
            &human_context(&human_id),
            &posted.host.host_id,
            &human_id,
            &command,
        )
        .await
    {
        Ok(Ok(_)) => {
            tracing::info!(host_id = %posted.host.host_id, %human_id, "Passkey registered.");
            answer(StatusCode::OK, json!({ "ok": true }))
        }
        Ok(Err(HumanRejected::PasskeyExists)) => {
            problem(StatusCode::CONFLICT, "This passkey is registered already.")
        }
        Ok(Err(HumanRejected::TooManyPasskeys)) => problem(
            StatusCode::CONFLICT,
            "You have the most passkeys allowed; this one was not added.",
        ),
        Ok(Err(_)) => problem(StatusCode::UNAUTHORIZED, "Sign in first."),
        Err(error) => {
            tracing::warn!(%error, "Passkey not recorded.");
            unavailable()
        }
    }
}

/// `POST /consent/passkey/sign-in/start`: options for signing in as `email`.
pub(crate) async fn sign_in_start(
    State(inner): State<Arc<Inner>>,
    request: axum::http::Request<axum::body::Body>,
) -> Response {
    let (ip, headers, body) = match read_json::<StartBody>(request).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    let posted = match admit(&inner, &headers, &body.flow, &body.csrf).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    let host_id = posted.host.host_id.clone();
    let auth = &posted.host.auth;
    if !auth.passkeys {
        return problem(StatusCode::FORBIDDEN, method_off(SignInMethod::Passkey));
    }
    let Ok(email) = normalize_email(&body.email) else {
        return problem(StatusCode::BAD_REQUEST, "Enter a valid email address.");
    };
    if let Some(forced) = auth.forced_provider(&email) {
        // The domain belongs to an identity provider: the page goes there instead.
        return answer(
            StatusCode::OK,
            json!({ "ok": false, "provider": forced.id, "error": "This email signs in with single sign-on." }),
        );
    }
    if !auth.allows(SignInMethod::Passkey, &email) {
        return problem(StatusCode::FORBIDDEN, domain_refused(SignInMethod::Passkey));
    }
    if !inner.limits.allow(Action::SignIn, &host_id, ip)
        || !inner.limits.allow_sign_in_email(&host_id, &email)
    {
        return problem(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many sign-in attempts. Wait a minute and try again.",
        );
    }
    let Some(rp) = relying_party(&posted.host) else {
        return unavailable();
    };
    let account = match inner.control.account_by_email(&host_id, &email).await {
        Ok(account) => account.filter(|account| account.account.email_verified),
        Err(error) => {
            tracing::warn!(%error, "Account not read.");
            return unavailable();
        }
    };
    let passkeys = account
        .as_ref()
        .map(|account| passkeys_of(&account.account))
        .unwrap_or_default();
    let (options, step) = match (account, passkeys.is_empty()) {
        (Some(account), false) => match rp.start_passkey_authentication(&passkeys) {
            Ok((options, state)) => match serde_json::to_value(options) {
                Ok(options) => (
                    options,
                    Step::SignIn {
                        human_id: account.human_id,
                        state,
                    },
                ),
                Err(_) => return unavailable(),
            },
            Err(error) => {
                tracing::warn!(%error, "Passkey sign-in could not start.");
                return unavailable();
            }
        },
        _ => match decoy_options(&inner, &posted.host, &email) {
            Some(options) => (options, Step::Decoy),
            None => return unavailable(),
        },
    };
    match seal_ceremony(&inner, &posted, step) {
        Some(ceremony) => answer(
            StatusCode::OK,
            json!({ "ok": true, "options": options, "ceremony": ceremony }),
        ),
        None => unavailable(),
    }
}

/// Sign-in options shaped like real ones for an address without passkeys: a fresh
/// challenge, and credential ids derived from the address (the same on every request, as a
/// real account's would be) under a key-ring MAC.
fn decoy_options(inner: &Inner, host: &HostContext, email: &str) -> Option<Value> {
    use webauthn_rs::fake::{FakePasskeyDistribution, WebauthnFakeCredentialGenerator};
    let url = Url::parse(&host.base).ok()?;
    let rp_id = url.host_str()?;
    let key = inner
        .config
        .key_ring
        .mac(
            format!("passkey-decoy:{}", host.host_id).as_bytes(),
            b"credential-ids",
        )
        .ok()?;
    let key = Sha256::digest(&key);
    let generator = WebauthnFakeCredentialGenerator::<FakePasskeyDistribution>::new(&key).ok()?;
    let mut ids: Vec<Vec<u8>> = generator
        .generate(email.as_bytes())
        .ok()?
        .into_iter()
        .map(|id| id.to_vec())
        .collect();
    // The distribution may draw no credential for an address; an account with passkeys has
    // at least one, so the decoy does too (derived the same way, so it never changes).
    if ids.is_empty() {
        ids.push(Sha256::digest([key.as_slice(), email.as_bytes()].concat()).to_vec());
    }
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut challenge = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut challenge);
    Some(json!({
        "publicKey": {
            "challenge": b64.encode(challenge),
            "timeout": 300000,
            "rpId": rp_id,
            "allowCredentials": ids.iter().map(|id| json!({
                "type": "public-key",
                "id": b64.encode(id),
            })).collect::<Vec<_>>(),
            "userVerification": "required",
        }
    }))
}

/// `POST /consent/passkey/sign-in/finish`: checks the assertion and signs the human in.
pub(crate) async fn sign_in_finish(
    State(inner): State<Arc<Inner>>,
    request: axum::http::Request<axum::body::Body>,
) -> Response {
    let (_, headers, body) = match read_json::<FinishBody>(request).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    let posted = match admit(&inner, &headers, &body.flow, &body.csrf).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    let host_id = posted.host.host_id.clone();
    let refused = || {
        problem(
            StatusCode::UNAUTHORIZED,
            "That passkey did not sign you in. Try again, or use another way to sign in.",
        )
    };
    let ceremony = match spend_ceremony(&inner, &posted, &body.ceremony).await {
        Ok(ceremony) => ceremony,
        Err(response) => return response,
    };
    let (human_id, state) = match ceremony.step {
        Step::SignIn { human_id, state } => (human_id, state),
        Step::Decoy | Step::Register { .. } => return refused(),
    };
    let Ok(credential) = serde_json::from_value::<PublicKeyCredential>(body.credential) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "The passkey answer could not be read.",
        );
    };
    let Some(rp) = relying_party(&posted.host) else {
        return unavailable();
    };
    let result = match rp.finish_passkey_authentication(&credential, &state) {
        Ok(result) => result,
        Err(error) => {
            tracing::info!(%host_id, %error, "Passkey sign-in refused.");
            return refused();
        }
    };
    let account = match inner.control.account(&host_id, &human_id).await {
        Ok(Some(account)) if account.account.email_verified => account,
        Ok(_) => return refused(),
        Err(error) => {
            tracing::warn!(%error, "Account not read.");
            return unavailable();
        }
    };
    // The rules as they are now, on the account's verified address.
    let auth = &posted.host.auth;
    if !auth.allows(SignInMethod::Passkey, &account.email) {
        return problem(StatusCode::FORBIDDEN, domain_refused(SignInMethod::Passkey));
    }
    let Some(mut passkey) = passkeys_of(&account.account)
        .into_iter()
        .find(|passkey| passkey.cred_id() == result.cred_id())
    else {
        return refused();
    };
    passkey.update_credential(&result);
    let Ok(passkey_json) = serde_json::to_string(&passkey) else {
        return unavailable();
    };
    let command = HumanCommand::UsePasskey {
        credential_id: passkey.cred_id().to_vec(),
        passkey_json,
    };
    match inner
        .control
        .account_command(&human_context(&human_id), &host_id, &human_id, &command)
        .await
    {
        Ok(Ok(_)) => {}
        Ok(Err(_)) => return refused(),
        Err(error) => {
            tracing::warn!(%error, "Passkey use not recorded.");
            return unavailable();
        }
    }
    tracing::info!(%host_id, %human_id, "Signed in with a passkey.");
    let session = posted.session.signed_in(&human_id, now_ms());
    let mut response = answer(
        StatusCode::OK,
        json!({ "ok": true, "redirect": format!("/consent?flow={}", body.flow) }),
    );
    match inner.cookies.write(&session) {
        Some(cookie) => {
            response.headers_mut().append(header::SET_COOKIE, cookie);
            response
        }
        None => unavailable(),
    }
}
