//! `ServerService`: discover, import (both through `flows`, like REST, including the upstream
//! OAuth browser flow: discover answers with its `authorization_url`, import takes the
//! `authorization` handle the callback answered with), list, get, change, delete, tools by
//! hand, and refresh.

use portcullis_commands::control::{
    HostView, NewTool, Principal, ServerDetailsPatch, ServerView, UpstreamOAuthInput,
};
use portcullis_domain::server::ToolOverride;
use portcullis_domain::validate::{derive_server_key, numbered_server_key};
use portcullis_proto::control::v1 as api;
use portcullis_proto::control::v1::server_service_server::ServerService;
use portcullis_upstream::Secret;
use portcullis_upstream::schema_hash::schema_sha256;
use tonic::{Request, Response, Status};

use super::{Api, control_status, convert, invalid, non_empty, status};
use crate::flows::{self, DiscoverOutcome, ImportRequest};
use crate::upstream_oauth::Start;

/// How many numbered alternatives of a derived key discovery tries (`key-2` … `key-20`), as
/// import does.
const MAX_SUGGESTED_KEYS: u32 = 20;

impl Api {
    /// The host the servers of a request belong to, for their MCP URLs.
    async fn host(&self, principal: &Principal, host_id: &str) -> Result<HostView, Status> {
        self.state
            .control
            .get_host(principal, host_id)
            .await
            .map_err(control_status)
    }

    /// The message of a server of `host`, with its MCP URL at the gateway (as REST has it).
    fn server(&self, host: &HostView, view: ServerView) -> api::Server {
        let mcp_url =
            self.state
                .public_urls
                .server_mcp_url(&host.host_id, host.is_default, &view.key);
        convert::server(view, mcp_url)
    }

    /// The first of the derived key and its numbered alternatives that no server of the host
    /// holds; empty when all are taken.
    async fn suggested_key(
        &self,
        principal: &Principal,
        host_id: &str,
        name: Option<&str>,
        url: &str,
    ) -> Result<String, Status> {
        let base = derive_server_key(name, url);
        let candidates = std::iter::once(base.clone())
            .chain((2..=MAX_SUGGESTED_KEYS).map(|n| numbered_server_key(&base, n)));
        for key in candidates {
            match self
                .state
                .control
                .find_server_by_key(principal, host_id, &key)
                .await
            {
                Err(portcullis_commands::control::ControlError::NotFound { .. }) => return Ok(key),
                Ok(_) => {}
                Err(other) => return Err(control_status(other)),
            }
        }
        Ok(String::new())
    }
}

/// The import overrides of a request; trust levels must be levels (`tools[i].trust_level`).
fn overrides(tools: Vec<api::ToolOverride>) -> Result<Vec<ToolOverride>, Status> {
    tools
        .into_iter()
        .enumerate()
        .map(|(index, tool)| {
            Ok(ToolOverride {
                trust_level: convert::optional_trust_level(
                    &format!("tools[{index}].trust_level"),
                    tool.trust_level,
                )?,
                name: tool.name,
                enabled: tool.enabled,
            })
        })
        .collect()
}

/// The upstream OAuth client of a request, as the control service takes it.
fn oauth_input(oauth: Option<api::UpstreamOAuthInput>) -> Option<UpstreamOAuthInput> {
    oauth.map(|oauth| UpstreamOAuthInput {
        client_id: oauth.client_id,
        client_secret: oauth.client_secret,
    })
}

/// A tool added by hand: the admin's level (required), its schema hashed canonically.
fn new_tool(message: &api::AddToolRequest) -> Result<NewTool, Status> {
    let trust_level = convert::trust_level("trust_level", message.trust_level)?;
    let input_schema_sha256 = if message.input_schema_json.trim().is_empty() {
        Vec::new()
    } else {
        let schema = serde_json::from_str::<serde_json::Value>(&message.input_schema_json)
            .map_err(|e| invalid("input_schema_json", format!("not JSON: {e}")))?;
        convert::decode_hex(&schema_sha256(&schema)).unwrap_or_default()
    };
    Ok(NewTool {
        name: message.name.clone(),
        description: message.description.clone(),
        input_schema_sha256,
        trust_level,
        classification: None,
    })
}

