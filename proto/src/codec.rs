//! The event envelope on the log: one `Event` per record, its body's variant name as the
//! record's type name, and the checks that make a decoded event trustworthy.

use bytes::Bytes;
use portcullis_store::{NewEvent, RecordedEvent};
use prost::Message;

use crate::events::v1::{Event, Tool, event::Body, server_details_changed};
use crate::{MAX_UPSTREAM_TIMEOUT_SECONDS, MIN_UPSTREAM_TIMEOUT_SECONDS, TrustLevel};

/// One list of every body variant, so `event_type` and `EVENT_TYPES` cannot drift apart.
macro_rules! event_bodies {
    ($($variant:ident),* $(,)?) => {
        /// The type name stored beside each event: its body's variant name, e.g.
        /// `"GrantIssued"`; `"Empty"` for an event without a body (which `decode_event`
        /// rejects, so such an event must never be appended).
        pub fn event_type(event: &Event) -> &'static str {
            match &event.body {
                $(Some(Body::$variant(_)) => stringify!($variant),)*
                None => "Empty",
            }
        }

        /// Every event type name this build knows.
        pub const EVENT_TYPES: &[&str] = &[$(stringify!($variant)),*];
    };
}

event_bodies!(
    OrganizationCreated,
    DefaultHostAssigned,
    AdminTokenIssued,
    AdminTokenRevoked,
    AdminTokenOrganizationAdded,
    HostCreated,
    HostSettingsChanged,
    HostDeleted,
    HostSigningKeyAdded,
    HostSigningKeyRetired,
    ServerImported,
    ServerDetailsChanged,
    ToolAdded,
    ToolChanged,
    ToolRemoved,
    ServerDeleted,
    ServerKeyClaimed,
    ServerKeyReleased,
    HumanAdded,
    HumanRemoved,
    HumanEmailClaimed,
    HumanEmailReleased,
    HumanPasswordSet,
    HumanVerificationCodeIssued,
    HumanVerificationFailed,
    HumanEmailVerified,
    GrantIssued,
    GrantChanged,
    GrantRevoked,
    AgentRegistered,
    AgentCapSet,
    AgentCapCleared,
    AgentServerRevoked,
    AgentDeleted,
    AgentConnected,
    SessionStarted,
    SessionRefreshed,
    SessionRevoked,
    UpstreamCredentialStored,
    UpstreamCredentialRevoked,
    UpstreamCredentialRefreshClaimed,
    HumanSignInCodeIssued,
    HumanSignInCodeFailed,
    HumanSignInCodeRedeemed,
    HumanIdentityLinked,
    HumanIdentityClaimed,
    HumanIdentityReleased,
    HumanPasskeyRegistered,
    HumanPasskeyUsed,
);

