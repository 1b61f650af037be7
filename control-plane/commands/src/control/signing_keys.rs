//! Host token-signing keys: every live host has one, generated here and recorded sealed.
//!
//! `ensure_signing_key` is idempotent and crash-safe: it adds a key only when the host has
//! none, and a racing second caller's key (a different kid) is simply a second valid key.

use portcullis_domain::host::{Host, HostCommand, HostRejected};
use portcullis_proto::events::v1::HostSigningKeyAdded;
use portcullis_proto::subjects;
use portcullis_tokens::keys::{self, KeyError};

use super::idempotency::Writes;
use super::secrets::SealError;
use super::{Control, ControlError, infra, subject};
use crate::{Context, ExecuteError, load_state};

impl Control {
    /// The host's newest signing key, adding one when it has none. `NotFound` for a host
    /// that is absent or deleted; `Unavailable` when no master key is configured.
    pub async fn ensure_signing_key(
        &self,
        context: &Context,
        host_id: &str,
    ) -> Result<HostSigningKeyAdded, ControlError> {
        let host_subject = subject(subjects::host(host_id))?;
        let (host, _) = load_state::<Host>(self.log.as_ref(), &host_subject)
            .await
            .map_err(infra)?;
        match host {
            Host::Live { signing_keys, .. } => {
                if let Some(newest) = signing_keys.last() {
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
        let mut writes = Writes::new("signing-keys", None);
        match self
            .run::<Host>(
                context,
                &mut writes,
                &format!("host.signing_key.{}", key.kid),
                &host_subject,
                &HostCommand::AddSigningKey(key.clone()),
            )
            .await?
        {
            Ok(_) => {
                self.settle(&writes).await?;
                Ok(key)
            }
            Err(ExecuteError::Rejected(HostRejected::NotFound)) => {
                Err(ControlError::not_found("host", host_id))
            }
            Err(ExecuteError::Rejected(rejected)) => Err(ControlError::unavailable(rejected)),
            Err(other) => Err(infra(other)),
        }
    }
}
