//! The claims the gateway reads from ID tokens and userinfo, beyond OpenID Connect's standard
//! ones (`ProviderClaims`: Microsoft's `tid`, `oid`, `xms_edov`), the extra discovery field
//! `authorization_response_iss_parameter_supported`, and the rules that turn claims into the
//! verified / unverified email of an `ExternalIdentity`.
//!
//! Owns the leniency: provider-specific claims are held as raw JSON values, so a provider that
//! sends an unexpected type does not break parsing; only an exact JSON `true` vouches for an
//! address. Must not treat a missing, `false`, string or other non-boolean flag as verified.
//!
//! The standard `email_verified` claim is parsed by openidconnect as a strict boolean (its
//! `accept-string-booleans` feature is deliberately off): a token or userinfo answer carrying
//! `"email_verified": "true"` (a string) is refused as invalid rather than read as verified.

use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGenderClaim,
    CoreGrantType, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm, CoreResponseMode, CoreResponseType,
    CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalClaims, AdditionalProviderMetadata, EmptyExtraTokenFields, IdToken, IdTokenClaims,
    IdTokenFields, StandardTokenResponse, UserInfoClaims,
};
use serde_json::Value;

/// Claims some providers add; every field optional and untyped (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct ProviderClaims {
    /// Microsoft: the tenant id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tid: Option<Value>,
    /// Microsoft: the user's immutable object id within the tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) oid: Option<Value>,
    /// Microsoft: "email domain owner verified" (an optional claim the app registration must
    /// request); `true` means the tenant owns the email's domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) xms_edov: Option<Value>,
}

impl AdditionalClaims for ProviderClaims {}

impl ProviderClaims {
    pub(crate) fn tid(&self) -> Option<&str> {
        self.tid.as_ref().and_then(Value::as_str)
    }

    pub(crate) fn oid(&self) -> Option<&str> {
        self.oid.as_ref().and_then(Value::as_str)
    }

    /// Only a JSON `true` counts.
    pub(crate) fn email_domain_owner_verified(&self) -> Option<bool> {
        self.xms_edov.as_ref().map(|v| *v == Value::Bool(true))
    }
}

/// The discovery field openidconnect does not model (RFC 9207).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct IssParameterMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) authorization_response_iss_parameter_supported: Option<Value>,
}

impl AdditionalProviderMetadata for IssParameterMetadata {}

impl IssParameterMetadata {
    /// Whether the provider promised `iss` in every authorization response.
    pub(crate) fn iss_parameter_supported(&self) -> bool {
        self.authorization_response_iss_parameter_supported == Some(Value::Bool(true))
    }
}

/// A provider's discovery document.
pub(crate) type ProviderDocument = openidconnect::ProviderMetadata<
    IssParameterMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// An ID token with [`ProviderClaims`].
pub(crate) type ProviderIdToken = IdToken<
    ProviderClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

/// The claims of a verified ID token.
pub(crate) type ProviderIdTokenClaims = IdTokenClaims<ProviderClaims, CoreGenderClaim>;

/// A token response whose `id_token` carries [`ProviderClaims`].
pub(crate) type ProviderTokenResponse = StandardTokenResponse<
    IdTokenFields<
        ProviderClaims,
        EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    openidconnect::core::CoreTokenType,
>;

/// Userinfo claims with [`ProviderClaims`].
pub(crate) type ProviderUserInfo = UserInfoClaims<ProviderClaims, CoreGenderClaim>;

/// One source's email claim and the flag that vouches for it (`email_verified`, or for
/// Microsoft `xms_edov`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct EmailClaim {
    pub(crate) email: Option<String>,
    pub(crate) vouched: Option<bool>,
}

impl EmailClaim {
    /// The ID token's email, with the userinfo answer filling what the token lacks: the
    /// address (and its flag) when the token has none, or only the flag when both name the
    /// same address.
    pub(crate) fn merge(id_token: EmailClaim, userinfo: Option<EmailClaim>) -> EmailClaim {
        let Some(userinfo) = userinfo else {
            return id_token;
        };
        match (&id_token.email, &userinfo.email) {
            (None, _) => userinfo,
            (Some(token_email), Some(info_email))
                if id_token.vouched.is_none() && token_email == info_email =>
            {
                EmailClaim {
                    email: id_token.email,
                    vouched: userinfo.vouched,
                }
            }
            _ => id_token,
        }
    }

    /// `(verified_emails, unverified_email)`: the address is verified only when the flag is
    /// exactly `true`.
    pub(crate) fn into_emails(self) -> (Vec<String>, Option<String>) {
        match self.email.filter(|email| !email.is_empty()) {
            Some(email) if self.vouched == Some(true) => (vec![email], None),
            Some(email) => (Vec::new(), Some(email)),
            None => (Vec::new(), None),
        }
    }
}

#[cfg(test)]
mod tests;
