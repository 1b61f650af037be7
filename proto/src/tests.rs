//! Tests of what the crate exports besides the codec: the reflection descriptor set.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

use prost::Message;

#[test]
fn the_descriptor_set_names_every_control_service() {
    let set = prost_types::FileDescriptorSet::decode(super::FILE_DESCRIPTOR_SET).unwrap();
    let services: Vec<String> = set
        .file
        .iter()
        .flat_map(|file| {
            let package = file.package().to_owned();
            file.service
                .iter()
                .map(move |service| format!("{package}.{}", service.name()))
        })
        .collect();
    for expected in [
        "HostService",
        "ServerService",
        "HumanService",
        "AgentService",
        "AuditService",
        "OrganizationService",
    ] {
        assert!(
            services.contains(&format!("portcullis.control.v1.{expected}")),
            "{expected} missing from {services:?}"
        );
    }
    let files: Vec<&str> = set.file.iter().map(|f| f.name()).collect();
    assert!(
        files.contains(&"portcullis/events/v1/events.proto"),
        "{files:?}"
    );
    assert!(
        files.contains(&"portcullis/audit/v1/audit.proto"),
        "{files:?}"
    );
}
