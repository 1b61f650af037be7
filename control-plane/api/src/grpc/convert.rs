//! Views of the control service as `portcullis.control.v1` messages, and the few request
//! fields that need checking before they reach the service (trust levels, host settings).
//!
//! Trust levels on the wire are enum numbers: TRUST_LEVEL_UNSPECIFIED (0) or an unknown number
//! in a request is INVALID_ARGUMENT naming the field, never a silent default.

use std::collections::BTreeMap;

use portcullis_commands::control::{
    AgentView, GrantView, HostSettingsPatch, HostView, HumanDetail, HumanView, OrganizationView,
    ServerView,
};
use portcullis_projector::models::{self, ToolVisibility, UpstreamAuth};
use portcullis_proto::TrustLevel;
use portcullis_proto::control::v1 as api;
use portcullis_proto::events::v1 as pb;
use tonic::Status;

use super::invalid;
use crate::PublicUrls;

/// A required trust level of a request.
pub(super) fn trust_level(field: &str, value: i32) -> Result<TrustLevel, Status> {
    TrustLevel::try_from(value).map_err(|e| invalid(field, e.to_string()))
}

/// An optional trust level of a request: absent is `None`; present must be a level.
pub(super) fn optional_trust_level(
    field: &str,
    value: Option<i32>,
) -> Result<Option<TrustLevel>, Status> {
    value.map(|v| trust_level(field, v)).transpose()
}

/// A trust level for a response; `None` is UNSPECIFIED.
fn level(value: Option<TrustLevel>) -> i32 {
    value.map_or(pb::TrustLevel::Unspecified as i32, i32::from)
}

pub(super) fn organization(view: OrganizationView) -> api::Organization {
    api::Organization {
        org_id: view.org_id,
        name: view.name,
    }
}

pub(super) fn host(urls: &PublicUrls, view: HostView) -> api::Host {
    let settings = &view.settings;
    api::Host {
        base_url: urls.host_base(&view.host_id, view.is_default),
        settings: Some(pb::HostSettings {
            dynamic_mcps: settings.dynamic_mcps,
            tool_visibility: match settings.tool_visibility {
                ToolVisibility::Permitted => pb::ToolVisibility::Permitted,
                ToolVisibility::All => pb::ToolVisibility::All,
            } as i32,
            session_idle_seconds: Some(settings.session_idle_seconds),
            session_absolute_seconds: Some(settings.session_absolute_seconds),
            allowed_origins: settings.allowed_origins.clone(),
            auth: Some(auth_settings(&settings.auth)),
        }),
        warnings: settings.auth.warnings(),
        host_id: view.host_id,
        org_id: view.org_id,
        prefix: view.prefix,
        is_default: view.is_default,
    }
}

/// A whole replacement of a host's settings as the patch that sets every field; unset
/// lifetimes take their defaults.
pub(super) fn settings_patch(settings: pb::HostSettings) -> Result<HostSettingsPatch, Status> {
    let tool_visibility = match pb::ToolVisibility::try_from(settings.tool_visibility) {
        Ok(pb::ToolVisibility::Unspecified | pb::ToolVisibility::Permitted) => {
            ToolVisibility::Permitted
        }
        Ok(pb::ToolVisibility::All) => ToolVisibility::All,
        Err(_) => {
            return Err(invalid(
                "settings.tool_visibility",
                format!(
                    "tool visibility {} is not PERMITTED (1) or ALL (2)",
                    settings.tool_visibility
                ),
            ));
        }
    };
    Ok(HostSettingsPatch {
        dynamic_mcps: Some(settings.dynamic_mcps),
        tool_visibility: Some(tool_visibility),
        session_idle_seconds: Some(
            settings
                .session_idle_seconds
                .unwrap_or(portcullis_proto::DEFAULT_SESSION_IDLE_SECONDS),
        ),
        session_absolute_seconds: Some(
            settings
                .session_absolute_seconds
                .unwrap_or(portcullis_proto::DEFAULT_SESSION_ABSOLUTE_SECONDS),
        ),
        allowed_origins: Some(settings.allowed_origins),
        auth: Some(settings.auth.unwrap_or_default()),
    })
}

/// The sign-in settings of a host view, every field explicit.
fn auth_settings(auth: &portcullis_projector::models::AuthSettings) -> pb::HostAuthSettings {
    let rule = |rule: Option<&portcullis_projector::models::DomainRule>| {
        rule.map(|rule| pb::DomainRule {
            domains: rule.domains.clone(),
            include_subdomains: rule.include_subdomains,
        })
    };
    use portcullis_projector::models::ProviderKind as Kind;
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    pb::HostAuthSettings {
        password: Some(auth.password),
        email_otp: Some(auth.email_otp),
        allowed_domains: rule(auth.allowed_domains.as_ref()),
        password_domains: rule(auth.password_domains.as_ref()),
        email_otp_domains: rule(auth.email_otp_domains.as_ref()),
        passkeys: Some(auth.passkeys),
        passkey_domains: rule(auth.passkey_domains.as_ref()),
        // Secrets are write-only: neither the plain text nor the sealed value goes out.
        providers: auth
            .providers
            .iter()
            .map(|provider| pb::SignInProvider {
                id: provider.id.clone(),
                kind: match provider.kind {
                    Kind::Oidc => pb::SignInProviderKind::Oidc,
                    Kind::Google => pb::SignInProviderKind::Google,
                    Kind::Microsoft => pb::SignInProviderKind::Microsoft,
                    Kind::Github => pb::SignInProviderKind::Github,
                    Kind::Saml => pb::SignInProviderKind::Saml,
                } as i32,
                display_name: provider.display_name.clone(),
                client_id: provider.client_id.clone(),
                client_secret_set: !provider.secret_key_id.is_empty(),
                issuer: text(&provider.issuer),
                tenant: text(&provider.tenant),
                allowed_tenants: provider.allowed_tenants.clone(),
                authority: text(&provider.authority),
                authorization_endpoint: text(&provider.authorization_endpoint),
                token_endpoint: text(&provider.token_endpoint),
                api_base: text(&provider.api_base),
                domains: rule(provider.domains.as_ref()),
                force_redirect_domains: provider.force_redirect_domains.clone(),
                saml_sso_url: text(&provider.saml_sso_url),
                saml_entity_id: text(&provider.saml_entity_id),
                saml_certificates: provider.saml_certificates.clone(),
                ..Default::default()
            })
            .collect(),
    }
}

