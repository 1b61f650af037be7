//! `AgentService`: pre-register, list, get, cap per server, clear a cap, revoke on a server,
//! delete.

use portcullis_proto::control::v1 as api;
use portcullis_proto::control::v1::agent_service_server::AgentService;
use tonic::{Request, Response, Status};

use super::{Api, control_status, convert, non_empty, status};
use crate::flows::{self, PreRegistration};

#[tonic::async_trait]
impl AgentService for Api {
    async fn register_agent(
        &self,
        request: Request<api::RegisterAgentRequest>,
    ) -> Result<Response<api::Agent>, Status> {
        let call = self.write(&request).await?;
        let message = request.into_inner();
        let view = flows::preregister_client(
            &self.state,
            &call.principal,
            &call.context,
            call.key(),
            &message.host_id,
            PreRegistration {
                name: message.name,
                uri: message.uri,
                redirect_uris: message.redirect_uris,
            },
        )
        .await
        .map_err(status)?;
        Ok(Response::new(convert::agent(view)))
    }

    async fn list_agents(
        &self,
        request: Request<api::ListAgentsRequest>,
    ) -> Result<Response<api::ListAgentsResponse>, Status> {
        let principal = self.principal(&request).await?;
        let message = request.into_inner();
        let human_id = non_empty(message.human_id);
        let agents = self
            .state
            .control
            .list_agents(&principal, &message.host_id, human_id.as_deref())
            .await
            .map_err(control_status)?;
        Ok(Response::new(api::ListAgentsResponse {
            agents: agents.into_iter().map(convert::agent).collect(),
        }))
    }

    async fn get_agent(
        &self,
        request: Request<api::GetAgentRequest>,
    ) -> Result<Response<api::Agent>, Status> {
        let principal = self.principal(&request).await?;
        let message = request.get_ref();
        let view = self
            .state
            .control
            .get_agent(&principal, &message.host_id, &message.agent_id)
            .await
            .map_err(control_status)?;
        Ok(Response::new(convert::agent(view)))
    }

    async fn put_server_cap(
        &self,
        request: Request<api::PutServerCapRequest>,
    ) -> Result<Response<api::Agent>, Status> {
        let call = self.write(&request).await?;
        let message = request.get_ref();
        let level = convert::trust_level("max_trust_level", message.max_trust_level)?;
        let view = self
            .state
            .control
            .put_agent_cap(
                &call.principal,
                &call.context,
                call.key(),
                &message.host_id,
                &message.agent_id,
                &message.server_id,
                level,
            )
            .await
            .map_err(control_status)?;
        Ok(Response::new(convert::agent(view)))
    }

    async fn delete_server_cap(
        &self,
        request: Request<api::DeleteServerCapRequest>,
    ) -> Result<Response<api::Agent>, Status> {
        let call = self.write(&request).await?;
        let message = request.get_ref();
        let view = self
            .state
            .control
            .delete_agent_cap(
                &call.principal,
                &call.context,
                call.key(),
                &message.host_id,
                &message.agent_id,
                &message.server_id,
            )
            .await
            .map_err(control_status)?;
        Ok(Response::new(convert::agent(view)))
    }

    async fn revoke_agent_server(
        &self,
        request: Request<api::RevokeAgentServerRequest>,
    ) -> Result<Response<api::Agent>, Status> {
        let call = self.write(&request).await?;
        let message = request.get_ref();
        let view = self
            .state
            .control
            .revoke_agent_server(
                &call.principal,
                &call.context,
                call.key(),
                &message.host_id,
                &message.agent_id,
                &message.server_id,
            )
            .await
            .map_err(control_status)?;
        Ok(Response::new(convert::agent(view)))
    }

    async fn delete_agent(
        &self,
        request: Request<api::DeleteAgentRequest>,
    ) -> Result<Response<api::DeleteAgentResponse>, Status> {
        let call = self.write(&request).await?;
        let message = request.get_ref();
        self.state
            .control
            .delete_agent(
                &call.principal,
                &call.context,
                call.key(),
                &message.host_id,
                &message.agent_id,
            )
            .await
            .map_err(control_status)?;
        Ok(Response::new(api::DeleteAgentResponse {}))
    }
}
