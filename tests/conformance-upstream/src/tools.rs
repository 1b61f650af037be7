//! The fixture's tools: everything the conformance suite calls (`test_simple_text` …
//! `test_elicitation_sep1330_enums`, `json_schema_2020_12_tool`, `test_reconnection`), plus
//! three that let a gateway test drive change notifications on demand: `test_toggle_dynamic_tool`
//! (lists or unlists `test_dynamic_tool`, then sends `notifications/tools/list_changed`) and
//! `test_update_watched_resource` (changes `test://watched-resource`, then sends
//! `notifications/resources/updated` if the client subscribed).
//!
//! Owns: tool names, descriptions and input schemas (kept as raw JSON, so JSON Schema 2020-12
//! keywords such as `$schema`, `$defs` and `additionalProperties` reach the client unchanged),
//! and what each tool does. A failure of the tool itself (the client cannot sample, an
//! elicitation failed) is a result with `isError: true`; an unknown tool or a missing
//! argument is an invalid-params error.
//!
//! Must not: spawn tasks for server-to-client requests or notifications: rmcp routes them to
//! the calling request's SSE stream only from within the request's own task.

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ContentBlock, CreateMessageRequestParams,
    ElicitRequestParams, JsonObject, LoggingLevel, ProgressNotificationParam, ResourceContents,
    ResourceUpdatedNotificationParam, SamplingMessage, SamplingMessageContentBlock, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use serde_json::{Value, json};

use crate::handler::ConformanceServer;
use crate::http::SSE_RETRY;
use crate::sessions::RECONNECTION_TOOL;
use crate::{media, resources};

/// Pause between the log messages and between the progress steps, as the suite asks.
const STEP_PAUSE: Duration = Duration::from_millis(50);
/// How long `test_reconnection` waits for the client to resume its closed stream.
const RESUME_PATIENCE: Duration = Duration::from_secs(10);
const DYNAMIC_TOOL: &str = "test_dynamic_tool";

/// The tools, with `test_dynamic_tool` when the session has it listed.
pub(crate) fn list(dynamic_tool_listed: bool) -> Vec<Tool> {
    let no_arguments = || json!({ "type": "object", "properties": {} });
    let mut tools = vec![
        tool(
            "test_simple_text",
            "Returns simple text content",
            no_arguments(),
        ),
        tool(
            "test_image_content",
            "Returns image content (a base64 PNG)",
            no_arguments(),
        ),
        tool(
            "test_audio_content",
            "Returns audio content (a base64 WAV)",
            no_arguments(),
        ),
        tool(
            "test_embedded_resource",
            "Returns an embedded text resource",
            no_arguments(),
        ),
        tool(
            "test_multiple_content_types",
            "Returns text, image and embedded resource content together",
            no_arguments(),
        ),
        tool(
            "test_tool_with_logging",
            "Sends three info log notifications while it runs",
            no_arguments(),
        ),
        tool(
            "test_tool_with_progress",
            "Reports progress 0, 50 and 100 of 100 when the request carries a progress token",
            no_arguments(),
        ),
        tool(
            "test_error_handling",
            "Always fails with isError: true",
            no_arguments(),
        ),
        tool(
            "test_sampling",
            "Asks the client's LLM (sampling/createMessage) and returns its answer",
            json!({
                "type": "object",
                "properties": { "prompt": { "type": "string", "description": "The prompt to send to the LLM" } },
                "required": ["prompt"]
            }),
        ),
        tool(
            "test_elicitation",
            "Asks the user for a username and an email (elicitation/create)",
            json!({
                "type": "object",
                "properties": { "message": { "type": "string", "description": "The message to show the user" } },
                "required": ["message"]
            }),
        ),
        tool(
            "test_elicitation_sep1034_defaults",
            "Elicits a form whose fields of every primitive type carry defaults (SEP-1034)",
            no_arguments(),
        ),
        tool(
            "test_elicitation_sep1330_enums",
            "Elicits a form with all five enum variants (SEP-1330)",
            no_arguments(),
        ),
        tool(
            "json_schema_2020_12_tool",
            "Tool with JSON Schema 2020-12 features (SEP-1613)",
            json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "$defs": {
                    "address": {
                        "type": "object",
                        "properties": { "street": { "type": "string" }, "city": { "type": "string" } }
                    }
                },
                "properties": { "name": { "type": "string" }, "address": { "$ref": "#/$defs/address" } },
                "additionalProperties": false
            }),
        ),
        tool(
            RECONNECTION_TOOL,
            "Closes its SSE stream mid-call and answers after the client resumes it with \
             Last-Event-ID (SEP-1699)",
            no_arguments(),
        ),
        tool(
            "test_toggle_dynamic_tool",
            "Lists or unlists test_dynamic_tool, then sends notifications/tools/list_changed",
            no_arguments(),
        ),
        tool(
            "test_update_watched_resource",
            "Changes test://watched-resource, then sends notifications/resources/updated if \
             the client subscribed to it",
            no_arguments(),
        ),
    ];
    if dynamic_tool_listed {
        tools.push(tool(
            DYNAMIC_TOOL,
            "A tool that test_toggle_dynamic_tool adds and removes",
            no_arguments(),
        ));
    }
    tools
}

