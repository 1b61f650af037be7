//! `execute`: load → decide → append(expected version) → on conflict, again.

use std::time::Duration;

use portcullis_store::{
    AppendError, CommandId, EventLog, LogError, NewEvent, RecordedEvent, Subject, Version,
};

/// How many times a command is decided again after losing a race before it gives up.
const MAX_ATTEMPTS: u32 = 6;

/// Turns domain events into log records and back.
pub trait EventCodec: Send + Sync {
    /// The domain event type.
    type Event: Send;
    /// Why a record could not be decoded.
    type DecodeError: std::error::Error + Send + Sync + 'static;
    /// Encodes an event for the log.
    fn encode(&self, event: &Self::Event) -> NewEvent;
    /// Decodes a record read back from the log.
    fn decode(&self, record: &RecordedEvent) -> Result<Self::Event, Self::DecodeError>;
}

/// What a command decided.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision<E> {
    /// Record this event.
    Append(E),
    /// The aggregate already is as the command wants it; record nothing (idempotent commands).
    Unchanged,
}

/// An aggregate: state folded from its own events, and a pure decision per command.
pub trait Aggregate: Default + Send {
    /// The domain event type.
    type Event: Send;
    /// The command type.
    type Command: Send + Sync;
    /// A domain refusal (not an infrastructure failure).
    type Rejection: std::error::Error + Send + Sync + 'static;

    /// Folds one event in. Total: an unexpected event leaves the state as it is.
    fn evolve(self, event: &Self::Event) -> Self;

    /// Decides what `command` does to this state. Pure: no clock, no IO, no randomness.
    fn decide(&self, command: &Self::Command) -> Result<Decision<Self::Event>, Self::Rejection>;
}

/// The outcome of a command that was not refused.
#[derive(Debug)]
pub struct Executed<A> {
    /// The aggregate's state after the command.
    pub state: A,
    /// Its version after the command.
    pub version: Version,
    /// Whether an event was appended (false for `Unchanged` and for a retried command id).
    pub appended: bool,
}

/// Why a command did not take effect.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError<R: std::error::Error + 'static> {
    /// The domain refused it.
    #[error(transparent)]
    Rejected(R),
    /// Other writers kept winning; the caller may retry later (HTTP 409).
    #[error("{subject} kept changing; gave up after {attempts} attempts")]
    Contended {
        /// The aggregate.
        subject: Subject,
        /// How many times it was decided.
        attempts: u32,
    },
    /// The aggregate's history could not be read.
    #[error("cannot load {subject}")]
    Load {
        /// The aggregate.
        subject: Subject,
        /// Why.
        #[source]
        source: LogError,
    },
    /// A stored event could not be decoded.
    #[error("cannot decode event {sequence} of {subject}")]
    Decode {
        /// The aggregate.
        subject: Subject,
        /// The event's position.
        sequence: u64,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The event could not be appended.
    #[error("cannot append to {subject}")]
    Append {
        /// The aggregate.
        subject: Subject,
        /// Why.
        #[source]
        source: AppendError,
    },
}

/// Executes `command` against the aggregate at `subject`.
///
/// The command id makes a retried request idempotent: a command id that was already appended
/// is reported as done (`appended: false`) without a second event.
#[tracing::instrument(name = "control.command", skip_all, fields(%subject, %command_id))]
pub async fn execute<A, C>(
    log: &dyn EventLog,
    codec: &C,
    subject: &Subject,
    command_id: &CommandId,
    command: &A::Command,
) -> Result<Executed<A>, ExecuteError<A::Rejection>>
where
    A: Aggregate,
    C: EventCodec<Event = A::Event>,
{
    for attempt in 1..=MAX_ATTEMPTS {
        let loaded = log
            .load(subject)
            .await
            .map_err(|source| ExecuteError::Load {
                subject: subject.clone(),
                source,
            })?;
        let mut state = A::default();
        for record in &loaded.events {
            let event = codec
                .decode(record)
                .map_err(|source| ExecuteError::Decode {
                    subject: subject.clone(),
                    sequence: record.sequence,
                    source: Box::new(source),
                })?;
            state = state.evolve(&event);
        }
        if loaded.events.iter().any(|e| &e.command_id == command_id) {
            // This command was recorded before (a retry after a lost response).
            return Ok(Executed {
                state,
                version: loaded.version,
                appended: false,
            });
        }
        let event = match state.decide(command).map_err(ExecuteError::Rejected)? {
            Decision::Unchanged => {
                return Ok(Executed {
                    state,
                    version: loaded.version,
                    appended: false,
                });
            }
            Decision::Append(event) => event,
        };
        match log
            .append(subject, loaded.version, command_id, codec.encode(&event))
            .await
        {
            Ok(appended) => {
                return Ok(Executed {
                    state: state.evolve(&event),
                    version: Version(appended.sequence),
                    appended: !appended.duplicate,
                });
            }
            Err(AppendError::Conflict { .. }) => {
                tracing::debug!(attempt, "Lost a race; deciding again.");
                // Back off a little more each time so writers that keep colliding spread out.
                tokio::time::sleep(Duration::from_millis(1 << attempt)).await;
            }
            Err(source) => {
                return Err(ExecuteError::Append {
                    subject: subject.clone(),
                    source,
                });
            }
        }
    }
    Err(ExecuteError::Contended {
        subject: subject.clone(),
        attempts: MAX_ATTEMPTS,
    })
}

#[cfg(test)]
mod tests;