#[tonic::async_trait]
impl ServerService for Api {
    async fn discover_server(
        &self,
        request: Request<api::DiscoverServerRequest>,
    ) -> Result<Response<api::DiscoverServerResponse>, Status> {
        let principal = self.principal(&request).await?;
        let api::DiscoverServerRequest {
            host_id,
            url,
            oauth,
        } = request.into_inner();
        let outcome = flows::discover(&self.state, &principal, &host_id, &url, oauth_input(oauth))
            .await
            .map_err(status)?;
        let response = match outcome {
            DiscoverOutcome::Discovered(discovery) => {
                let name = discovery
                    .server
                    .title
                    .clone()
                    .filter(|t| !t.trim().is_empty())
                    .unwrap_or_else(|| discovery.server.name.clone());
                let tools = flows::recorded_tools(&discovery).map_err(status)?;
                let suggested_key = self
                    .suggested_key(
                        &principal,
                        &host_id,
                        non_empty(name.clone()).as_deref(),
                        &discovery.url,
                    )
                    .await?;
                api::DiscoverServerResponse {
                    url: discovery.url,
                    name,
                    description: discovery.instructions.unwrap_or_default(),
                    requires_oauth: false,
                    tools,
                    suggested_key,
                    resource_metadata: String::new(),
                    authorization_url: String::new(),
                    message: String::new(),
                }
            }
            DiscoverOutcome::AuthorizationRequired {
                url,
                resource_metadata,
                start,
            } => {
                let suggested_key = self.suggested_key(&principal, &host_id, None, &url).await?;
                let (authorization_url, message) = match start {
                    Start::Browser { authorization_url } => (authorization_url, String::new()),
                    Start::Unavailable { message } => (String::new(), message),
                };
                api::DiscoverServerResponse {
                    url,
                    requires_oauth: true,
                    suggested_key,
                    resource_metadata: resource_metadata.unwrap_or_default(),
                    authorization_url,
                    message,
                    ..api::DiscoverServerResponse::default()
                }
            }
        };
        Ok(Response::new(response))
    }

    async fn import_server(
        &self,
        request: Request<api::ImportServerRequest>,
    ) -> Result<Response<api::Server>, Status> {
        let call = self.write(&request).await?;
        let host = self
            .host(&call.principal, &request.get_ref().host_id)
            .await?;
        let message = request.into_inner();
        let import = ImportRequest {
            url: message.url,
            key: non_empty(message.key),
            name: non_empty(message.name),
            description: non_empty(message.description),
            tools: overrides(message.tools)?,
            oauth: oauth_input(message.oauth),
            authorization: non_empty(message.authorization).map(Secret::new),
            timeout_seconds: message.timeout_seconds,
        };
        let view = flows::import(
            &self.state,
            &call.principal,
            &call.context,
            call.key(),
            &message.host_id,
            import,
        )
        .await
        .map_err(status)?;
        Ok(Response::new(self.server(&host, view)))
    }

    async fn list_servers(
        &self,
        request: Request<api::ListServersRequest>,
    ) -> Result<Response<api::ListServersResponse>, Status> {
        let principal = self.principal(&request).await?;
        let host = self.host(&principal, &request.get_ref().host_id).await?;
        let servers = self
            .state
            .control
            .list_servers(&principal, &request.get_ref().host_id)
            .await
            .map_err(control_status)?;
        Ok(Response::new(api::ListServersResponse {
            servers: servers
                .into_iter()
                .map(|view| self.server(&host, view))
                .collect(),
        }))
    }

    async fn get_server(
        &self,
        request: Request<api::GetServerRequest>,
    ) -> Result<Response<api::Server>, Status> {
        let principal = self.principal(&request).await?;
        let host = self.host(&principal, &request.get_ref().host_id).await?;
        let message = request.get_ref();
        let view = self
            .state
            .control
            .get_server(&principal, &message.host_id, &message.server_id)
            .await
            .map_err(control_status)?;
        Ok(Response::new(self.server(&host, view)))
    }

