//! `HumanService`: add by email, list, get (with grants and agents), delete, and grants.

use portcullis_proto::control::v1 as api;
use portcullis_proto::control::v1::human_service_server::HumanService;
use tonic::{Request, Response, Status};

use super::{Api, control_status, convert};

#[tonic::async_trait]
impl HumanService for Api {
    async fn add_human(
        &self,
        request: Request<api::AddHumanRequest>,
    ) -> Result<Response<api::Human>, Status> {
        let call = self.write(&request).await?;
        let message = request.get_ref();
        let view = self
            .state
            .control
            .add_human(
                &call.principal,
                &call.context,
                call.key(),
                &message.host_id,
                &message.email,
            )
            .await
            .map_err(control_status)?;
        Ok(Response::new(convert::human(view)))
    }

    async fn list_humans(
        &self,
        request: Request<api::ListHumansRequest>,
    ) -> Result<Response<api::ListHumansResponse>, Status> {
        let principal = self.principal(&request).await?;
        let humans = self
            .state
            .control
            .list_humans(&principal, &request.get_ref().host_id)
            .await
            .map_err(control_status)?;
        Ok(Response::new(api::ListHumansResponse {
            humans: humans.into_iter().map(convert::human).collect(),
        }))
    }

    async fn get_human(
        &self,
        request: Request<api::GetHumanRequest>,
    ) -> Result<Response<api::Human>, Status> {
        let principal = self.principal(&request).await?;
        let message = request.get_ref();
        let detail = self
            .state
            .control
            .get_human(&principal, &message.host_id, &message.human_id)
            .await
            .map_err(control_status)?;
        Ok(Response::new(convert::human_detail(detail)))
    }

    async fn delete_human(
        &self,
        request: Request<api::DeleteHumanRequest>,
    ) -> Result<Response<api::DeleteHumanResponse>, Status> {
        let call = self.write(&request).await?;
        let message = request.get_ref();
        self.state
            .control
            .delete_human(
                &call.principal,
                &call.context,
                call.key(),
                &message.host_id,
                &message.human_id,
            )
            .await
            .map_err(control_status)?;
        Ok(Response::new(api::DeleteHumanResponse {}))
    }

    async fn put_grant(
        &self,
        request: Request<api::PutGrantRequest>,
    ) -> Result<Response<api::Grant>, Status> {
        let call = self.write(&request).await?;
        let message = request.get_ref();
        let level = convert::trust_level("max_trust_level", message.max_trust_level)?;
        let view = self
            .state
            .control
            .put_grant(
                &call.principal,
                &call.context,
                call.key(),
                &message.host_id,
                &message.human_id,
                &message.server_id,
                level,
            )
            .await
            .map_err(control_status)?;
        Ok(Response::new(convert::grant(view)))
    }

    async fn delete_grant(
        &self,
        request: Request<api::DeleteGrantRequest>,
    ) -> Result<Response<api::DeleteGrantResponse>, Status> {
        let call = self.write(&request).await?;
        let message = request.get_ref();
        self.state
            .control
            .delete_grant(
                &call.principal,
                &call.context,
                call.key(),
                &message.host_id,
                &message.human_id,
                &message.server_id,
            )
            .await
            .map_err(control_status)?;
        Ok(Response::new(api::DeleteGrantResponse {}))
    }
}
