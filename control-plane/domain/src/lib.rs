//! The control plane's aggregates: what each command does to the state its events describe.
//!
//! Owns: the `Aggregate` trait (pure `evolve` and `decide`), one module per aggregate
//! (`organization`, `admin_token`, `host`, `server`, `reservation` (server keys and human
//! emails), `human`, `grant`, `agent`, `session`) with its commands and refusals, and the value
//! rules that commands need (`host_id`, `validate`).
//!
//! Must not: do IO, read a clock or draw randomness inside `decide` (ids and times arrive in
//! the command), or know HTTP, gRPC or storage. A refusal here is a domain answer
//! (`…Rejected`), never an infrastructure failure.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod admin_token;
pub mod agent;
pub mod classify;
pub mod grant;
pub mod host;
pub mod host_id;
pub mod human;
pub mod organization;
pub mod reservation;
pub mod server;
pub mod session;
pub mod upstream_credential;
pub mod validate;

/// The body of a domain event (the envelope's metadata is added when it is recorded).
pub use portcullis_proto::events::v1::event::Body as EventBody;

/// What a command decided.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision<E> {
    /// Record this event.
    Append(E),
    /// The aggregate already is as the command wants it; record nothing.
    Unchanged,
}

/// An aggregate: state folded from its own events, and a pure decision per command.
pub trait Aggregate: Default + Send {
    /// The command type.
    type Command: Send + Sync;
    /// A domain refusal.
    type Rejection: std::error::Error + Send + Sync + 'static;

    /// Folds one event in. Total: an event of another aggregate leaves the state as it is.
    fn evolve(self, event: &EventBody) -> Self;

    /// Decides what `command` does to this state. Pure.
    fn decide(&self, command: &Self::Command) -> Result<Decision<EventBody>, Self::Rejection>;
}
