//! A human's credentials at OAuth-protected upstreams, written by the consent flow after the
//! human signed in to the upstream (step 4), read by consent (is one live?) and, through the
//! read models, by data planes (which attach the access token upstream). Sealed by the
//! caller; confined to the host the HTTP layer resolved.

use portcullis_domain::upstream_credential::{UpstreamCredential, UpstreamCredentialCommand};
use portcullis_projector::ModelKind;
use portcullis_projector::models;
use portcullis_proto::events::v1::UpstreamCredentialStored;
use portcullis_proto::subjects;

use super::accounts::CONSENT_WRITER;
use super::idempotency::Writes;
use super::{Control, ControlError, check_id, on_reject, subject};
use crate::Context;

impl Control {
    /// Stores (or replaces) `human_id`'s sealed tokens for `server_id`; returns once the read
    /// models show them.
    #[tracing::instrument(name = "control.upstream_credential.store", skip_all, fields(%host_id, %human_id, %server_id))]
    pub async fn store_upstream_credential(
        &self,
        context: &Context,
        host_id: &str,
        human_id: &str,
        server_id: &str,
        credential_sealed: Vec<u8>,
        expires_at_ms: i64,
    ) -> Result<(), ControlError> {
        check_id("host", host_id)?;
        check_id("human", human_id)?;
        check_id("server", server_id)?;
        let credential_subject =
            subject(subjects::upstream_credential(host_id, human_id, server_id))?;
        let mut writes = Writes::new(CONSENT_WRITER, None);
        on_reject(
            self.run::<UpstreamCredential>(
                context,
                &mut writes,
                "upstream_credential.store",
                &credential_subject,
                &UpstreamCredentialCommand::Store(UpstreamCredentialStored {
                    human_id: human_id.to_owned(),
                    server_id: server_id.to_owned(),
                    credential_sealed,
                    expires_at_ms,
                }),
            )
            .await?,
            |rejected| ControlError::invalid("credential", rejected),
        )?;
        self.settle(&writes).await
    }

    /// `human_id`'s live credential for `server_id`, if any.
    pub async fn upstream_credential(
        &self,
        host_id: &str,
        human_id: &str,
        server_id: &str,
    ) -> Result<Option<models::UpstreamCredential>, ControlError> {
        check_id("host", host_id)?;
        check_id("human", human_id)?;
        check_id("server", server_id)?;
        self.live(
            ModelKind::UpstreamCredential,
            &[host_id, human_id, server_id],
        )
        .await
    }
}

/// A live credential, with where it belongs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldCredential {
    /// Its host.
    pub host_id: String,
    /// Its human.
    pub human_id: String,
    /// Its server.
    pub server_id: String,
    /// The sealed credential and its expiry.
    pub credential: models::UpstreamCredential,
}

impl Control {
    /// Every live credential (of every host) whose access token expires before `before_ms`
    /// (credentials without a stated expiry never are). For the control plane's refresher.
    pub async fn upstream_credentials_expiring(
        &self,
        before_ms: i64,
    ) -> Result<Vec<HeldCredential>, ControlError> {
        Ok(self
            .list::<models::UpstreamCredential>(ModelKind::UpstreamCredential, &[])
            .await?
            .into_iter()
            .filter_map(|(rest, credential)| match rest.as_slice() {
                [host_id, human_id, server_id]
                    if credential.expires_at_ms != 0 && credential.expires_at_ms < before_ms =>
                {
                    Some(HeldCredential {
                        host_id: host_id.clone(),
                        human_id: human_id.clone(),
                        server_id: server_id.clone(),
                        credential,
                    })
                }
                _ => None,
            })
            .collect())
    }

    /// Claims the refresh of a credential for `by` until `until_ms` (compare-and-set on the
    /// credential's version, and on the tokens it read being still the current ones):
    /// `true` if this caller may refresh the tokens it read, `false` if another holds the
    /// claim, refreshed them already, or nothing is live.
    pub async fn claim_upstream_refresh(
        &self,
        context: &Context,
        credential: &HeldCredential,
        by: &str,
        until_ms: i64,
    ) -> Result<bool, ControlError> {
        let credential_subject = subject(subjects::upstream_credential(
            &credential.host_id,
            &credential.human_id,
            &credential.server_id,
        ))?;
        let mut writes = Writes::new(CONSENT_WRITER, None);
        match self
            .run::<UpstreamCredential>(
                context,
                &mut writes,
                "upstream_credential.claim",
                &credential_subject,
                &UpstreamCredentialCommand::ClaimRefresh {
                    seen_expires_at_ms: credential.credential.expires_at_ms,
                    by: by.to_owned(),
                    until_ms,
                    at_ms: context.now_ms,
                },
            )
            .await?
        {
            Ok(done) => Ok(done.appended),
            Err(crate::ExecuteError::Rejected(_)) => Ok(false),
            Err(other) => Err(super::infra(other)),
        }
    }

    /// Revokes a credential (the upstream refused to refresh it): the human must sign in to
    /// the upstream again, and data planes tell the client so.
    pub async fn revoke_upstream_credential(
        &self,
        context: &Context,
        credential: &HeldCredential,
        reason: &str,
    ) -> Result<(), ControlError> {
        let credential_subject = subject(subjects::upstream_credential(
            &credential.host_id,
            &credential.human_id,
            &credential.server_id,
        ))?;
        let mut writes = Writes::new(CONSENT_WRITER, None);
        on_reject(
            self.run::<UpstreamCredential>(
                context,
                &mut writes,
                "upstream_credential.revoke",
                &credential_subject,
                &UpstreamCredentialCommand::Revoke {
                    reason: reason.to_owned(),
                },
            )
            .await?,
            |rejected| ControlError::invalid("credential", rejected),
        )?;
        self.settle(&writes).await
    }
}
