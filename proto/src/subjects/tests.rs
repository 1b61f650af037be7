//! Tests of the subject layout.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

use super::*;
use crate::events::v1::{GrantRevoked, event::Body};

#[test]
fn subjects_follow_the_documented_layout() {
    assert_eq!(
        grant("acme-pink-panda-6942", "H1", "S1").unwrap().as_str(),
        "evt.acme-pink-panda-6942.grant.H1-S1"
    );
    assert_eq!(host("acme-1").unwrap().as_str(), "evt.acme-1.host.acme-1");
    assert_eq!(
        organization("O1").unwrap().as_str(),
        "evt._.organization.O1"
    );
    assert_eq!(admin_token("T1").unwrap().as_str(), "evt._.admin_token.T1");
}

#[test]
fn grant_ids_split_back_into_human_and_server() {
    assert_eq!(parse_grant_id(&grant_id("H1", "S1")), Some(("H1", "S1")));
    for bad in ["H1", "-S1", "H1-", "H1-S1-X", ""] {
        assert_eq!(parse_grant_id(bad), None, "{bad:?}");
    }
}

#[test]
fn every_body_names_its_aggregate_type() {
    let event = Event {
        meta: None,
        body: Some(Body::GrantRevoked(GrantRevoked {})),
    };
    assert_eq!(aggregate_type(&event), Some(GRANT));
    assert_eq!(aggregate_type(&Event::default()), None);
}