/// Runs tool `request.name` for `server`'s session.
pub(crate) async fn call(
    server: &ConformanceServer,
    request: CallToolRequestParams,
    context: RequestContext<RoleServer>,
) -> Result<CallToolResult, ErrorData> {
    let arguments = request.arguments.unwrap_or_default();
    let result = match request.name.as_ref() {
        "test_simple_text" => text("This is a simple text response for testing."),
        "test_image_content" => CallToolResult::success(vec![png()]),
        "test_audio_content" => CallToolResult::success(vec![ContentBlock::audio(
            media::WAV_BASE64,
            media::WAV_MIME_TYPE,
        )]),
        "test_embedded_resource" => CallToolResult::success(vec![ContentBlock::resource(
            ResourceContents::text(
                "This is an embedded resource content.",
                "test://embedded-resource",
            )
            .with_mime_type("text/plain"),
        )]),
        "test_multiple_content_types" => CallToolResult::success(vec![
            ContentBlock::text("Multiple content types test:"),
            png(),
            ContentBlock::resource(
                ResourceContents::text(
                    json!({ "test": "data", "value": 123 }).to_string(),
                    "test://mixed-content-resource",
                )
                .with_mime_type("application/json"),
            ),
        ]),
        "test_tool_with_logging" => {
            let peer = &context.peer;
            server
                .log(peer, LoggingLevel::Info, "Tool execution started")
                .await;
            tokio::time::sleep(STEP_PAUSE).await;
            server
                .log(peer, LoggingLevel::Info, "Tool processing data")
                .await;
            tokio::time::sleep(STEP_PAUSE).await;
            server
                .log(peer, LoggingLevel::Info, "Tool execution completed")
                .await;
            text("Tool with logging executed successfully.")
        }
        "test_tool_with_progress" => report_progress(&context).await,
        "test_error_handling" => failure("This tool intentionally returns an error for testing"),
        "test_sampling" => sample(&context, string_argument(&arguments, "prompt")?).await,
        "test_elicitation" => {
            let message = string_argument(&arguments, "message")?;
            let schema = json!({
                "type": "object",
                "properties": {
                    "username": { "type": "string", "description": "User's response" },
                    "email": { "type": "string", "description": "User's email address" }
                },
                "required": ["username", "email"]
            });
            elicit(&context, message, schema, "User response").await?
        }
        "test_elicitation_sep1034_defaults" => {
            let message = "Please review and update the form fields with defaults";
            elicit(&context, message, sep1034_schema(), "Elicitation completed").await?
        }
        "test_elicitation_sep1330_enums" => {
            let message = "Please pick from each kind of enum";
            elicit(&context, message, sep1330_schema(), "Elicitation completed").await?
        }
        "json_schema_2020_12_tool" => text(format!(
            "JSON Schema 2020-12 tool called with: {}",
            Value::Object(arguments)
        )),
        RECONNECTION_TOOL => reconnect(server, &context).await,
        "test_toggle_dynamic_tool" => {
            let listed = server.toggle_dynamic_tool();
            if let Err(err) = context.peer.notify_tool_list_changed().await {
                tracing::warn!(error = %err, "Could not send tools/list_changed.");
            }
            text(if listed {
                "test_dynamic_tool is now listed."
            } else {
                "test_dynamic_tool is no longer listed."
            })
        }
        DYNAMIC_TOOL if server.dynamic_tool_listed() => text("This is the dynamic tool."),
        "test_update_watched_resource" => {
            let revision = server.bump_watched_revision();
            let subscribed = server.is_subscribed(resources::WATCHED);
            if subscribed {
                let updated = ResourceUpdatedNotificationParam::new(resources::WATCHED);
                if let Err(err) = context.peer.notify_resource_updated(updated).await {
                    tracing::warn!(error = %err, "Could not send resources/updated.");
                }
            }
            text(format!(
                "{} is now at revision {revision}; the client {} subscribed.",
                resources::WATCHED,
                if subscribed { "is" } else { "is not" }
            ))
        }
        name => {
            return Err(ErrorData::invalid_params(
                format!("unknown tool: {name}"),
                None,
            ));
        }
    };
    Ok(result)
}

