//! The host aggregate (`evt.<host_id>.host.<host_id>`): one isolated gateway instance.
//!
//! Its subject is keyed by the host id, so creating it with expected version 0 is also what
//! makes the id unique across the deployment.

use portcullis_proto::events::v1::{HostCreated, HostSettings};

use crate::{Aggregate, Decision, EventBody};

/// A host's state.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Host {
    /// Never created.
    #[default]
    Absent,
    /// Serving.
    Live {
        /// Owning organization.
        org_id: String,
        /// Whether it is its organization's default host.
        is_default: bool,
        /// Its settings.
        settings: HostSettings,
    },
    /// Deleted; its id is never reused.
    Deleted,
}

/// What can be done to a host.
#[derive(Clone, Debug, PartialEq)]
pub enum HostCommand {
    /// Creates it.
    Create {
        /// The host id (see `host_id::generate`).
        host_id: String,
        /// Owning organization.
        org_id: String,
        /// The prefix the id was drawn from.
        prefix: String,
        /// Whether it is the organization's default host.
        is_default: bool,
        /// Initial settings.
        settings: HostSettings,
    },
}

/// Why a host command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostRejected {
    /// The id is taken (now or in the past).
    #[error("host id is already taken")]
    AlreadyExists,
}

impl Aggregate for Host {
    type Command = HostCommand;
    type Rejection = HostRejected;

    fn evolve(self, event: &EventBody) -> Self {
        match (self, event) {
            (Host::Absent, EventBody::HostCreated(e)) => Host::Live {
                org_id: e.org_id.clone(),
                is_default: e.is_default,
                settings: e.settings.clone().unwrap_or_default(),
            },
            (
                Host::Live {
                    org_id, is_default, ..
                },
                EventBody::HostSettingsChanged(e),
            ) => Host::Live {
                org_id,
                is_default,
                settings: e.settings.clone().unwrap_or_default(),
            },
            (Host::Live { .. }, EventBody::HostDeleted(_)) => Host::Deleted,
            (state, _) => state,
        }
    }

    fn decide(&self, command: &HostCommand) -> Result<Decision<EventBody>, HostRejected> {
        match (self, command) {
            (
                Host::Absent,
                HostCommand::Create {
                    host_id,
                    org_id,
                    prefix,
                    is_default,
                    settings,
                },
            ) => Ok(Decision::Append(EventBody::HostCreated(HostCreated {
                host_id: host_id.clone(),
                org_id: org_id.clone(),
                prefix: prefix.clone(),
                is_default: *is_default,
                settings: Some(settings.clone()),
            }))),
            (Host::Live { .. } | Host::Deleted, HostCommand::Create { .. }) => {
                Err(HostRejected::AlreadyExists)
            }
        }
    }
}

#[cfg(test)]
mod tests;
