//! Repository hygiene, checked on every test run (after rust-analyzer's `tidy.rs`): every Rust
//! file opens with a `//!` header saying what it owns, and every workspace member has a
//! heading in `ARCHITECTURE.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Rust files under `dir`, skipping build output, installed tools and dependencies.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !name.starts_with('.') && !matches!(name.as_str(), "target" | "node_modules") {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_opens_with_a_module_doc() {
    let mut files = Vec::new();
    rust_files(&repo(), &mut files);
    assert!(files.len() > 20, "found only {} files", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            !text.trim_start().starts_with("//!")
        })
        .map(|path| path.strip_prefix(repo()).unwrap().display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a `//!` header: {missing:#?}"
    );
}

#[test]
fn every_workspace_member_is_in_the_codemap() {
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let members = manifest
        .split("members = [")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .expect("a members list");
    let codemap = std::fs::read_to_string(repo().join("ARCHITECTURE.md")).unwrap();
    let headings: Vec<&str> = codemap.lines().filter(|l| l.starts_with("### ")).collect();
    let mut missing = Vec::new();
    for member in members
        .split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| !m.is_empty())
    {
        let package = std::fs::read_to_string(repo().join(member).join("Cargo.toml")).unwrap();
        let name = package
            .lines()
            .find_map(|l| l.strip_prefix("name = \""))
            .and_then(|l| l.strip_suffix('"'))
            .unwrap();
        if !headings
            .iter()
            .any(|h| h.contains(&format!("`{member}")) && h.contains(&format!("`{name}`")))
        {
            missing.push(format!("{member} ({name})"));
        }
    }
    assert!(
        missing.is_empty(),
        "members without an ARCHITECTURE.md heading naming dir and package: {missing:?}"
    );
}
