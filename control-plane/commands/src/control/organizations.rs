//! Organizations: listing the admin's, and creating one (which the admin then belongs to).

use portcullis_domain::EventBody;
use portcullis_domain::admin_token::{AdminToken, AdminTokenCommand, AdminTokenRejected};
use portcullis_domain::organization::{Organization, OrganizationCommand, OrganizationRejected};
use portcullis_domain::validate::validate_name;
use portcullis_projector::ModelKind;
use portcullis_projector::models;
use portcullis_proto::subjects;

use super::idempotency::{IdempotencyKey, Writes};
use super::views::OrganizationView;
use super::{Control, ControlError, Principal, new_id, on_reject, subject};
use crate::Context;

impl Control {
    /// The organizations the admin acts for (ones that do not exist are left out).
    pub async fn list_organizations(
        &self,
        principal: &Principal,
    ) -> Result<Vec<OrganizationView>, ControlError> {
        let mut organizations = Vec::new();
        for org_id in &principal.org_ids {
            if let Some(org) = self
                .live::<models::Organization>(ModelKind::Organization, &[org_id])
                .await?
            {
                organizations.push(OrganizationView {
                    org_id: org_id.clone(),
                    name: org.name,
                });
            }
        }
        Ok(organizations)
    }

    /// Creates an organization and adds it to the calling admin token.
    ///
    /// Crash-safe: the membership is recorded first (with the new id), then the organization;
    /// a retry with the same idempotency key finds the recorded id and finishes it.
    #[tracing::instrument(name = "control.organization.create", skip_all)]
    pub async fn create_organization(
        &self,
        principal: &Principal,
        context: &Context,
        idempotency_key: Option<&IdempotencyKey>,
        name: &str,
    ) -> Result<OrganizationView, ControlError> {
        let name = validate_name(name).map_err(|e| ControlError::invalid("name", e))?;
        let mut writes = Writes::new(&principal.token_id, idempotency_key);
        let token_subject = subject(subjects::admin_token(&principal.token_id))?;
        let fresh = new_id();
        let join = AdminTokenCommand::AddOrganization {
            org_id: fresh.clone(),
        };
        let step = "organization.join";
        let joined = on_reject(
            self.run::<AdminToken>(context, &mut writes, step, &token_subject, &join)
                .await?,
            |rejected: AdminTokenRejected| match rejected {
                AdminTokenRejected::Revoked | AdminTokenRejected::NotFound => {
                    ControlError::Unauthenticated
                }
                other => ControlError::unavailable(other),
            },
        )?;
        let org_id = if joined.appended {
            fresh
        } else {
            // A retry: the organization is the one the first attempt recorded.
            let command_id = writes.command_id(step, &token_subject)?;
            match self.recorded(&token_subject, &command_id).await? {
                Some(EventBody::AdminTokenOrganizationAdded(added)) => added.org_id,
                _ => fresh,
            }
        };
        let org_subject = subject(subjects::organization(&org_id))?;
        let create = OrganizationCommand::Create {
            org_id: org_id.clone(),
            name: name.clone(),
        };
        on_reject(
            self.run::<Organization>(
                context,
                &mut writes,
                "organization.create",
                &org_subject,
                &create,
            )
            .await?,
            |rejected| match rejected {
                OrganizationRejected::InvalidName => ControlError::invalid("name", rejected),
                other => ControlError::conflict("organization", &org_id, other),
            },
        )?;
        self.settle(&writes).await?;
        let org = self
            .live::<models::Organization>(ModelKind::Organization, &[&org_id])
            .await?
            .ok_or_else(|| ControlError::not_found("organization", &org_id))?;
        Ok(OrganizationView {
            org_id,
            name: org.name,
        })
    }
}