    async fn update_server(
        &self,
        request: Request<api::UpdateServerRequest>,
    ) -> Result<Response<api::Server>, Status> {
        let call = self.write(&request).await?;
        let host = self
            .host(&call.principal, &request.get_ref().host_id)
            .await?;
        let message = request.into_inner();
        let view = self
            .state
            .control
            .update_server(
                &call.principal,
                &call.context,
                call.key(),
                &message.host_id,
                &message.server_id,
                ServerDetailsPatch {
                    name: message.name,
                    description: message.description,
                    timeout_seconds: message.timeout_seconds,
                    clear_timeout: message.clear_timeout,
                },
            )
            .await
            .map_err(control_status)?;
        Ok(Response::new(self.server(&host, view)))
    }

    async fn delete_server(
        &self,
        request: Request<api::DeleteServerRequest>,
    ) -> Result<Response<api::DeleteServerResponse>, Status> {
        let call = self.write(&request).await?;
        let message = request.get_ref();
        self.state
            .control
            .delete_server(
                &call.principal,
                &call.context,
                call.key(),
                &message.host_id,
                &message.server_id,
            )
            .await
            .map_err(control_status)?;
        Ok(Response::new(api::DeleteServerResponse {}))
    }

    async fn add_tool(
        &self,
        request: Request<api::AddToolRequest>,
    ) -> Result<Response<api::Server>, Status> {
        let call = self.write(&request).await?;
        let host = self
            .host(&call.principal, &request.get_ref().host_id)
            .await?;
        let message = request.get_ref();
        let tool = new_tool(message)?;
        let view = self
            .state
            .control
            .add_tool(
                &call.principal,
                &call.context,
                call.key(),
                &message.host_id,
                &message.server_id,
                tool,
            )
            .await
            .map_err(control_status)?;
        Ok(Response::new(self.server(&host, view)))
    }

    async fn update_tool(
        &self,
        request: Request<api::UpdateToolRequest>,
    ) -> Result<Response<api::Server>, Status> {
        let call = self.write(&request).await?;
        let host = self
            .host(&call.principal, &request.get_ref().host_id)
            .await?;
        let message = request.get_ref();
        let trust_level = convert::optional_trust_level("trust_level", message.trust_level)?;
        let view = self
            .state
            .control
            .update_tool(
                &call.principal,
                &call.context,
                call.key(),
                &message.host_id,
                &message.server_id,
                &message.name,
                trust_level,
                message.enabled,
            )
            .await
            .map_err(control_status)?;
        Ok(Response::new(self.server(&host, view)))
    }

    async fn remove_tool(
        &self,
        request: Request<api::RemoveToolRequest>,
    ) -> Result<Response<api::Server>, Status> {
        let call = self.write(&request).await?;
        let host = self
            .host(&call.principal, &request.get_ref().host_id)
            .await?;
        let message = request.get_ref();
        let view = self
            .state
            .control
            .remove_tool(
                &call.principal,
                &call.context,
                call.key(),
                &message.host_id,
                &message.server_id,
                &message.name,
            )
            .await
            .map_err(control_status)?;
        Ok(Response::new(self.server(&host, view)))
    }

    async fn refresh_server(
        &self,
        request: Request<api::RefreshServerRequest>,
    ) -> Result<Response<api::RefreshServerResponse>, Status> {
        let call = self.write(&request).await?;
        let host = self
            .host(&call.principal, &request.get_ref().host_id)
            .await?;
        let message = request.get_ref();
        let server = self
            .state
            .control
            .get_server(&call.principal, &message.host_id, &message.server_id)
            .await
            .map_err(control_status)?;
        let report = flows::refresh(
            &self.state,
            &call.principal,
            &call.context,
            call.key(),
            &message.host_id,
            &server,
        )
        .await
        .map_err(status)?;
        Ok(Response::new(api::RefreshServerResponse {
            server: Some(self.server(&host, report.server)),
            added_tools: report.added,
            changed_tools: report.changed,
            removed_tools: report.removed,
        }))
    }
}