/// The message of a server whose MCP URL at the gateway is `mcp_url`.
pub(super) fn server(view: ServerView, mcp_url: String) -> api::Server {
    api::Server {
        mcp_url,
        server_id: view.server_id,
        host_id: view.host_id,
        key: view.key,
        url: view.url,
        name: view.name,
        description: view.description,
        upstream_auth: Some(api::UpstreamAuthView {
            mode: Some(match view.upstream_auth {
                UpstreamAuth::None => api::upstream_auth_view::Mode::None(pb::NoUpstreamAuth {}),
                UpstreamAuth::Oauth { client_id, .. } => {
                    api::upstream_auth_view::Mode::Oauth(api::UpstreamOAuthView {
                        client_id,
                        has_client_secret: true,
                    })
                }
            }),
        }),
        tools: tools(view.tools),
        timeout_seconds: view.timeout_seconds,
    }
}

fn tools(tools: BTreeMap<String, models::Tool>) -> Vec<pb::Tool> {
    tools
        .into_iter()
        .map(|(name, tool)| pb::Tool {
            name,
            description: tool.description,
            input_schema_sha256: decode_hex(&tool.input_schema_sha256).unwrap_or_default(),
            trust_level: tool.trust_level.into(),
            enabled: tool.enabled,
            classification: Some(pb::Classification {
                kind: Some(match tool.classification {
                    models::Classification::Auto {
                        matched_keyword,
                        reason,
                    } => pb::classification::Kind::Auto(pb::AutoClassification {
                        matched_keyword,
                        reason,
                    }),
                    models::Classification::AdminOverride => {
                        pb::classification::Kind::AdminOverride(pb::AdminOverride {})
                    }
                }),
            }),
        })
        .collect()
}

/// Bytes of lower-case or upper-case hex; `None` if it is not hex.
pub(super) fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

pub(super) fn human(view: HumanView) -> api::Human {
    api::Human {
        human_id: view.human_id,
        host_id: view.host_id,
        email: view.email,
        pre_authorized: view.pre_authorized,
        grants: Vec::new(),
        agent_ids: Vec::new(),
    }
}

pub(super) fn human_detail(detail: HumanDetail) -> api::Human {
    api::Human {
        grants: detail.grants.into_iter().map(grant).collect(),
        agent_ids: detail.agent_ids,
        ..human(detail.human)
    }
}

pub(super) fn grant(view: GrantView) -> api::Grant {
    api::Grant {
        human_id: view.human_id,
        server_id: view.server_id,
        max_trust_level: view.max_trust_level.into(),
    }
}

pub(super) fn agent(view: AgentView) -> api::Agent {
    api::Agent {
        agent_id: view.agent_id,
        host_id: view.host_id,
        client_id: view.client_id,
        name: view.name,
        uri: view.uri,
        agent_type: view.agent_type,
        redirect_uris: view.redirect_uris,
        human_id: view.human_id.unwrap_or_default(),
        human_email: view.human_email.unwrap_or_default(),
        caps: view
            .caps
            .into_iter()
            .map(|(server_id, cap)| api::AgentServerCap {
                server_id,
                max_trust_level: cap.into(),
            })
            .collect(),
        connected_server_ids: view.servers.iter().map(|s| s.server_id.clone()).collect(),
        servers: view
            .servers
            .into_iter()
            .map(|s| api::AgentServer {
                server_id: s.server_id,
                server_key: s.server_key.unwrap_or_default(),
                consented: s.consented.into(),
                grant: level(s.grant),
                cap: level(s.cap),
                effective: level(s.effective),
                session_ids: s.session_ids,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_or_unknown_trust_levels_are_invalid_and_name_the_field() {
        for bad in [0, 4, -1] {
            let status = trust_level("max_trust_level", bad).expect_err("refused");
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
            assert!(status.message().contains("max_trust_level"), "{status:?}");
        }
        assert_eq!(trust_level("x", 3).expect("high"), TrustLevel::High);
        assert_eq!(optional_trust_level("x", None).expect("absent"), None);
        assert!(optional_trust_level("trust_level", Some(0)).is_err());
    }

    #[test]
    fn replacing_settings_fills_defaults_and_refuses_unknown_visibility() {
        let patch = settings_patch(pb::HostSettings::default()).expect("defaults");
        assert_eq!(patch.tool_visibility, Some(ToolVisibility::Permitted));
        assert_eq!(
            patch.session_idle_seconds,
            Some(portcullis_proto::DEFAULT_SESSION_IDLE_SECONDS)
        );
        assert_eq!(patch.allowed_origins, Some(Vec::new()));
        let status = settings_patch(pb::HostSettings {
            tool_visibility: 9,
            ..pb::HostSettings::default()
        })
        .expect_err("refused");
        assert!(status.message().contains("settings.tool_visibility"));
    }

    #[test]
    fn hex_decodes_or_refuses() {
        assert_eq!(decode_hex("0aff"), Some(vec![0x0a, 0xff]));
        assert_eq!(decode_hex("0a f"), None);
        assert_eq!(decode_hex("zz"), None);
    }
}
