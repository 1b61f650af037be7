//! The organization aggregate (`evt._.organization.<org_id>`): a tenant group of hosts.

use portcullis_proto::events::v1::{DefaultHostAssigned, OrganizationCreated};

use crate::{Aggregate, Decision, EventBody};

/// An organization's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Organization {
    /// Not created.
    #[default]
    Absent,
    /// Created.
    Live {
        /// Its id.
        org_id: String,
        /// Display name.
        name: String,
        /// The host answering requests whose Host header names no host.
        default_host_id: Option<String>,
    },
}

/// What can be done to an organization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrganizationCommand {
    /// Creates it.
    Create {
        /// Its id (a ULID, or `default` for the bootstrap organization).
        org_id: String,
        /// Display name, 1–100 characters.
        name: String,
    },
    /// Makes `host_id` its default host. Assigning the same host again changes nothing.
    AssignDefaultHost {
        /// The host.
        host_id: String,
    },
}

/// Why an organization command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OrganizationRejected {
    /// It exists already.
    #[error("organization already exists")]
    AlreadyExists,
    /// It does not exist.
    #[error("organization not found")]
    NotFound,
    /// The name is empty or too long.
    #[error("organization name must be 1 to 100 characters")]
    InvalidName,
    /// It already has another default host.
    #[error("organization already has default host {0}")]
    DefaultHostTaken(String),
}

impl Aggregate for Organization {
    type Command = OrganizationCommand;
    type Rejection = OrganizationRejected;

    fn evolve(self, event: &EventBody) -> Self {
        match (self, event) {
            (Organization::Absent, EventBody::OrganizationCreated(e)) => Organization::Live {
                org_id: e.org_id.clone(),
                name: e.name.clone(),
                default_host_id: None,
            },
            (Organization::Live { org_id, name, .. }, EventBody::DefaultHostAssigned(e)) => {
                Organization::Live {
                    org_id,
                    name,
                    default_host_id: Some(e.host_id.clone()),
                }
            }
            (state, _) => state,
        }
    }

    fn decide(
        &self,
        command: &OrganizationCommand,
    ) -> Result<Decision<EventBody>, OrganizationRejected> {
        match (self, command) {
            (Organization::Absent, OrganizationCommand::Create { org_id, name }) => {
                let length = name.trim().chars().count();
                if length == 0 || length > 100 {
                    return Err(OrganizationRejected::InvalidName);
                }
                Ok(Decision::Append(EventBody::OrganizationCreated(
                    OrganizationCreated {
                        org_id: org_id.clone(),
                        name: name.trim().to_owned(),
                    },
                )))
            }
            (Organization::Live { .. }, OrganizationCommand::Create { .. }) => {
                Err(OrganizationRejected::AlreadyExists)
            }
            (Organization::Absent, OrganizationCommand::AssignDefaultHost { .. }) => {
                Err(OrganizationRejected::NotFound)
            }
            (
                Organization::Live {
                    default_host_id, ..
                },
                OrganizationCommand::AssignDefaultHost { host_id },
            ) => match default_host_id {
                Some(current) if current == host_id => Ok(Decision::Unchanged),
                Some(current) => Err(OrganizationRejected::DefaultHostTaken(current.clone())),
                None => Ok(Decision::Append(EventBody::DefaultHostAssigned(
                    DefaultHostAssigned {
                        host_id: host_id.clone(),
                    },
                ))),
            },
        }
    }
}

#[cfg(test)]
mod tests;
