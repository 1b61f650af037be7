//! The human aggregate (`evt.<host>.human.<human_id>`): a person known by a verified email.
//!
//! Email uniqueness within a host is the `human_email` reservation's job; this aggregate
//! checks the email's form and that a removed human stays removed (ids are never reused).

use portcullis_proto::events::v1::{HumanAdded, HumanRemoved};

use crate::validate::{InvalidEmail, normalize_email};
use crate::{Aggregate, Decision, EventBody};

/// A human's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Human {
    /// Never added.
    #[default]
    Absent,
    /// Known.
    Live {
        /// Normalized email.
        email: String,
        /// Added by an admin before first sign-in.
        pre_authorized: bool,
    },
    /// Removed for good.
    Removed,
}

/// What can be done to a human.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HumanCommand {
    /// Adds them.
    Add {
        /// Their id (a ULID).
        human_id: String,
        /// Their email (normalized here).
        email: String,
        /// Whether an admin adds them before first sign-in.
        pre_authorized: bool,
    },
    /// Removes them.
    Remove,
}

/// Why a human command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HumanRejected {
    /// The id is taken (now or in the past).
    #[error("human id is already taken")]
    AlreadyExists,
    /// Never added, or removed.
    #[error("human not found")]
    NotFound,
    /// The email is invalid.
    #[error("email: {0}")]
    InvalidEmail(#[from] InvalidEmail),
}

impl Aggregate for Human {
    type Command = HumanCommand;
    type Rejection = HumanRejected;

    fn evolve(self, event: &EventBody) -> Self {
        match (self, event) {
            (Human::Absent, EventBody::HumanAdded(e)) => Human::Live {
                email: e.email.clone(),
                pre_authorized: e.pre_authorized,
            },
            (Human::Live { .. }, EventBody::HumanRemoved(_)) => Human::Removed,
            (state, _) => state,
        }
    }

    fn decide(&self, command: &HumanCommand) -> Result<Decision<EventBody>, HumanRejected> {
        match (self, command) {
            (
                Human::Absent,
                HumanCommand::Add {
                    human_id,
                    email,
                    pre_authorized,
                },
            ) => Ok(Decision::Append(EventBody::HumanAdded(HumanAdded {
                human_id: human_id.clone(),
                email: normalize_email(email)?,
                pre_authorized: *pre_authorized,
            }))),
            (Human::Live { .. } | Human::Removed, HumanCommand::Add { .. }) => {
                Err(HumanRejected::AlreadyExists)
            }
            (Human::Live { .. }, HumanCommand::Remove) => {
                Ok(Decision::Append(EventBody::HumanRemoved(HumanRemoved {})))
            }
            (Human::Absent | Human::Removed, HumanCommand::Remove) => Err(HumanRejected::NotFound),
        }
    }
}

#[cfg(test)]
mod tests;
