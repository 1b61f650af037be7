//! The OpenAPI 3.1 document of the REST API, served at `GET /api/v1/openapi.json` (no
//! authentication).
//!
//! Operations and schemas come from the handlers' `#[utoipa::path]` attributes and the DTOs'
//! `ToSchema` derives, collected by the same `rest::api_router` that routes requests, so the
//! document cannot list a route that is not served. What every operation shares is added
//! once here (`conventions`): the bearer security scheme, the `Idempotency-Key` header of
//! writes, the `x-request-id` response header, and the error responses with the one error
//! body.

use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa::openapi::path::{HttpMethod, Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, Ref, RefOr, Required, ResponseBuilder, header::HeaderBuilder,
};

use crate::rest::types::{ErrorBody, ErrorDetail};

/// The security scheme's name in the document.
pub const SECURITY_SCHEME: &str = "admin_token";

/// The path of the document itself.
pub const DOCUMENT_PATH: &str = "/api/v1/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Portcullis admin API",
        version = "1",
        description = "The admin control API of the Portcullis agent security gateway: \
            organizations, hosts, upstream MCP servers and their tools, humans and their grants, \
            agents and their caps, and the audit log. Every endpoint except this document needs \
            an admin token (`Authorization: Bearer …`). Errors are \
            `{\"error\": {\"code\", \"message\", \"details\"}}`; a 400 names the offending \
            field in `details.field`. Writes accept an `Idempotency-Key` header: a retry with \
            the same key records nothing twice.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    tags(
        (name = "organizations", description = "The organizations an admin token acts for."),
        (name = "hosts", description = "Hosts: one subdomain each, with their own servers, humans and agents."),
        (name = "servers", description = "Upstream MCP servers of a host and their tools, addressed by key."),
        (name = "humans", description = "Humans of a host, addressed by email, and their grants."),
        (name = "agents", description = "Agents (MCP clients) humans connected, and the admin's controls over them."),
        (name = "audit", description = "Every authorization decision of a host."),
        (name = "meta", description = "This document."),
    ),
    components(schemas(ErrorBody, ErrorDetail)),
)]
struct ApiDoc;

/// The document's skeleton: info, tags, shared schemas; `rest::api_router` adds the paths.
pub(crate) fn base() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The complete document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut document = crate::rest::api_router().into_openapi();
    conventions(&mut document);
    document
}

/// The document as served (built once).
pub fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        document()
            .to_pretty_json()
            .unwrap_or_else(|error| format!(r#"{{"error":"{error}"}}"#))
    })
}

/// This OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    operation_id = "get_openapi_document",
    security(()),
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object))
)]
pub async fn serve() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        document_json(),
    )
        .into_response()
}

/// Reusable error responses: (name, status, description).
const ERRORS: [(&str, &str, &str); 8] = [
    (
        "BadRequest",
        "400",
        "Malformed request: `details.field` names the offending field",
    ),
    ("Unauthorized", "401", "Missing or invalid admin token"),
    (
        "NotFound",
        "404",
        "No such resource, or one the admin token cannot see",
    ),
    (
        "Conflict",
        "409",
        "Conflicts with the current state (a key or email taken)",
    ),
    ("PayloadTooLarge", "413", "Request body larger than 1 MiB"),
    (
        "UnsupportedMediaType",
        "415",
        "Request body not JSON (`Content-Type: application/json`)",
    ),
    (
        "UpstreamFailed",
        "422",
        "The upstream cannot be reached, timed out, wants OAuth, or is not an MCP server",
    ),
    (
        "Unavailable",
        "503",
        "A store is unavailable; retry with the same Idempotency-Key",
    ),
];

fn request_id_header() -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(Type::String))
        .description(Some(
            "The request's id (a ULID), also in the server's logs and events",
        ))
        .build()
}

fn idempotency_key_parameter() -> Parameter {
    ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "1 to 128 printable ASCII characters: a retry with the same key records nothing twice",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(128))
                .pattern(Some("^[!-~]+$")),
        ))
        .build()
}

/// Adds what every operation shares.
fn conventions(document: &mut utoipa::openapi::OpenApi) {
    let components = document.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        SECURITY_SCHEME.to_owned(),
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("An admin token, e.g. `pcat_…`"))
                .build(),
        ),
    );
    for (name, _, description) in ERRORS {
        let response = ResponseBuilder::new()
            .description(description)
            .header("x-request-id", request_id_header())
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        components
            .responses
            .insert(name.to_owned(), RefOr::T(response));
    }
    document.security = Some(vec![SecurityRequirement::new(
        SECURITY_SCHEME,
        Vec::<String>::new(),
    )]);

    for (path, item) in document.paths.paths.iter_mut() {
        let public = path == DOCUMENT_PATH || path == crate::upstream_oauth::CALLBACK_PATH;
        for (method, operation) in [
            (HttpMethod::Get, &mut item.get),
            (HttpMethod::Post, &mut item.post),
            (HttpMethod::Put, &mut item.put),
            (HttpMethod::Patch, &mut item.patch),
            (HttpMethod::Delete, &mut item.delete),
        ] {
            if let Some(operation) = operation
                && !public
            {
                operation_conventions(&method, path, operation);
            }
        }
    }
}

/// POSTs that record nothing: no idempotency key, no conflict.
const READ_ONLY_POSTS: [&str; 1] = ["discover_server"];

fn operation_conventions(method: &HttpMethod, path: &str, operation: &mut Operation) {
    let read_only = operation
        .operation_id
        .as_deref()
        .is_some_and(|id| READ_ONLY_POSTS.contains(&id));
    let write = !matches!(method, HttpMethod::Get) && !read_only;
    let has_body = operation.request_body.is_some();
    if write {
        operation
            .parameters
            .get_or_insert_with(Vec::new)
            .push(idempotency_key_parameter());
    }
    for response in operation.responses.responses.values_mut() {
        if let RefOr::T(response) = response {
            response
                .headers
                .insert("x-request-id".to_owned(), request_id_header());
        }
    }
    let mut errors = vec!["BadRequest", "Unauthorized", "Unavailable"];
    // Every operation is under a host or lists the caller's own things; only the two lists
    // of the caller's own things cannot be 404.
    if path.contains('{') || (write && path != "/api/v1/organizations") {
        errors.push("NotFound");
    }
    if write {
        errors.push("Conflict");
    }
    if has_body {
        errors.extend(["PayloadTooLarge", "UnsupportedMediaType"]);
    }
    for name in errors {
        let Some((_, status, _)) = ERRORS.iter().find(|(n, _, _)| *n == name) else {
            continue;
        };
        operation
            .responses
            .responses
            .entry((*status).to_owned())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
    }
}
