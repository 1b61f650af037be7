//! The protobuf contracts of Portcullis and the few conversions every crate needs around them.
//!
//! Owns: the generated code of `portcullis/{events,audit,control}/v1/*.proto` (messages, the
//! gRPC clients and servers of the control API) and their file descriptor set for gRPC
//! reflection; the domain `TrustLevel`; the event envelope codec (`encode_event`,
//! `decode_event`, `event_type`); the subject layout of every aggregate (`subjects`).
//!
//! Must not: decide anything (no command handling, no folds), do IO, or know a storage
//! backend beyond the `portcullis-store` record types.
//!
//! Invariant: an event read back from the log is either fully valid (one known body whose
//! type agrees with the stored type name, every trust level LOW, MEDIUM or HIGH, every
//! upstream timeout within its bounds) or a typed `DecodeError`; decoding never panics and
//! never yields a half-understood event.

mod codec;
pub mod subjects;
mod trust;

pub use codec::{DecodeError, EVENT_TYPES, decode_event, encode_event, event_type};
pub use trust::{InvalidTrustLevel, ParseTrustLevelError, TrustLevel};

/// Generated code, nested the way the protobuf packages are (generated code refers to other
/// packages through `super::` paths, so this nesting must mirror the package names).
#[allow(missing_docs, missing_debug_implementations, clippy::all)]
pub mod portcullis {
    /// Generated from `portcullis/events/v1/events.proto`.
    pub mod events {
        /// Version 1.
        pub mod v1 {
            tonic::include_proto!("portcullis.events.v1");
        }
    }
    /// Generated from `portcullis/audit/v1/audit.proto`.
    pub mod audit {
        /// Version 1.
        pub mod v1 {
            tonic::include_proto!("portcullis.audit.v1");
        }
    }
    /// Generated from `portcullis/control/v1/control.proto`.
    pub mod control {
        /// Version 1.
        pub mod v1 {
            tonic::include_proto!("portcullis.control.v1");
        }
    }
}

pub use portcullis::{audit, control, events};

/// The encoded `FileDescriptorSet` of every Portcullis proto file, for gRPC reflection
/// (`tonic_reflection::server::Builder::register_encoded_file_descriptor_set`).
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("portcullis_descriptor");

/// Session idle lifetime when a host's settings leave it unset: 30 days.
pub const DEFAULT_SESSION_IDLE_SECONDS: u64 = 30 * 24 * 60 * 60;

/// Session absolute lifetime when a host's settings leave it unset: 90 days.
pub const DEFAULT_SESSION_ABSOLUTE_SECONDS: u64 = 90 * 24 * 60 * 60;

/// Shortest per-server upstream timeout an event may carry: 1 second (zero would fail every
/// call at once).
pub const MIN_UPSTREAM_TIMEOUT_SECONDS: u64 = 1;

/// Longest per-server upstream timeout an event may carry: 1 hour. `decode_event` refuses
/// events outside these bounds, so readers of the read models can rely on them; raising the
/// limit means upgrading every reader before the first writer.
pub const MAX_UPSTREAM_TIMEOUT_SECONDS: u64 = 60 * 60;

#[cfg(test)]
mod tests;
