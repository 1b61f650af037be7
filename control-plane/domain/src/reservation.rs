//! Reservations that make a value unique within a host: the `server_key` aggregate
//! (`evt.<host>.server_key.<key>`) and the `human_email` aggregate
//! (`evt.<host>.human_email.<sha256 hex of the normalized email>`), and the `human_identity`
//! aggregate (`evt.<host>.human_identity.<sha256 hex of "<issuer>\n<subject>">`).
//!
//! A reservation is claimed for one owner (a server id, a human id) before that owner is
//! created, so of two concurrent creates with the same key exactly one wins the claim. Only
//! the owner may release it; claiming it again for the same owner changes nothing.

use portcullis_proto::events::v1::{
    HumanEmailClaimed, HumanEmailReleased, HumanIdentityClaimed, HumanIdentityReleased,
    ServerKeyClaimed, ServerKeyReleased,
};

use crate::{Aggregate, Decision, EventBody};

/// Who holds a reservation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Reservation {
    /// Nobody (never claimed, or released).
    #[default]
    Free,
    /// Claimed.
    Held {
        /// The owner's id.
        owner: String,
    },
}

impl Reservation {
    /// The owner, if held.
    pub fn owner(&self) -> Option<&str> {
        match self {
            Reservation::Free => None,
            Reservation::Held { owner } => Some(owner),
        }
    }

    fn decide(&self, command: &ReservationCommand) -> Result<Change, ReservationRejected> {
        match (self, command) {
            (Reservation::Free, ReservationCommand::Claim { owner }) => {
                Ok(Change::Claim(owner.clone()))
            }
            (Reservation::Held { owner: held }, ReservationCommand::Claim { owner }) => {
                if held == owner {
                    Ok(Change::None)
                } else {
                    Err(ReservationRejected::HeldByAnother {
                        owner: held.clone(),
                    })
                }
            }
            (Reservation::Free, ReservationCommand::Release { .. }) => Ok(Change::None),
            (Reservation::Held { owner: held }, ReservationCommand::Release { owner }) => {
                if held == owner {
                    Ok(Change::Release)
                } else {
                    Err(ReservationRejected::HeldByAnother {
                        owner: held.clone(),
                    })
                }
            }
        }
    }
}

enum Change {
    Claim(String),
    Release,
    None,
}

/// What can be done to a reservation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReservationCommand {
    /// Claims it for `owner`; a no-op if `owner` holds it already.
    Claim {
        /// The owner's id.
        owner: String,
    },
    /// Releases it if `owner` holds it; a no-op if nobody does.
    Release {
        /// The owner's id.
        owner: String,
    },
}

/// Why a reservation command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReservationRejected {
    /// Someone else holds it.
    #[error("already held by {owner}")]
    HeldByAnother {
        /// The holder.
        owner: String,
    },
}

/// The reservation of a server key in a host; the owner is a server id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerKey(pub Reservation);

impl Aggregate for ServerKey {
    type Command = ReservationCommand;
    type Rejection = ReservationRejected;

    fn evolve(self, event: &EventBody) -> Self {
        match event {
            EventBody::ServerKeyClaimed(e) => ServerKey(Reservation::Held {
                owner: e.server_id.clone(),
            }),
            EventBody::ServerKeyReleased(_) => ServerKey(Reservation::Free),
            _ => self,
        }
    }

    fn decide(
        &self,
        command: &ReservationCommand,
    ) -> Result<Decision<EventBody>, ReservationRejected> {
        Ok(match self.0.decide(command)? {
            Change::Claim(server_id) => {
                Decision::Append(EventBody::ServerKeyClaimed(ServerKeyClaimed { server_id }))
            }
            Change::Release => Decision::Append(EventBody::ServerKeyReleased(ServerKeyReleased {})),
            Change::None => Decision::Unchanged,
        })
    }
}

/// The reservation of an email in a host; the owner is a human id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HumanEmail(pub Reservation);

impl Aggregate for HumanEmail {
    type Command = ReservationCommand;
    type Rejection = ReservationRejected;

    fn evolve(self, event: &EventBody) -> Self {
        match event {
            EventBody::HumanEmailClaimed(e) => HumanEmail(Reservation::Held {
                owner: e.human_id.clone(),
            }),
            EventBody::HumanEmailReleased(_) => HumanEmail(Reservation::Free),
            _ => self,
        }
    }

    fn decide(
        &self,
        command: &ReservationCommand,
    ) -> Result<Decision<EventBody>, ReservationRejected> {
        Ok(match self.0.decide(command)? {
            Change::Claim(human_id) => {
                Decision::Append(EventBody::HumanEmailClaimed(HumanEmailClaimed { human_id }))
            }
            Change::Release => {
                Decision::Append(EventBody::HumanEmailReleased(HumanEmailReleased {}))
            }
            Change::None => Decision::Unchanged,
        })
    }
}

/// The reservation of an external identity in a host; the owner is a human id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HumanIdentity(pub Reservation);

impl Aggregate for HumanIdentity {
    type Command = ReservationCommand;
    type Rejection = ReservationRejected;

    fn evolve(self, event: &EventBody) -> Self {
        match event {
            EventBody::HumanIdentityClaimed(e) => HumanIdentity(Reservation::Held {
                owner: e.human_id.clone(),
            }),
            EventBody::HumanIdentityReleased(_) => HumanIdentity(Reservation::Free),
            _ => self,
        }
    }

    fn decide(
        &self,
        command: &ReservationCommand,
    ) -> Result<Decision<EventBody>, ReservationRejected> {
        Ok(match self.0.decide(command)? {
            Change::Claim(human_id) => {
                Decision::Append(EventBody::HumanIdentityClaimed(HumanIdentityClaimed {
                    human_id,
                }))
            }
            Change::Release => {
                Decision::Append(EventBody::HumanIdentityReleased(HumanIdentityReleased {}))
            }
            Change::None => Decision::Unchanged,
        })
    }
}

#[cfg(test)]
mod tests;
