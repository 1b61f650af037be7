//! `/api/v1/organizations`: the caller's organizations, and creating one (the caller's admin
//! token then acts for it).

use axum::Json;
use axum::extract::State;
use portcullis_commands::control::OrganizationView;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Admin, ApiJson};
use super::types::Created;
use crate::{ApiError, ApiState};

/// An organization.
#[derive(Debug, Serialize, ToSchema)]
pub struct Organization {
    /// Its id.
    pub id: String,
    /// Display name.
    pub name: String,
}

impl From<OrganizationView> for Organization {
    fn from(view: OrganizationView) -> Self {
        Organization {
            id: view.org_id,
            name: view.name,
        }
    }
}

/// The caller's organizations.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationList {
    /// Every organization the admin token acts for.
    pub organizations: Vec<Organization>,
}

/// An organization to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrganization {
    /// Display name (1 to 100 characters, trimmed; no control characters).
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*\S[^\x00-\x1f\x7f-\x9f]*$",
        example = "Acme"
    )]
    pub name: String,
}

/// Lists the organizations the admin token acts for.
#[utoipa::path(
    get,
    path = "/api/v1/organizations",
    tag = "organizations",
    operation_id = "list_organizations",
    responses((status = 200, description = "The caller's organizations", body = OrganizationList))
)]
pub async fn list(
    admin: Admin,
    State(state): State<ApiState>,
) -> Result<Json<OrganizationList>, ApiError> {
    let organizations = state.control.list_organizations(&admin.principal).await?;
    Ok(Json(OrganizationList {
        organizations: organizations.into_iter().map(Organization::from).collect(),
    }))
}

/// Creates an organization; the calling admin token acts for it from then on.
#[utoipa::path(
    post,
    path = "/api/v1/organizations",
    tag = "organizations",
    operation_id = "create_organization",
    request_body = CreateOrganization,
    responses((status = 201, description = "Created", body = Organization))
)]
pub async fn create(
    admin: Admin,
    State(state): State<ApiState>,
    ApiJson(request): ApiJson<CreateOrganization>,
) -> Result<Created<Organization>, ApiError> {
    let organization = state
        .control
        .create_organization(&admin.principal, &admin.context, admin.key(), &request.name)
        .await?;
    Ok(Created(organization.into()))
}