/// Sends progress 0, 50 and 100 of 100 for the request's progress token (if it has one),
/// pausing between steps.
async fn report_progress(context: &RequestContext<RoleServer>) -> CallToolResult {
    let token = context.meta.get_progress_token();
    for (step, progress) in [0.0, 50.0, 100.0].into_iter().enumerate() {
        if step > 0 {
            tokio::time::sleep(STEP_PAUSE).await;
        }
        let Some(token) = &token else { continue };
        let notification = ProgressNotificationParam::new(token.clone(), progress)
            .with_total(100.0)
            .with_message(format!("Step {} of 3", step + 1));
        if let Err(err) = context.peer.notify_progress(notification).await {
            tracing::warn!(error = %err, "Could not send a progress notification.");
        }
    }
    text(if token.is_some() {
        "Tool with progress executed successfully."
    } else {
        "Tool with progress executed successfully (no progress token, so no progress sent)."
    })
}

/// Asks the client's LLM to answer `prompt` (sampling/createMessage, at most 100 tokens).
async fn sample(context: &RequestContext<RoleServer>, prompt: &str) -> CallToolResult {
    let can_sample = context
        .peer
        .peer_info()
        .is_some_and(|client| client.capabilities.sampling.is_some());
    if !can_sample {
        return failure("The client does not support sampling (no sampling capability).");
    }
    let request = CreateMessageRequestParams::new(vec![SamplingMessage::user_text(prompt)], 100);
    match context.peer.create_message(request).await {
        Ok(answer) => {
            let answer = answer
                .message
                .content
                .into_vec()
                .into_iter()
                .filter_map(|block| match block {
                    SamplingMessageContentBlock::Text(text) => Some(text.text),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("\n");
            text(format!("LLM response: {answer}"))
        }
        Err(err) => failure(format!("Sampling failed: {err}")),
    }
}

/// Asks the user (elicitation/create, form mode) to fill `schema`, and reports the answer as
/// `<label>: action=<action>, content=<content>`.
async fn elicit(
    context: &RequestContext<RoleServer>,
    message: &str,
    schema: Value,
    label: &str,
) -> Result<CallToolResult, ErrorData> {
    let can_elicit = context
        .peer
        .peer_info()
        .is_some_and(|client| client.capabilities.elicitation.is_some());
    if !can_elicit {
        return Ok(failure(
            "The client does not support elicitation (no elicitation capability).",
        ));
    }
    let request = elicitation_request(message, schema)?;
    Ok(match context.peer.create_elicitation(request).await {
        Ok(answer) => {
            let action = serde_json::to_value(&answer.action).unwrap_or(Value::Null);
            let action = action.as_str().unwrap_or("unknown");
            let content = answer.content.unwrap_or(Value::Null);
            text(format!("{label}: action={action}, content={content}"))
        }
        Err(err) => failure(format!("Elicitation failed: {err}")),
    })
}

/// A form-mode elicitation request for `schema`; the schema is written as raw JSON above
/// and read into rmcp's typed form here (the unit tests check it survives unchanged).
fn elicitation_request(message: &str, schema: Value) -> Result<ElicitRequestParams, ErrorData> {
    serde_json::from_value(json!({ "message": message, "requestedSchema": schema })).map_err(
        |err| {
            ErrorData::internal_error(
                format!("the fixture's elicitation schema is invalid: {err}"),
                None,
            )
        },
    )
}

/// SEP-1034: a default on a field of every primitive type.
fn sep1034_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": { "type": "string", "description": "User name", "default": "John Doe" },
            "age": { "type": "integer", "description": "User age", "default": 30 },
            "score": { "type": "number", "description": "User score", "default": 95.5 },
            "status": {
                "type": "string",
                "description": "User status",
                "enum": ["active", "inactive", "pending"],
                "default": "active"
            },
            "verified": { "type": "boolean", "description": "Verification status", "default": true }
        }
    })
}

