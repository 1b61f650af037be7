//! Sign-in through an external identity provider: the sealed client secret a host's
//! provider holds, and the human an identity signs in as.
//!
//! An identity is keyed by (issuer, subject), never by email: the `human_identity`
//! reservation (`evt.<host>.human_identity.<sha256 hex of "<issuer>\n<subject>">`) names the
//! human it belongs to. An identity seen for the first time links to the human holding the
//! address the provider verified (`HumanCommand::LinkIdentity`, which also proves that
//! human's mailbox and voids a password chosen before any proof), or to a new human for that
//! address. The caller (the consent pages) has already checked that the provider vouched
//! for the address and that the host's domain rules allow it.
//!
//! No admin principal: confined to the host the HTTP layer resolved.

use portcullis_domain::host::Host;
use portcullis_domain::human::{Human, HumanCommand};
use portcullis_domain::reservation::{HumanIdentity, ReservationCommand, ReservationRejected};
use portcullis_domain::validate::normalize_email;
use portcullis_proto::events::v1 as pb;
use portcullis_proto::subjects;
use sha2::{Digest, Sha256};

use super::accounts::{AccountView, CONSENT_WRITER};
use super::idempotency::Writes;
use super::{Control, ControlError, check_id, infra, load_or_unavailable, subject};
use crate::{Context, ExecuteError};

/// The associated data a sign-in provider's client secret is sealed with: whoever opens it
/// (the consent pages) must pass the same bytes.
pub fn sign_in_provider_secret_aad(host_id: &str, provider_id: &str) -> String {
    format!("sign-in-provider-secret:{host_id}:{provider_id}")
}

/// A provider's sealed client secret, as recorded.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedProviderSecret {
    /// The master key that sealed it.
    pub key_id: String,
    /// Nonce and ciphertext.
    pub sealed: Vec<u8>,
}

impl std::fmt::Debug for SealedProviderSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedProviderSecret")
            .field("key_id", &self.key_id)
            .field("sealed_bytes", &self.sealed.len())
            .finish()
    }
}

/// Who signed in at a provider, as the consent pages verified it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedIdentity {
    /// The host's provider.
    pub provider_id: String,
    /// With `subject`, the identity's key.
    pub issuer: String,
    /// The provider's id of the person.
    pub subject: String,
    /// The address the provider vouched for (normalized here).
    pub email: String,
}

