//! `HostService`: create, list, get, replace settings, delete, client configuration, and the
//! token-signing keys (list, rotate, retire).

use std::collections::HashMap;

use portcullis_commands::control::{CreateHost, SigningKeyView};
use portcullis_proto::control::v1 as api;
use portcullis_proto::control::v1::host_service_server::HostService;
use tonic::{Request, Response, Status};

use super::{Api, control_status, convert, invalid, non_empty};
use crate::public_urls::client_snippets;

#[tonic::async_trait]
impl HostService for Api {
    async fn create_host(
        &self,
        request: Request<api::CreateHostRequest>,
    ) -> Result<Response<api::Host>, Status> {
        let call = self.write(&request).await?;
        let message = request.into_inner();
        if let Some(auth) = message.settings.as_ref().and_then(|s| s.auth.as_ref()) {
            crate::flows::check_sign_in_urls(self.state.url_policy, auth, "settings.auth")
                .map_err(control_status)?;
        }
        let create = CreateHost {
            org_id: non_empty(message.org_id),
            prefix: message.prefix,
            settings: message.settings,
        };
        let view = self
            .state
            .control
            .create_host(&call.principal, &call.context, call.key(), create)
            .await
            .map_err(control_status)?;
        Ok(Response::new(convert::host(&self.state.public_urls, view)))
    }

    async fn list_hosts(
        &self,
        request: Request<api::ListHostsRequest>,
    ) -> Result<Response<api::ListHostsResponse>, Status> {
        let principal = self.principal(&request).await?;
        let org_id = non_empty(request.into_inner().org_id);
        let hosts = self
            .state
            .control
            .list_hosts(&principal, org_id.as_deref())
            .await
            .map_err(control_status)?;
        Ok(Response::new(api::ListHostsResponse {
            hosts: hosts
                .into_iter()
                .map(|view| convert::host(&self.state.public_urls, view))
                .collect(),
        }))
    }

    async fn get_host(
        &self,
        request: Request<api::GetHostRequest>,
    ) -> Result<Response<api::Host>, Status> {
        let principal = self.principal(&request).await?;
        let view = self
            .state
            .control
            .get_host(&principal, &request.get_ref().host_id)
            .await
            .map_err(control_status)?;
        Ok(Response::new(convert::host(&self.state.public_urls, view)))
    }

    async fn update_host_settings(
        &self,
        request: Request<api::UpdateHostSettingsRequest>,
    ) -> Result<Response<api::Host>, Status> {
        let call = self.write(&request).await?;
        let message = request.into_inner();
        let settings = message
            .settings
            .ok_or_else(|| invalid("settings", "required: the whole new settings"))?;
        if let Some(auth) = &settings.auth {
            crate::flows::check_sign_in_urls(self.state.url_policy, auth, "settings.auth")
                .map_err(control_status)?;
        }
        let patch = convert::settings_patch(settings)?;
        let view = self
            .state
            .control
            .update_host_settings(
                &call.principal,
                &call.context,
                call.key(),
                &message.host_id,
                patch,
            )
            .await
            .map_err(control_status)?;
        Ok(Response::new(convert::host(&self.state.public_urls, view)))
    }

    async fn delete_host(
        &self,
        request: Request<api::DeleteHostRequest>,
    ) -> Result<Response<api::DeleteHostResponse>, Status> {
        let call = self.write(&request).await?;
        self.state
            .control
            .delete_host(
                &call.principal,
                &call.context,
                call.key(),
                &request.get_ref().host_id,
            )
            .await
            .map_err(control_status)?;
        Ok(Response::new(api::DeleteHostResponse {}))
    }

    async fn get_client_config(
        &self,
        request: Request<api::GetClientConfigRequest>,
    ) -> Result<Response<api::ClientConfig>, Status> {
        let principal = self.principal(&request).await?;
        let host_id = &request.get_ref().host_id;
        let control = &self.state.control;
        let host = control
            .get_host(&principal, host_id)
            .await
            .map_err(control_status)?;
        let servers = control
            .list_servers(&principal, host_id)
            .await
            .map_err(control_status)?;
        let urls = &self.state.public_urls;
        let (host_id, default) = (host.host_id.as_str(), host.is_default);
        let mut servers: Vec<api::ServerEndpoint> = servers
            .into_iter()
            .map(|server| {
                let mcp_url = urls.server_mcp_url(host_id, default, &server.key);
                let upstream_mcp_url = urls.upstream_mcp_url(host_id, default, &server.url);
                api::ServerEndpoint {
                    snippets: snippets(&server.key, &mcp_url),
                    upstream_snippets: snippets(&server.key, &upstream_mcp_url),
                    server_key: server.key,
                    mcp_url,
                    upstream_url: server.url,
                    upstream_mcp_url,
                }
            })
            .collect();
        servers.sort_by(|a, b| a.server_key.cmp(&b.server_key));
        let mcp_url = urls.mcp_url(host_id, default);
        let endpoint = api::ServerEndpoint {
            snippets: snippets(host_id, &mcp_url),
            mcp_url,
            ..api::ServerEndpoint::default()
        };
        Ok(Response::new(api::ClientConfig {
            host_id: host.host_id,
            servers,
            host: Some(endpoint),
        }))
    }

    async fn list_signing_keys(
        &self,
        request: Request<api::ListSigningKeysRequest>,
    ) -> Result<Response<api::ListSigningKeysResponse>, Status> {
        let principal = self.principal(&request).await?;
        let keys = self
            .state
            .control
            .list_signing_keys(&principal, &request.get_ref().host_id)
            .await
            .map_err(control_status)?;
        Ok(Response::new(api::ListSigningKeysResponse {
            keys: keys.into_iter().map(signing_key).collect(),
        }))
    }

    async fn rotate_signing_key(
        &self,
        request: Request<api::RotateSigningKeyRequest>,
    ) -> Result<Response<api::SigningKey>, Status> {
        let call = self.write(&request).await?;
        let key = self
            .state
            .control
            .rotate_signing_key(
                &call.principal,
                &call.context,
                call.key(),
                &request.get_ref().host_id,
            )
            .await
            .map_err(control_status)?;
        Ok(Response::new(signing_key(key)))
    }

    async fn retire_signing_key(
        &self,
        request: Request<api::RetireSigningKeyRequest>,
    ) -> Result<Response<api::RetireSigningKeyResponse>, Status> {
        let call = self.write(&request).await?;
        let message = request.get_ref();
        self.state
            .control
            .retire_signing_key(
                &call.principal,
                &call.context,
                call.key(),
                &message.host_id,
                &message.kid,
                message.force,
            )
            .await
            .map_err(control_status)?;
        Ok(Response::new(api::RetireSigningKeyResponse {}))
    }
}

fn signing_key(view: SigningKeyView) -> api::SigningKey {
    api::SigningKey {
        kid: view.kid,
        algorithm: view.algorithm,
        added_at_ms: view.added_at_ms,
        active: view.active,
    }
}

/// The client snippets for `name` at `mcp_url`, each as a JSON document, by client.
fn snippets(name: &str, mcp_url: &str) -> HashMap<String, String> {
    match client_snippets(name, mcp_url) {
        serde_json::Value::Object(by_client) => by_client
            .into_iter()
            .map(|(client, snippet)| (client, snippet.to_string()))
            .collect(),
        _ => HashMap::new(),
    }
}