/// SEP-1330: untitled and titled single-select, the legacy `enumNames` form, and untitled and
/// titled multi-select.
fn sep1330_schema() -> Value {
    let titled = |titles: [&str; 3]| {
        titles
            .iter()
            .enumerate()
            .map(|(i, title)| json!({ "const": format!("value{}", i + 1), "title": title }))
            .collect::<Vec<_>>()
    };
    json!({
        "type": "object",
        "properties": {
            "untitledSingle": {
                "type": "string",
                "description": "Pick one (untitled)",
                "enum": ["option1", "option2", "option3"]
            },
            "titledSingle": {
                "type": "string",
                "description": "Pick one (titled)",
                "oneOf": titled(["First Option", "Second Option", "Third Option"])
            },
            "legacyEnum": {
                "type": "string",
                "description": "Pick one (legacy enumNames)",
                "enum": ["opt1", "opt2", "opt3"],
                "enumNames": ["Option One", "Option Two", "Option Three"]
            },
            "untitledMulti": {
                "type": "array",
                "description": "Pick several (untitled)",
                "items": { "type": "string", "enum": ["option1", "option2", "option3"] }
            },
            "titledMulti": {
                "type": "array",
                "description": "Pick several (titled)",
                "items": { "anyOf": titled(["First Choice", "Second Choice", "Third Choice"]) }
            }
        }
    })
}

/// SEP-1699: closes this call's SSE stream (after a priming event with `retry`), waits for
/// the client to resume it with `Last-Event-ID`, then answers on the resumed stream.
async fn reconnect(
    server: &ConformanceServer,
    context: &RequestContext<RoleServer>,
) -> CallToolResult {
    let Some(session) = session_id(context) else {
        return text("Reconnection test completed (no session, so no stream was closed).");
    };
    let stream = match server
        .sessions
        .close_stream_of(&session, &context.id, SSE_RETRY)
        .await
    {
        Ok(stream) => stream,
        Err(err) => {
            tracing::warn!(error = %err, "Could not close the stream of test_reconnection.");
            return text(format!(
                "Reconnection test completed without closing the stream: {err}."
            ));
        }
    };
    if server
        .sessions
        .wait_for_resumption(&session, stream, RESUME_PATIENCE)
        .await
    {
        text("Reconnection test completed: the client resumed the closed stream.")
    } else {
        tracing::warn!("The client did not resume the stream of test_reconnection in time.");
        text("Reconnection test completed, but the client did not resume the closed stream.")
    }
}

/// The `Mcp-Session-Id` of the HTTP request that carried this call.
fn session_id(context: &RequestContext<RoleServer>) -> Option<Arc<str>> {
    let parts = context.extensions.get::<axum::http::request::Parts>()?;
    let id = parts.headers.get("mcp-session-id")?.to_str().ok()?;
    Some(Arc::from(id))
}

/// The string argument `key`, or an invalid-params error naming it.
fn string_argument<'a>(arguments: &'a JsonObject, key: &str) -> Result<&'a str, ErrorData> {
    arguments
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| ErrorData::invalid_params(format!("missing string argument: {key}"), None))
}

fn tool(name: &'static str, description: &'static str, input_schema: Value) -> Tool {
    // Every schema above is an object literal; the unit tests check that none was lost.
    let schema = match input_schema {
        Value::Object(schema) => schema,
        _ => JsonObject::new(),
    };
    Tool::new(name, description, Arc::new(schema))
}

fn png() -> ContentBlock {
    ContentBlock::image(media::PNG_BASE64, media::PNG_MIME_TYPE)
}

fn text(text: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(text)])
}

fn failure(text: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_a_description_and_an_object_schema() {
        let tools = list(true);
        assert_eq!(tools.len(), 17);
        for tool in tools {
            assert!(
                tool.description.as_deref().is_some_and(|d| !d.is_empty()),
                "{}",
                tool.name
            );
            assert_eq!(
                tool.input_schema.get("type"),
                Some(&json!("object")),
                "{}",
                tool.name
            );
        }
        assert!(!list(false).iter().any(|tool| tool.name == DYNAMIC_TOOL));
    }

    #[test]
    fn json_schema_2020_12_keywords_are_listed_unchanged() {
        let tools = serde_json::to_value(list(false)).expect("serializable");
        let tool = tools
            .as_array()
            .and_then(|tools| {
                tools
                    .iter()
                    .find(|t| t["name"] == "json_schema_2020_12_tool")
            })
            .expect("listed");
        let schema = &tool["inputSchema"];
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(schema["$defs"]["address"]["type"], "object");
        assert_eq!(schema["additionalProperties"], false);
    }

    #[test]
    fn elicitation_schemas_reach_the_wire_unchanged() {
        for schema in [sep1034_schema(), sep1330_schema()] {
            let request = elicitation_request("m", schema.clone()).expect("a valid schema");
            let wire = serde_json::to_value(request).expect("serializable");
            assert_eq!(wire["requestedSchema"], schema);
            assert_eq!(wire["message"], "m");
        }
    }
}