/// The reservation key of an identity: SHA-256 of `"<issuer>\n<subject>"`, lower-case hex
/// (neither part may hold a newline, so distinct pairs never share a key).
fn identity_sha256_hex(issuer: &str, subject: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(issuer.as_bytes());
    hasher.update(b"\n");
    hasher.update(subject.as_bytes());
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Control {
    /// The sealed client secret of the host's provider `provider_id`, read from the host's
    /// own events (read models never hold it). `None` if the host has no such provider.
    pub async fn sign_in_provider_secret(
        &self,
        host_id: &str,
        provider_id: &str,
    ) -> Result<Option<SealedProviderSecret>, ControlError> {
        check_id("host", host_id)?;
        let host_subject = subject(subjects::host(host_id))?;
        let (host, _) = load_or_unavailable::<Host>(self, &host_subject).await?;
        let Host::Live { settings, .. } = host else {
            return Ok(None);
        };
        Ok(settings
            .auth
            .iter()
            .flat_map(|auth| auth.providers.iter())
            .find(|provider| provider.id == provider_id)
            .filter(|provider| !provider.sealed_client_secret.is_empty())
            .map(|provider| SealedProviderSecret {
                key_id: provider.key_id.clone(),
                sealed: provider.sealed_client_secret.clone(),
            }))
    }

    /// The account `identity` signs in as: the human it is linked to, else the human holding
    /// its verified address (now linked), else a new human for that address (linked).
    #[tracing::instrument(name = "control.account.identity_sign_in", skip_all, fields(%host_id, provider_id = %identity.provider_id))]
    pub async fn sign_in_with_identity(
        &self,
        context: &Context,
        host_id: &str,
        identity: &VerifiedIdentity,
    ) -> Result<AccountView, ControlError> {
        self.oauth_host(host_id).await?;
        let email =
            normalize_email(&identity.email).map_err(|e| ControlError::invalid("email", e))?;
        if identity.issuer.is_empty()
            || identity.subject.is_empty()
            || identity.issuer.contains('\n')
            || identity.subject.contains('\n')
        {
            return Err(ControlError::invalid(
                "identity",
                "issuer and subject must be non-empty single lines",
            ));
        }
        let identity_subject = subject(subjects::human_identity(
            host_id,
            &identity_sha256_hex(&identity.issuer, &identity.subject),
        ))?;
        let mut writes = Writes::new(CONSENT_WRITER, None);
        let (reservation, _) =
            load_or_unavailable::<HumanIdentity>(self, &identity_subject).await?;
        let linked_to = match reservation.0.owner() {
            Some(owner) => self.account(host_id, owner).await?,
            None => None,
        };
        let account = match linked_to {
            Some(account) => {
                let linked = account.account.identities.iter().any(|linked| {
                    linked.issuer == identity.issuer && linked.subject == identity.subject
                });
                if linked {
                    return Ok(account);
                }
                // Claimed by an attempt that stopped before linking: link now.
                account
            }
            None => {
                if let Some(owner) = reservation.0.owner() {
                    // Linked to a human an admin removed since: the identity is free again.
                    let release = ReservationCommand::Release {
                        owner: owner.to_owned(),
                    };
                    match self
                        .run::<HumanIdentity>(
                            context,
                            &mut writes,
                            "identity.release",
                            &identity_subject,
                            &release,
                        )
                        .await?
                    {
                        Ok(_)
                        | Err(ExecuteError::Rejected(ReservationRejected::HeldByAnother {
                            ..
                        })) => {}
                        Err(other) => return Err(infra(other)),
                    }
                }
                let account = self.sign_up_human(context, host_id, &email).await?;
                let claim = ReservationCommand::Claim {
                    owner: account.human_id.clone(),
                };
                match self
                    .run::<HumanIdentity>(
                        context,
                        &mut writes,
                        "identity.claim",
                        &identity_subject,
                        &claim,
                    )
                    .await?
                {
                    Ok(_) => account,
                    Err(ExecuteError::Rejected(ReservationRejected::HeldByAnother { owner })) => {
                        // Linked concurrently (the same person signing in twice at once).
                        return self.account(host_id, &owner).await?.ok_or_else(|| {
                            ControlError::conflict(
                                "identity",
                                &identity.subject,
                                "being linked; retry",
                            )
                        });
                    }
                    Err(other) => return Err(infra(other)),
                }
            }
        };
        let human_subject = subject(subjects::human(host_id, &account.human_id))?;
        let link = HumanCommand::LinkIdentity {
            provider_id: identity.provider_id.clone(),
            issuer: identity.issuer.clone(),
            subject: identity.subject.clone(),
            verified_email: email,
        };
        match self
            .run::<Human>(context, &mut writes, "identity.link", &human_subject, &link)
            .await?
        {
            Ok(_) => {}
            Err(ExecuteError::Rejected(rejected)) => {
                return Err(ControlError::conflict("human", &account.human_id, rejected));
            }
            Err(other) => return Err(infra(other)),
        }
        self.settle(&writes).await?;
        self.account(host_id, &account.human_id)
            .await?
            .ok_or_else(|| ControlError::not_found("human", &account.human_id))
    }

    /// Seals the plain-text client secrets of `auth`'s providers for `host_id` and drops
    /// whatever sealed values the caller sent (only the control plane seals). A provider
    /// without a new secret keeps its recorded one (the host aggregate fills it in).
    pub(super) fn seal_provider_secrets(
        &self,
        host_id: &str,
        auth: &mut pb::HostAuthSettings,
    ) -> Result<(), ControlError> {
        for (index, provider) in auth.providers.iter_mut().enumerate() {
            provider.sealed_client_secret.clear();
            provider.key_id.clear();
            provider.client_secret_set = false;
            if provider.client_secret.is_empty() {
                continue;
            }
            let secret = zeroize::Zeroizing::new(std::mem::take(&mut provider.client_secret));
            if secret.len() > 1024 {
                return Err(ControlError::invalid(
                    format!("auth.providers[{index}].client_secret"),
                    "at most 1024 bytes",
                ));
            }
            let associated = sign_in_provider_secret_aad(host_id, provider.id.trim());
            let sealed = self
                .sealer
                .seal(secret.as_bytes(), associated.as_bytes())
                .map_err(ControlError::unavailable)?;
            provider.sealed_client_secret = sealed.sealed;
            provider.key_id = sealed.key_id;
        }
        Ok(())
    }
}
