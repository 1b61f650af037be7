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
