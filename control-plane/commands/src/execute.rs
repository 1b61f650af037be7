//! `execute`: load → decide → append(expected version) → on conflict, again.

use std::time::Duration;

use portcullis_domain::{Aggregate, Decision};
use portcullis_proto::events::v1::{Actor, Event, EventMeta, actor};
use portcullis_proto::{DecodeError, decode_event, encode_event};
use portcullis_store::{AppendError, CommandId, EventLog, LogError, Subject, Version};

/// How many times a command is decided again after losing a race before it gives up.
const MAX_ATTEMPTS: u32 = 8;

/// Who and when: the metadata of the events one request records.
#[derive(Clone, Debug, PartialEq)]
pub struct Context {
    /// When the command was decided, milliseconds since the Unix epoch.
    pub now_ms: i64,
    /// Who asked.
    pub actor: actor::Kind,
    /// The request or workflow id.
    pub correlation_id: String,
}

impl Context {
    /// A context for the gateway acting on its own behalf, at the current time.
    pub fn system(component: &str, correlation_id: &str) -> Self {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Self {
            now_ms,
            actor: actor::Kind::System(component.to_owned()),
            correlation_id: correlation_id.to_owned(),
        }
    }

    fn meta(&self) -> EventMeta {
        EventMeta {
            occurred_at_ms: self.now_ms,
            actor: Some(Actor {
                kind: Some(self.actor.clone()),
            }),
            correlation_id: self.correlation_id.clone(),
        }
    }
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
    #[error("cannot decode the history of {subject}")]
    Decode {
        /// The aggregate.
        subject: Subject,
        /// Why.
        #[source]
        source: DecodeError,
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

/// The current state and version of the aggregate at `subject`, folded from its events.
pub async fn load_state<A: Aggregate>(
    log: &dyn EventLog,
    subject: &Subject,
) -> Result<(A, Version), ExecuteError<A::Rejection>> {
    let loaded = log
        .load(subject)
        .await
        .map_err(|source| ExecuteError::Load {
            subject: subject.clone(),
            source,
        })?;
    let mut state = A::default();
    for record in &loaded.events {
        let event = decode_event(record).map_err(|source| ExecuteError::Decode {
            subject: subject.clone(),
            source,
        })?;
        if let Some(body) = &event.body {
            state = state.evolve(body);
        }
    }
    Ok((state, loaded.version))
}

/// Executes `command` against the aggregate at `subject`.
///
/// The command id makes a retried request idempotent: a command id that the aggregate already
/// recorded is reported as done (`appended: false`) without a second event.
#[tracing::instrument(name = "control.command", skip_all, fields(%subject, %command_id))]
pub async fn execute<A: Aggregate>(
    log: &dyn EventLog,
    context: &Context,
    subject: &Subject,
    command_id: &CommandId,
    command: &A::Command,
) -> Result<Executed<A>, ExecuteError<A::Rejection>> {
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
            let event = decode_event(record).map_err(|source| ExecuteError::Decode {
                subject: subject.clone(),
                source,
            })?;
            if let Some(body) = &event.body {
                state = state.evolve(body);
            }
        }
        if loaded.events.iter().any(|e| &e.command_id == command_id) {
            // This command was recorded before (a retry after a lost response).
            return Ok(Executed {
                state,
                version: loaded.version,
                appended: false,
            });
        }
        let body = match state.decide(command).map_err(ExecuteError::Rejected)? {
            Decision::Unchanged => {
                return Ok(Executed {
                    state,
                    version: loaded.version,
                    appended: false,
                });
            }
            Decision::Append(body) => body,
        };
        let event = Event {
            meta: Some(context.meta()),
            body: Some(body.clone()),
        };
        match log
            .append(subject, loaded.version, command_id, encode_event(event))
            .await
        {
            Ok(appended) if appended.duplicate => {
                // The log already held this command id: a racing twin of this request (the
                // same idempotency key on another replica) appended between our load and our
                // append, and its event, not ours, is the truth. Load again, where the
                // recorded-before branch answers with the state as recorded.
                tracing::debug!(
                    attempt,
                    "The command was recorded by a racing twin; loading it."
                );
            }
            Ok(appended) => {
                return Ok(Executed {
                    state: state.evolve(&body),
                    version: Version(appended.sequence),
                    appended: true,
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
