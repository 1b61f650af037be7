//! The fixture's prompts: `test_simple_prompt`, `test_prompt_with_arguments(arg1, arg2)`,
//! `test_prompt_with_embedded_resource(resourceUri)` and `test_prompt_with_image`, plus
//! completion of `test_prompt_with_arguments`' arguments.
//!
//! Owns: prompt names, arguments and messages as the suite expects them, and the
//! invalid-params errors for an unknown prompt or a missing argument.
//!
//! Must not: keep state.

use rmcp::ErrorData;
use rmcp::model::{
    ArgumentInfo, ContentBlock, GetPromptResult, JsonObject, Prompt, PromptArgument, PromptMessage,
    ResourceContents, Role,
};

use crate::media;

const SIMPLE: &str = "test_simple_prompt";
const WITH_ARGUMENTS: &str = "test_prompt_with_arguments";
const WITH_EMBEDDED_RESOURCE: &str = "test_prompt_with_embedded_resource";
const WITH_IMAGE: &str = "test_prompt_with_image";

pub(crate) fn list() -> Vec<Prompt> {
    vec![
        Prompt::new(SIMPLE, Some("A simple prompt without arguments"), None),
        Prompt::new(
            WITH_ARGUMENTS,
            Some("A prompt with two required arguments"),
            Some(vec![
                required_argument("arg1", "First test argument"),
                required_argument("arg2", "Second test argument"),
            ]),
        ),
        Prompt::new(
            WITH_EMBEDDED_RESOURCE,
            Some("A prompt that embeds a resource"),
            Some(vec![required_argument(
                "resourceUri",
                "URI of the resource to embed",
            )]),
        ),
        Prompt::new(WITH_IMAGE, Some("A prompt with an image"), None),
    ]
}

/// The messages of prompt `name` with `arguments`.
pub(crate) fn get(
    name: &str,
    arguments: Option<&JsonObject>,
) -> Result<GetPromptResult, ErrorData> {
    let messages = match name {
        SIMPLE => vec![PromptMessage::new_text(
            Role::User,
            "This is a simple prompt for testing.",
        )],
        WITH_ARGUMENTS => {
            let arg1 = argument(name, arguments, "arg1")?;
            let arg2 = argument(name, arguments, "arg2")?;
            vec![PromptMessage::new_text(
                Role::User,
                format!("Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"),
            )]
        }
        WITH_EMBEDDED_RESOURCE => {
            let uri = argument(name, arguments, "resourceUri")?;
            let resource = ResourceContents::text("Embedded resource content for testing.", uri)
                .with_mime_type("text/plain");
            vec![
                PromptMessage::new(Role::User, ContentBlock::resource(resource)),
                PromptMessage::new_text(Role::User, "Please process the embedded resource above."),
            ]
        }
        WITH_IMAGE => vec![
            PromptMessage::new(
                Role::User,
                ContentBlock::image(media::PNG_BASE64, media::PNG_MIME_TYPE),
            ),
            PromptMessage::new_text(Role::User, "Please analyze the image above."),
        ],
        _ => {
            return Err(ErrorData::invalid_params(
                format!("unknown prompt: {name}"),
                None,
            ));
        }
    };
    Ok(GetPromptResult::new(messages))
}

/// Completion values for an argument of prompt `name`: the candidates that start with what
/// the client typed so far.
pub(crate) fn complete(name: &str, argument: &ArgumentInfo) -> Vec<String> {
    let candidates: &[&str] = match (name, argument.name.as_str()) {
        (WITH_ARGUMENTS, "arg1") => &["hello", "help", "testValue1"],
        (WITH_ARGUMENTS, "arg2") => &["world", "work", "testValue2"],
        _ => &[],
    };
    candidates
        .iter()
        .filter(|candidate| candidate.starts_with(&argument.value))
        .map(|candidate| (*candidate).to_owned())
        .collect()
}

fn required_argument(name: &str, description: &str) -> PromptArgument {
    PromptArgument::new(name)
        .with_description(description)
        .with_required(true)
}

/// The string argument `key` of prompt `prompt`, or an invalid-params error naming it.
fn argument<'a>(
    prompt: &str,
    arguments: Option<&'a JsonObject>,
    key: &str,
) -> Result<&'a str, ErrorData> {
    arguments
        .and_then(|arguments| arguments.get(key))
        .and_then(|value| value.as_str())
        .ok_or_else(|| {
            ErrorData::invalid_params(
                format!("prompt {prompt} needs the string argument {key}"),
                None,
            )
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn arguments_are_substituted_and_missing_ones_refused() {
        let arguments = json!({ "arg1": "hello", "arg2": "world" });
        let result = get(WITH_ARGUMENTS, arguments.as_object()).expect("both arguments");
        let text = serde_json::to_value(&result.messages).expect("serializable");
        assert_eq!(
            text[0]["content"]["text"],
            "Prompt with arguments: arg1='hello', arg2='world'"
        );
        let err = get(WITH_ARGUMENTS, json!({ "arg1": "x" }).as_object()).expect_err("no arg2");
        assert_eq!(err.code.0, -32602);
        assert!(err.message.contains("arg2"), "{}", err.message);
    }

    #[test]
    fn completion_offers_the_candidates_with_the_typed_prefix() {
        let typed = ArgumentInfo::new("arg1", "hel");
        assert_eq!(complete(WITH_ARGUMENTS, &typed), ["hello", "help"]);
        assert!(complete(SIMPLE, &typed).is_empty());
    }
}
