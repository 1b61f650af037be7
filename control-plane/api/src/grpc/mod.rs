//! The gRPC surface: `portcullis.control.v1.*` over the control service, plus
//! `grpc.health.v1.Health` and server reflection (v1, and v1alpha for grpcurl 1.8).
//!
//! Every rpc authenticates from the `authorization` metadata entry (`Bearer <token>`, exactly
//! as the REST header), builds an admin `Context` with the call's request id (a fresh ULID,
//! returned as `x-request-id` response metadata on every rpc, as REST does), honours an
//! `idempotency-key` metadata entry on writes, calls `Control` (or `flows`), and converts the
//! view (`convert`). Every failure goes through `ApiError` → `tonic::Status`, the one mapping
//! shared with REST: a wrong or missing token is UNAUTHENTICATED, another organization's host
//! NOT_FOUND, a bad field INVALID_ARGUMENT naming it.
//!
//! Services are mounted on plain axum routes (`/<package>.<Service>/*`), so the router has no
//! fallback of its own and `crate::router` can merge it with REST and add the JSON 404.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::Waker;

use axum::Router;
use axum::response::IntoResponse;
use portcullis_commands::Context;
use portcullis_commands::control::{ControlError, IdempotencyKey, Principal};
use portcullis_proto::control::v1::agent_service_server::AgentServiceServer;
use portcullis_proto::control::v1::audit_service_server::AuditServiceServer;
use portcullis_proto::control::v1::host_service_server::HostServiceServer;
use portcullis_proto::control::v1::human_service_server::HumanServiceServer;
use portcullis_proto::control::v1::organization_service_server::OrganizationServiceServer;
use portcullis_proto::control::v1::server_service_server::ServerServiceServer;
use tonic::codegen::Service;
use tonic::server::NamedService;
use tonic::{Request, Status};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::rest::extract::RequestId;
use crate::{ApiError, ApiState};

mod agents;
mod audit;
mod convert;
mod hosts;
mod humans;
mod organizations;
mod servers;

/// The metadata entry carrying the admin bearer token (gRPC lower-cases header names).
const AUTHORIZATION: &str = "authorization";
/// The metadata entry carrying a caller's idempotency key for a write.
const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The names of the control services, for health and for tests.
pub const SERVICE_NAMES: [&str; 6] = [
    <OrganizationServiceServer<Api> as NamedService>::NAME,
    <HostServiceServer<Api> as NamedService>::NAME,
    <ServerServiceServer<Api> as NamedService>::NAME,
    <HumanServiceServer<Api> as NamedService>::NAME,
    <AgentServiceServer<Api> as NamedService>::NAME,
    <AuditServiceServer<Api> as NamedService>::NAME,
];

/// The gRPC services as an axum router (no fallback).
pub fn router(state: ApiState) -> Router {
    let api = Api { state };
    let router = Router::new();
    let router = mount(router, OrganizationServiceServer::new(api.clone()));
    let router = mount(router, HostServiceServer::new(api.clone()));
    let router = mount(router, ServerServiceServer::new(api.clone()));
    let router = mount(router, HumanServiceServer::new(api.clone()));
    let router = mount(router, AgentServiceServer::new(api.clone()));
    let router = mount(router, AuditServiceServer::new(api));

    let (reporter, health) = tonic_health::server::health_reporter();
    for name in SERVICE_NAMES {
        set_serving(&reporter, name);
    }
    let router = mount(router, health);

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(portcullis_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    // Building fails only on a malformed descriptor set (a build bug); serve the API anyway.
    let router = match reflection().build_v1() {
        Ok(v1) => mount(router, v1),
        Err(error) => {
            tracing::error!(%error, "gRPC reflection v1 unavailable.");
            router
        }
    };
    let router = match reflection().build_v1alpha() {
        Ok(v1alpha) => mount(router, v1alpha),
        Err(error) => {
            tracing::error!(%error, "gRPC reflection v1alpha unavailable.");
            router
        }
    };
    // As on REST: a fresh request id per call, returned in `x-request-id` (response metadata,
    // also on failures) and recorded as the correlation id of the events a write records.
    router.layer(axum::middleware::from_fn(crate::rest::extract::request_id))
}

/// Routes `/<S::NAME>/*` to `service`, as `tonic::service::Routes` does, but without its
/// UNIMPLEMENTED fallback (REST clients get `crate::router`'s JSON 404 instead).
fn mount<S>(router: Router, service: S) -> Router
where
    S: Service<axum::extract::Request, Error = Infallible>
        + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    router.route_service(&format!("/{}/{{*rest}}", S::NAME), service)
}

/// Marks `name` SERVING. `HealthReporter` only has async setters, behind a tokio `RwLock`
/// that nobody else holds yet (the reporter was just made), so the future completes on its
/// first poll; `unconstrained` keeps tokio's cooperative budget from deferring it.
fn set_serving(reporter: &HealthReporter, name: &str) {
    let mut future = pin!(tokio::task::unconstrained(
        reporter.set_service_status(name, ServingStatus::Serving)
    ));
    let mut context = std::task::Context::from_waker(Waker::noop());
    if future.as_mut().poll(&mut context).is_pending() {
        tracing::error!(
            service = name,
            "Health status could not be set; it reads as unknown."
        );
    }
}

/// The implementation of every control service: the API state, cloned per service.
#[derive(Clone, Debug)]
pub(crate) struct Api {
    state: ApiState,
}

/// Who calls a write, and under which request id and idempotency key.
struct Write {
    principal: Principal,
    context: Context,
    idempotency_key: Option<IdempotencyKey>,
}

impl Write {
    fn key(&self) -> Option<&IdempotencyKey> {
        self.idempotency_key.as_ref()
    }
}

impl Api {
    /// The admin calling, from the `authorization` metadata entry.
    async fn principal<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        let authorization = request
            .metadata()
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        crate::auth::authenticate(&self.state.control, authorization)
            .await
            .map_err(control_status)
    }

    /// The admin calling a write, with a fresh request id and the caller's idempotency key
    /// (checked only once the caller is authenticated).
    async fn write<T>(&self, request: &Request<T>) -> Result<Write, Status> {
        let principal = self.principal(request).await?;
        let idempotency_key = match request.metadata().get(IDEMPOTENCY_KEY) {
            None => None,
            Some(value) => {
                let text = value.to_str().map_err(|_| {
                    status(ApiError::invalid(
                        "idempotency_key",
                        "must be printable ASCII",
                    ))
                })?;
                Some(IdempotencyKey::parse(text).map_err(control_status)?)
            }
        };
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map_or_else(|| ulid::Ulid::new().to_string(), |id| id.0.clone());
        let context = Context::admin(&principal, &request_id);
        Ok(Write {
            principal,
            context,
            idempotency_key,
        })
    }
}

/// The gRPC status of an API failure; server-side failures are logged first (the status
/// carries only the client-safe message).
fn status(error: ApiError) -> Status {
    let (http, _, _) = error.parts();
    if http.is_server_error() {
        tracing::warn!(error = %error, cause = ?std::error::Error::source(&error), "gRPC request failed.");
    }
    Status::from(error)
}

/// The gRPC status of a control failure.
fn control_status(error: ControlError) -> Status {
    status(ApiError::from(error))
}

/// An INVALID_ARGUMENT naming `field`.
fn invalid(field: impl Into<String>, message: impl Into<String>) -> Status {
    status(ApiError::invalid(field, message))
}

/// `None` for an empty proto3 string (the wire's "not set").
fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}
