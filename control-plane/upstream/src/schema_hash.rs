//! A stable SHA-256 of a tool's input schema, so the gateway can tell when an upstream changes
//! a tool behind an admin's back.
//!
//! Canonical form: JSON with object keys sorted by code point at every depth, no whitespace,
//! strings and numbers as `serde_json` writes them. It does not depend on the order the
//! upstream sent keys in, nor on whether `serde_json`'s `preserve_order` feature is on
//! somewhere in the build.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The canonical serialization of `value`.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

/// Lower-case hex SHA-256 of [`canonical_json`].
pub fn schema_sha256(value: &Value) -> String {
    let digest = Sha256::digest(canonical_json(value).as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by_key(|(key, _)| *key);
            out.push('{');
            for (index, (key, item)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests;
