//! The default organization and host of `portcullis dev`, created on first start.
//!
//! Crash-safe and idempotent: each step is a command that is a no-op once done, and the host
//! id is recorded on the organization (`DefaultHostAssigned`) before the host is created, so a
//! restart after a crash between the steps finishes the same host instead of drawing a new one.

use portcullis_domain::host::{Host, HostCommand, HostRejected};
use portcullis_domain::host_id::{self, InvalidPrefix};
use portcullis_domain::organization::{Organization, OrganizationCommand, OrganizationRejected};
use portcullis_proto::events::v1::HostSettings;
use portcullis_proto::subjects;
use portcullis_store::{CommandId, EventLog, InvalidName};

use crate::{Context, ExecuteError, execute, load_state};

/// The id of the organization `portcullis dev` creates.
pub const DEFAULT_ORG_ID: &str = "default";

/// The prefix of the default host's id.
pub const DEFAULT_HOST_PREFIX: &str = "default";

/// What `ensure_default_host` found or made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefaultHost {
    /// The organization.
    pub org_id: String,
    /// The default host's id.
    pub host_id: String,
    /// Whether this call created anything.
    pub created: bool,
}

/// Why the bootstrap failed.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The default organization could not be created or read.
    #[error("cannot create the default organization")]
    Organization(#[source] ExecuteError<OrganizationRejected>),
    /// The default host could not be created or read.
    #[error("cannot create the default host {host_id}")]
    Host {
        /// The host.
        host_id: String,
        /// Why.
        #[source]
        source: ExecuteError<HostRejected>,
    },
    /// The host the organization names belongs to another organization.
    #[error("default host {host_id} belongs to organization {owner}, not {DEFAULT_ORG_ID}")]
    HostOwnedByAnother {
        /// The host.
        host_id: String,
        /// Its owner.
        owner: String,
    },
    /// An id could not be made into a subject or command id.
    #[error("invalid bootstrap name")]
    Name(#[from] InvalidName),
    /// The host prefix is invalid (a constant, so this is a bug).
    #[error("invalid default host prefix")]
    Prefix(#[from] InvalidPrefix),
}

/// Makes sure the default organization exists (the bootstrap admin token acts for it);
/// returns whether this call created it.
pub async fn ensure_default_organization(
    log: &dyn EventLog,
    context: &Context,
) -> Result<bool, BootstrapError> {
    let org_subject = subjects::organization(DEFAULT_ORG_ID)?;
    let create_org = OrganizationCommand::Create {
        org_id: DEFAULT_ORG_ID.to_owned(),
        name: "Default organization".to_owned(),
    };
    match execute::<Organization>(
        log,
        context,
        &org_subject,
        &CommandId::parse("bootstrap-organization")?,
        &create_org,
    )
    .await
    {
        Ok(done) => Ok(done.appended),
        Err(ExecuteError::Rejected(OrganizationRejected::AlreadyExists)) => Ok(false),
        Err(error) => Err(BootstrapError::Organization(error)),
    }
}

/// Makes sure the default organization and its default host exist; returns them.
pub async fn ensure_default_host(
    log: &dyn EventLog,
    context: &Context,
) -> Result<DefaultHost, BootstrapError> {
    let org_subject = subjects::organization(DEFAULT_ORG_ID)?;
    let created_org = ensure_default_organization(log, context).await?;

    // Draw a candidate; if the organization already has a default host, that one wins. The
    // command id names the candidate, so it never matches an earlier run's assignment.
    let candidate = host_id::generate(DEFAULT_HOST_PREFIX, &mut rand::rng())?;
    let assign = OrganizationCommand::AssignDefaultHost {
        host_id: candidate.clone(),
    };
    let assign_id = CommandId::parse(&format!("bdh-{candidate}"))?;
    let (host_id, assigned) =
        match execute::<Organization>(log, context, &org_subject, &assign_id, &assign).await {
            Ok(done) => (candidate, done.appended),
            Err(ExecuteError::Rejected(OrganizationRejected::DefaultHostTaken(existing))) => {
                (existing, false)
            }
            Err(error) => return Err(BootstrapError::Organization(error)),
        };

    let host_subject = subjects::host(&host_id)?;
    let create_host = HostCommand::Create {
        host_id: host_id.clone(),
        org_id: DEFAULT_ORG_ID.to_owned(),
        prefix: DEFAULT_HOST_PREFIX.to_owned(),
        is_default: true,
        settings: HostSettings::default(),
    };
    let host_error = |source| BootstrapError::Host {
        host_id: host_id.clone(),
        source,
    };
    let created_host = match execute::<Host>(
        log,
        context,
        &host_subject,
        &CommandId::parse(&format!("bh-{host_id}"))?,
        &create_host,
    )
    .await
    {
        Ok(done) => done.appended,
        Err(ExecuteError::Rejected(HostRejected::AlreadyExists)) => {
            let (host, _) = load_state::<Host>(log, &host_subject)
                .await
                .map_err(host_error)?;
            match host {
                Host::Live { org_id, .. } if org_id == DEFAULT_ORG_ID => false,
                Host::Live { org_id, .. } => {
                    return Err(BootstrapError::HostOwnedByAnother {
                        host_id,
                        owner: org_id,
                    });
                }
                // Deleted (or never created, which AlreadyExists rules out): the default host
                // was deleted on purpose; do not resurrect it.
                _ => false,
            }
        }
        Err(error) => return Err(host_error(error)),
    };
    Ok(DefaultHost {
        org_id: DEFAULT_ORG_ID.to_owned(),
        host_id,
        created: created_org || assigned || created_host,
    })
}

#[cfg(test)]
mod tests;
