//! Host token-signing keys: every live host has one, generated here and recorded sealed.
//!
//! `ensure_signing_key` is idempotent and crash-safe: it adds a key only when the host has
//! none, and a racing second caller's key (a different kid) is simply a second valid key.
//!
//! Rotation keeps `kid` overlap: `rotate_signing_key` adds a key that signs from then on,
//! while the older keys stay in the JWKS and keep verifying the tokens they signed.
//! `retire_signing_key` takes an older key out; tokens it signed are refused at once, so it
//! waits until the newest key has signed for a whole access-token lifetime unless forced (a
//! compromised key is retired at once, and its tokens with it).

use portcullis_domain::host::{Host, HostCommand, HostRejected};
use portcullis_projector::models::PublicSigningKey;
use portcullis_proto::events::v1::HostSigningKeyAdded;
use portcullis_proto::subjects;
use portcullis_tokens::access::ACCESS_TOKEN_TTL_SECONDS;
use portcullis_tokens::keys::{self, KeyError};

use super::idempotency::{IdempotencyKey, Writes};
use super::secrets::SealError;
use super::{Control, ControlError, EventBody, Principal, infra, now_ms, subject};
use crate::{Context, ExecuteError, load_state};

/// A host's signing key as an admin sees it (never the private half).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningKeyView {
    /// The key id (the JWT header's `kid`).
    pub kid: String,
    /// The JWS algorithm, `ES256`.
    pub algorithm: String,
    /// When it was added, ms since the Unix epoch (0 if unknown).
    pub added_at_ms: i64,
    /// Whether it signs new tokens (the newest key); the others only verify.
    pub active: bool,
}

fn views(keys: &[PublicSigningKey]) -> Vec<SigningKeyView> {
    let newest = keys.len().saturating_sub(1);
    keys.iter()
        .enumerate()
        .map(|(at, key)| SigningKeyView {
            kid: key.kid.clone(),
            algorithm: key.algorithm.clone(),
            added_at_ms: key.added_at_ms,
            active: at == newest,
        })
        .collect()
}

fn key_rejected(host_id: &str, rejected: HostRejected) -> ControlError {
    match rejected {
        HostRejected::NotFound => ControlError::not_found("host", host_id),
        HostRejected::NoSuchSigningKey(kid) => ControlError::not_found("signing key", &kid),
        HostRejected::SigningKeyInUse(ref kid) => {
            let kid = kid.clone();
            ControlError::conflict("signing key", &kid, rejected)
        }
        other => ControlError::unavailable(other),
    }
}

impl Control {
    /// The host's newest signing key, adding one when it has none. `NotFound` for a host
    /// that is absent or deleted; `Unavailable` when no master key is configured.
    pub async fn ensure_signing_key(
        &self,
        context: &Context,
        host_id: &str,
    ) -> Result<HostSigningKeyAdded, ControlError> {
        let mut writes = Writes::new("signing-keys", None);
        self.add_signing_key(context, &mut writes, host_id, false)
            .await
    }

    /// Adds a key to the host, unless `always` is false and it has one; returns the newest.
    async fn add_signing_key(
        &self,
        context: &Context,
        writes: &mut Writes,
        host_id: &str,
        always: bool,
    ) -> Result<HostSigningKeyAdded, ControlError> {
        let host_subject = subject(subjects::host(host_id))?;
        let (host, _) = load_state::<Host>(self.log.as_ref(), &host_subject)
            .await
            .map_err(infra)?;
        match host {
            Host::Live { signing_keys, .. } => {
                if let Some(newest) = signing_keys.last().filter(|_| !always) {
                    return Ok(newest.clone());
                }
            }
            Host::Absent | Host::Deleted => return Err(ControlError::not_found("host", host_id)),
        }
        let sealer = self.sealer.clone();
        let key = keys::generate_with(host_id, |plaintext, aad| {
            sealer
                .seal(plaintext, aad)
                .map(|sealed| (sealed.key_id, sealed.sealed))
                .map_err(|error| match error {
                    SealError::NoMasterKey | SealError::Failed(_) => KeyError::Seal,
                })
        })
        .map_err(|error| {
            ControlError::unavailable(std::io::Error::other(format!(
                "cannot create a signing key for host {host_id} ({error}); configure a master key (--master-key)"
            )))
        })?;
        // A forced addition (a rotation) is one step per request, so its retry adds nothing
        // and finds the key the first attempt added.
        let step = if always {
            "host.signing_key.rotate".to_owned()
        } else {
            format!("host.signing_key.{}", key.kid)
        };
        match self
            .run::<Host>(
                context,
                writes,
                &step,
                &host_subject,
                &HostCommand::AddSigningKey(key.clone()),
            )
            .await?
        {
            Ok(done) => {
                self.settle(writes).await?;
                if done.appended {
                    return Ok(key);
                }
                let command_id = writes.command_id(&step, &host_subject)?;
                match self.recorded(&host_subject, &command_id).await? {
                    Some(EventBody::HostSigningKeyAdded(earlier)) => Ok(earlier),
                    _ => Ok(key),
                }
            }
            Err(ExecuteError::Rejected(HostRejected::NotFound)) => {
                Err(ControlError::not_found("host", host_id))
            }
            Err(ExecuteError::Rejected(rejected)) => Err(ControlError::unavailable(rejected)),
            Err(other) => Err(infra(other)),
        }
    }
}

