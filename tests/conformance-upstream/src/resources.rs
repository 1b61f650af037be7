//! The fixture's resources: `test://static-text`, `test://static-binary`,
//! `test://watched-resource` (subscribable; `test_update_watched_resource` changes it) and the
//! template `test://template/{id}/data`, plus completion of the template's `id`.
//!
//! Owns: resource names, contents and MIME types as the suite expects them, and the
//! resource-not-found error (-32002, with the URI in `data`).
//!
//! Must not: keep state; the watched resource's revision lives in the session (`handler`).

use rmcp::ErrorData;
use rmcp::model::{ArgumentInfo, ReadResourceResult, Resource, ResourceContents, ResourceTemplate};
use serde_json::json;

use crate::media;

pub(crate) const STATIC_TEXT: &str = "test://static-text";
pub(crate) const STATIC_BINARY: &str = "test://static-binary";
pub(crate) const WATCHED: &str = "test://watched-resource";
const TEMPLATE: &str = "test://template/{id}/data";
const TEMPLATE_PREFIX: &str = "test://template/";
const TEMPLATE_SUFFIX: &str = "/data";
/// Ids offered when completing the template's `id`.
const TEMPLATE_IDS: [&str; 5] = ["1", "2", "3", "42", "123"];

/// The direct resources (not templates).
pub(crate) fn list() -> Vec<Resource> {
    vec![
        Resource::new(STATIC_TEXT, "static-text")
            .with_title("Static text")
            .with_description("A static text resource for testing")
            .with_mime_type("text/plain"),
        Resource::new(STATIC_BINARY, "static-binary")
            .with_title("Static binary")
            .with_description("A static binary resource (a PNG image) for testing")
            .with_mime_type(media::PNG_MIME_TYPE),
        Resource::new(WATCHED, "watched-resource")
            .with_title("Watched resource")
            .with_description(
                "A subscribable resource; the test_update_watched_resource tool changes it",
            )
            .with_mime_type("text/plain"),
    ]
}

pub(crate) fn templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new(TEMPLATE, "template")
            .with_title("Template")
            .with_description("A resource template whose {id} is substituted into the data")
            .with_mime_type("application/json"),
    ]
}

/// The contents of `uri`; `watched_revision` is the session's revision of the watched resource.
pub(crate) fn read(uri: &str, watched_revision: u64) -> Result<ReadResourceResult, ErrorData> {
    let contents = match uri {
        STATIC_TEXT => {
            ResourceContents::text("This is the content of the static text resource.", uri)
                .with_mime_type("text/plain")
        }
        STATIC_BINARY => {
            ResourceContents::blob(media::PNG_BASE64, uri).with_mime_type(media::PNG_MIME_TYPE)
        }
        WATCHED => {
            ResourceContents::text(watched_text(watched_revision), uri).with_mime_type("text/plain")
        }
        _ => {
            let id = template_id(uri).ok_or_else(|| not_found(uri))?;
            let data =
                json!({ "id": id, "templateTest": true, "data": format!("Data for ID: {id}") });
            ResourceContents::text(data.to_string(), uri).with_mime_type("application/json")
        }
    };
    Ok(ReadResourceResult::new(vec![contents]))
}

/// Ok if `uri` names a resource this fixture serves.
pub(crate) fn ensure_exists(uri: &str) -> Result<(), ErrorData> {
    read(uri, 0).map(drop)
}

/// Completion values for an argument of the resource template `uri`.
pub(crate) fn complete(uri: &str, argument: &ArgumentInfo) -> Vec<String> {
    if uri != TEMPLATE || argument.name != "id" {
        return Vec::new();
    }
    TEMPLATE_IDS
        .iter()
        .filter(|id| id.starts_with(&argument.value))
        .map(|id| (*id).to_owned())
        .collect()
}

/// The watched resource's text at `revision`.
pub(crate) fn watched_text(revision: u64) -> String {
    format!("Watched resource content, revision {revision}.")
}

/// The `{id}` of a URI of the template, if it is one.
fn template_id(uri: &str) -> Option<&str> {
    let id = uri
        .strip_prefix(TEMPLATE_PREFIX)?
        .strip_suffix(TEMPLATE_SUFFIX)?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

fn not_found(uri: &str) -> ErrorData {
    ErrorData::resource_not_found(
        format!("resource not found: {uri}"),
        Some(json!({ "uri": uri })),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_substitutes_its_id_and_rejects_other_uris() {
        assert_eq!(template_id("test://template/123/data"), Some("123"));
        assert_eq!(template_id("test://template//data"), None);
        assert_eq!(template_id("test://template/1/2/data"), None);
        assert_eq!(template_id("test://other"), None);
        let text =
            serde_json::to_value(read("test://template/123/data", 0).expect("a template uri"))
                .expect("serializable");
        assert_eq!(
            text["contents"][0]["text"],
            r#"{"data":"Data for ID: 123","id":"123","templateTest":true}"#
        );
    }

    #[test]
    fn an_unknown_resource_is_not_found_with_its_uri() {
        let err = read("test://nothing", 0).expect_err("unknown");
        assert_eq!(err.code.0, -32002);
        assert_eq!(err.data, Some(json!({ "uri": "test://nothing" })));
    }
}
