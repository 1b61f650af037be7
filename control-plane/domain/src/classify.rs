//! Automatic trust classification of an upstream tool: the product rule on the tool's name,
//! raised (never lowered) by the tool's MCP annotations and by input-schema cues.
//!
//! The name rule is exact and deliberately blunt (DESIGN.md section 2): lower-case the name;
//! any high keyword anywhere in it makes the tool high, else any medium keyword makes it
//! medium, else it is low. Substrings count, so `get_dataset` ("set") is medium and
//! `address_lookup` ("add") is medium; admins override such cases. Other signals may only raise
//! the level, and every raise is written into the reason.

use portcullis_proto::TrustLevel;
use serde_json::Value;

/// Keywords that make a tool high. When several match, the reason names the first in this order.
pub const HIGH_KEYWORDS: [&str; 10] = [
    "delete",
    "remove",
    "destroy",
    "drop",
    "purge",
    "erase",
    "truncate",
    "terminate",
    "kill",
    "revoke",
];

/// Keywords that make a tool medium. When several match, the reason names the first in this order.
pub const MEDIUM_KEYWORDS: [&str; 20] = [
    "create", "write", "update", "set", "modify", "edit", "put", "post", "insert", "add", "send",
    "execute", "run", "invoke", "submit", "push", "publish", "deploy", "apply", "patch",
];

/// Input-schema property names that say the tool has a dry-run mode, so a real run changes
/// something.
const DRY_RUN_PROPERTIES: [&str; 3] = ["dry_run", "dryrun", "dry-run"];

/// The MCP tool annotations the classifier reads (`ToolAnnotations` in the MCP schema). They
/// are hints from the upstream, so they can only make a tool need more trust, never less.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ToolAnnotationsInput {
    /// `readOnlyHint`: `Some(false)` says the tool changes its environment.
    pub read_only_hint: Option<bool>,
    /// `destructiveHint`: `Some(true)` says the tool may destroy or overwrite things.
    pub destructive_hint: Option<bool>,
}

/// The suggested trust level of a tool and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classification {
    /// The level the tool needs.
    pub level: TrustLevel,
    /// The name keyword that set the base level, if any.
    pub matched_keyword: Option<&'static str>,
    /// One sentence an admin can read: the keyword matched and every signal that raised it.
    pub reason: String,
}

/// Classifies a tool by its name, then raises the level for annotations and schema cues.
pub fn classify(
    name: &str,
    annotations: Option<&ToolAnnotationsInput>,
    input_schema: &Value,
) -> Classification {
    let lowered = name.to_lowercase();
    let (mut level, matched_keyword) = name_level(&lowered);
    let mut reason = match matched_keyword {
        Some(keyword) => format!("name contains \"{keyword}\" ({level})"),
        None => "name contains no keyword (low)".to_owned(),
    };

    let mut raise = |to: TrustLevel, why: &str| {
        if to > level {
            level = to;
            reason.push_str(&format!("; raised to {to}: {why}"));
        }
    };
    if let Some(annotations) = annotations {
        if annotations.destructive_hint == Some(true) {
            raise(TrustLevel::High, "annotation destructiveHint is true");
        }
        if annotations.read_only_hint == Some(false) {
            raise(TrustLevel::Medium, "annotation readOnlyHint is false");
        }
    }
    if let Some(property) = dry_run_property(input_schema) {
        raise(
            TrustLevel::Medium,
            &format!("input schema has a \"{property}\" flag, so a real run changes something"),
        );
    }

    Classification {
        level,
        matched_keyword,
        reason,
    }
}

/// The product rule on an already lower-cased name.
fn name_level(lowered: &str) -> (TrustLevel, Option<&'static str>) {
    let first_in = |keywords: &[&'static str]| {
        keywords
            .iter()
            .copied()
            .find(|keyword| lowered.contains(keyword))
    };
    if let Some(keyword) = first_in(&HIGH_KEYWORDS) {
        (TrustLevel::High, Some(keyword))
    } else if let Some(keyword) = first_in(&MEDIUM_KEYWORDS) {
        (TrustLevel::Medium, Some(keyword))
    } else {
        (TrustLevel::Low, None)
    }
}

/// The name of a top-level dry-run property of an object schema, as the schema spells it.
fn dry_run_property(input_schema: &Value) -> Option<&str> {
    let properties = input_schema.get("properties")?.as_object()?;
    properties
        .keys()
        .map(String::as_str)
        .find(|key| DRY_RUN_PROPERTIES.contains(&key.to_lowercase().as_str()))
}

#[cfg(test)]
mod tests;