/// Why a recorded event could not be decoded. Every variant names the log sequence, so an
/// operator can find the record; a projector that meets one stops rather than skip it.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The payload is not a protobuf `Event`.
    #[error("event {sequence} ({event_type}) is not a valid protobuf event")]
    Payload {
        /// Log sequence.
        sequence: u64,
        /// Stored type name.
        event_type: String,
        /// What prost said.
        #[source]
        source: prost::DecodeError,
    },
    /// The stored type name is not one this build knows (written by a newer version?).
    #[error("event {sequence} has unknown type {event_type:?}")]
    UnknownEventType {
        /// Log sequence.
        sequence: u64,
        /// Stored type name.
        event_type: String,
    },
    /// The event has no body this build knows, although its type name is known.
    #[error("event {sequence} ({event_type}) has no body")]
    MissingBody {
        /// Log sequence.
        sequence: u64,
        /// Stored type name.
        event_type: String,
    },
    /// The stored type name and the body disagree.
    #[error("event {sequence} is stored as {event_type} but its body is {body}")]
    TypeMismatch {
        /// Log sequence.
        sequence: u64,
        /// Stored type name.
        event_type: String,
        /// The body's variant name.
        body: &'static str,
    },
    /// The body is well-formed protobuf but breaks a rule of the domain contract.
    #[error("event {sequence} ({event_type}) is invalid: {reason}")]
    Invalid {
        /// Log sequence.
        sequence: u64,
        /// Stored type name.
        event_type: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Encodes an event for `EventLog::append`.
pub fn encode_event(event: Event) -> NewEvent {
    NewEvent {
        event_type: event_type(&event).to_owned(),
        payload: Bytes::from(event.encode_to_vec()),
    }
}

/// Decodes and validates a recorded event.
pub fn decode_event(record: &RecordedEvent) -> Result<Event, DecodeError> {
    let sequence = record.sequence;
    let event = Event::decode(record.payload.clone()).map_err(|source| DecodeError::Payload {
        sequence,
        event_type: record.event_type.clone(),
        source,
    })?;
    let body = event_type(&event);
    if event.body.is_none() {
        return Err(if EVENT_TYPES.contains(&record.event_type.as_str()) {
            DecodeError::MissingBody {
                sequence,
                event_type: record.event_type.clone(),
            }
        } else {
            DecodeError::UnknownEventType {
                sequence,
                event_type: record.event_type.clone(),
            }
        });
    }
    if body != record.event_type {
        return Err(DecodeError::TypeMismatch {
            sequence,
            event_type: record.event_type.clone(),
            body,
        });
    }
    validate(&event).map_err(|reason| DecodeError::Invalid {
        sequence,
        event_type: body,
        reason,
    })?;
    Ok(event)
}

fn check_passkey(credential_id: &[u8], passkey_json: &str) -> Result<(), String> {
    if credential_id.is_empty() || passkey_json.is_empty() {
        return Err("credential_id and passkey_json are required".to_owned());
    }
    Ok(())
}

/// The domain rules protobuf cannot express: metadata present, every trust level a real
/// level, required sub-messages present, upstream timeouts within their bounds.
fn validate(event: &Event) -> Result<(), String> {
    if event.meta.is_none() {
        return Err("metadata is missing".to_owned());
    }
    let Some(body) = &event.body else {
        return Err("body is missing".to_owned());
    };
    match body {
        Body::ServerImported(e) => {
            if let Some(seconds) = e.timeout_seconds {
                check_timeout(seconds)?;
            }
            e.tools.iter().try_for_each(check_tool)
        }
        Body::ServerDetailsChanged(e) => match e.timeout {
            Some(server_details_changed::Timeout::TimeoutSeconds(seconds)) => {
                check_timeout(seconds)
            }
            Some(server_details_changed::Timeout::ClearTimeout(_)) | None => Ok(()),
        },
        Body::ToolAdded(e) => match &e.tool {
            Some(tool) => check_tool(tool),
            None => Err("tool is missing".to_owned()),
        },
        Body::ToolChanged(e) => match e.trust_level {
            Some(level) => check_trust("trust_level", level),
            None => Ok(()),
        },
        Body::GrantIssued(e) => check_trust("max_trust_level", e.max_trust_level),
        Body::GrantChanged(e) => check_trust("max_trust_level", e.max_trust_level),
        Body::AgentCapSet(e) => check_trust("max_trust_level", e.max_trust_level),
        Body::SessionStarted(e) => check_trust("trust_level", e.trust_level),
        Body::HumanPasskeyRegistered(e) => check_passkey(&e.credential_id, &e.passkey_json),
        Body::HumanPasskeyUsed(e) => check_passkey(&e.credential_id, &e.passkey_json),
        Body::HumanIdentityLinked(e) => {
            if e.issuer.is_empty() || e.subject.is_empty() {
                Err("issuer and subject are required".to_owned())
            } else {
                Ok(())
            }
        }
        Body::OrganizationCreated(_)
        | Body::DefaultHostAssigned(_)
        | Body::AdminTokenIssued(_)
        | Body::AdminTokenRevoked(_)
        | Body::AdminTokenOrganizationAdded(_)
        | Body::HostDeleted(_)
        | Body::HostSigningKeyAdded(_)
        | Body::HostSigningKeyRetired(_)
        | Body::ToolRemoved(_)
        | Body::ServerDeleted(_)
        | Body::ServerKeyClaimed(_)
        | Body::ServerKeyReleased(_)
        | Body::HumanAdded(_)
        | Body::HumanRemoved(_)
        | Body::HumanEmailClaimed(_)
        | Body::HumanEmailReleased(_)
        | Body::HumanPasswordSet(_)
        | Body::HumanVerificationCodeIssued(_)
        | Body::HumanVerificationFailed(_)
        | Body::HumanEmailVerified(_)
        | Body::HumanSignInCodeIssued(_)
        | Body::HumanSignInCodeFailed(_)
        | Body::HumanSignInCodeRedeemed(_)
        | Body::HostCreated(_)
        | Body::HostSettingsChanged(_)
        | Body::HumanIdentityClaimed(_)
        | Body::HumanIdentityReleased(_)
        | Body::GrantRevoked(_)
        | Body::AgentRegistered(_)
        | Body::AgentCapCleared(_)
        | Body::AgentServerRevoked(_)
        | Body::AgentDeleted(_)
        | Body::AgentConnected(_)
        | Body::SessionRefreshed(_)
        | Body::SessionRevoked(_)
        | Body::UpstreamCredentialStored(_)
        | Body::UpstreamCredentialRevoked(_)
        | Body::UpstreamCredentialRefreshClaimed(_) => Ok(()),
    }
}

fn check_trust(field: &str, value: i32) -> Result<(), String> {
    TrustLevel::try_from(value)
        .map(|_| ())
        .map_err(|e| format!("{field}: {e}"))
}

fn check_timeout(seconds: u64) -> Result<(), String> {
    if (MIN_UPSTREAM_TIMEOUT_SECONDS..=MAX_UPSTREAM_TIMEOUT_SECONDS).contains(&seconds) {
        Ok(())
    } else {
        Err(format!(
            "timeout_seconds: {seconds} is not {MIN_UPSTREAM_TIMEOUT_SECONDS} to \
             {MAX_UPSTREAM_TIMEOUT_SECONDS}"
        ))
    }
}

fn check_tool(tool: &Tool) -> Result<(), String> {
    if tool.name.is_empty() {
        return Err("a tool has an empty name".to_owned());
    }
    check_trust(
        &format!("tool {:?} trust_level", tool.name),
        tool.trust_level,
    )
}

#[cfg(test)]
mod tests;
