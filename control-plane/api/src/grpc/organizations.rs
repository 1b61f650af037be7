//! `OrganizationService`: the caller's organizations, and creating one.

use portcullis_proto::control::v1 as api;
use portcullis_proto::control::v1::organization_service_server::OrganizationService;
use tonic::{Request, Response, Status};

use super::{Api, control_status, convert};

#[tonic::async_trait]
impl OrganizationService for Api {
    async fn list_organizations(
        &self,
        request: Request<api::ListOrganizationsRequest>,
    ) -> Result<Response<api::ListOrganizationsResponse>, Status> {
        let principal = self.principal(&request).await?;
        let organizations = self
            .state
            .control
            .list_organizations(&principal)
            .await
            .map_err(control_status)?;
        Ok(Response::new(api::ListOrganizationsResponse {
            organizations: organizations
                .into_iter()
                .map(convert::organization)
                .collect(),
        }))
    }

    async fn create_organization(
        &self,
        request: Request<api::CreateOrganizationRequest>,
    ) -> Result<Response<api::Organization>, Status> {
        let call = self.write(&request).await?;
        let view = self
            .state
            .control
            .create_organization(
                &call.principal,
                &call.context,
                call.key(),
                &request.get_ref().name,
            )
            .await
            .map_err(control_status)?;
        Ok(Response::new(convert::organization(view)))
    }
}