impl Control {
    /// The host's signing keys in use, oldest first; the last one signs.
    pub async fn list_signing_keys(
        &self,
        principal: &Principal,
        host_id: &str,
    ) -> Result<Vec<SigningKeyView>, ControlError> {
        let host = self.host_for(principal, host_id).await?;
        Ok(views(&host.signing_keys))
    }

    /// Adds a new signing key that signs every token from now on; the older keys keep
    /// verifying. Returns the new key.
    #[tracing::instrument(name = "control.host.rotate_signing_key", skip_all, fields(%host_id))]
    pub async fn rotate_signing_key(
        &self,
        principal: &Principal,
        context: &Context,
        idempotency_key: Option<&IdempotencyKey>,
        host_id: &str,
    ) -> Result<SigningKeyView, ControlError> {
        self.host_for(principal, host_id).await?;
        let mut writes = Writes::new(&principal.token_id, idempotency_key);
        let added = self
            .add_signing_key(context, &mut writes, host_id, true)
            .await?;
        self.list_signing_keys(principal, host_id)
            .await?
            .into_iter()
            .find(|key| key.kid == added.kid)
            .ok_or_else(|| ControlError::not_found("signing key", &added.kid))
    }

    /// Retires an older signing key: it leaves the JWKS and the tokens it signed are refused.
    /// Refused (`Conflict`) for the key in use, and, unless `force`, while the key in use has
    /// signed for less than an access token's lifetime (tokens of the old key may be live).
    #[tracing::instrument(name = "control.host.retire_signing_key", skip_all, fields(%host_id, %kid))]
    pub async fn retire_signing_key(
        &self,
        principal: &Principal,
        context: &Context,
        idempotency_key: Option<&IdempotencyKey>,
        host_id: &str,
        kid: &str,
        force: bool,
    ) -> Result<(), ControlError> {
        let host = self.host_for(principal, host_id).await?;
        if kid.is_empty() || kid.len() > 64 {
            return Err(ControlError::invalid("kid", "must be 1 to 64 characters"));
        }
        let keys = views(&host.signing_keys);
        let position = keys.iter().position(|key| key.kid == kid);
        if let (Some(at), Some(active)) = (position, keys.last()) {
            let overlap_ms = i64::try_from(ACCESS_TOKEN_TTL_SECONDS * 1000).unwrap_or(i64::MAX);
            let live_until = active.added_at_ms.saturating_add(overlap_ms);
            let remaining_seconds = (live_until - now_ms()).max(0) / 1000;
            if at + 1 < keys.len() && !force && remaining_seconds > 0 {
                return Err(ControlError::conflict(
                    "signing key",
                    kid,
                    format!(
                        "tokens it signed may be live for {remaining_seconds} more seconds (the key in use, {}, is younger than the {ACCESS_TOKEN_TTL_SECONDS}-second access-token lifetime); retry then, or force it to refuse them now",
                        active.kid
                    ),
                ));
            }
        }
        let host_subject = subject(subjects::host(host_id))?;
        let mut writes = Writes::new(&principal.token_id, idempotency_key);
        match self
            .run::<Host>(
                context,
                &mut writes,
                "host.signing_key.retire",
                &host_subject,
                &HostCommand::RetireSigningKey {
                    kid: kid.to_owned(),
                },
            )
            .await?
        {
            Ok(_) => self.settle(&writes).await,
            Err(ExecuteError::Rejected(rejected)) => Err(key_rejected(host_id, rejected)),
            Err(other) => Err(infra(other)),
        }
    }
}
