//! Tests of name validation and filter matching.

use super::*;

#[track_caller]
fn check_filter(filter: &str, subject: &str, expected: bool) {
    let filter = SubjectFilter::parse(filter).expect("valid filter");
    let subject = Subject::parse(subject).expect("valid subject");
    assert_eq!(filter.matches(&subject), expected, "{filter} vs {subject}");
}

#[test]
fn filters_match_like_nats_subjects() {
    check_filter("evt.>", "evt.h1.grant.g1", true);
    check_filter("evt.h1.>", "evt.h1.grant.g1", true);
    check_filter("evt.h1.>", "evt.h2.grant.g1", false);
    check_filter("evt.*.grant.*", "evt.h2.grant.g1", true);
    check_filter("evt.*.grant.*", "evt.h2.server.g1", false);
    check_filter("evt.h1.grant.g1", "evt.h1.grant.g1", true);
    check_filter("evt.h1.grant.g1", "evt.h1.grant.g2", false);
    check_filter("evt.h1.grant.>", "evt.h1.grant.g2", true);
}

#[test]
fn malformed_subjects_and_filters_are_rejected() {
    for bad in [
        "",
        "evt",
        "evt.h1.grant",
        "evt.h1.grant.g1.extra",
        "evt.h1.grant.*",
        "evt.h1..g1",
        "foo.h1.grant.g1",
        "evt.h 1.grant.g1",
        "evt.h1.grant.g1\n",
    ] {
        assert!(Subject::parse(bad).is_err(), "{bad:?} should be rejected");
    }
    for bad in [
        "evt",
        "foo.>",
        "evt.>.x",
        "evt.h1",
        "evt.h1.grant",
        "evt..>",
        "evt.a.b.c.d",
    ] {
        assert!(
            SubjectFilter::parse(bad).is_err(),
            "{bad:?} should be rejected"
        );
    }
    assert!(Subject::new("h1", "grant", &"x".repeat(65)).is_err());
}

#[test]
fn subjects_expose_their_tokens() {
    let subject = Subject::new("acme-pink-panda-6942", "grant", "01J").expect("valid");
    assert_eq!(subject.as_str(), "evt.acme-pink-panda-6942.grant.01J");
    assert_eq!(subject.host(), "acme-pink-panda-6942");
    assert_eq!(subject.aggregate_type(), "grant");
    assert_eq!(subject.aggregate_id(), "01J");
    assert_eq!(Subject::parse(subject.as_str()), Ok(subject));
}

#[test]
fn keys_reject_wildcards_and_empty_tokens() {
    for bad in [
        "",
        "a..b",
        ".a",
        "a.",
        "a.*",
        "a.>",
        "a b",
        "a@b.c",
        &"k".repeat(256),
    ] {
        assert!(Key::new(bad).is_err(), "{bad:?} should be rejected");
    }
    assert!(Key::new("grant.h1.01J.server_1").is_ok());
    assert!(
        Key::join(["grant", "h1", "bad.token"]).is_ok(),
        "join splits on dots like new"
    );
    assert_eq!(
        Key::join(["grant", "h1", "u1"]).map(Key::into_string),
        Ok("grant.h1.u1".to_owned())
    );
    let no_tokens: [&str; 0] = [];
    for bad in [
        &no_tokens[..],
        &["grant", ""],
        &["grant", "h1*"],
        &["", "h1"],
        &["grant", &"k".repeat(250)],
    ] {
        assert!(Key::join(bad).is_err(), "{bad:?} should be rejected");
    }
}

#[test]
fn key_prefixes_respect_token_boundaries() {
    let key = Key::new("grant.h1.u1").expect("valid");
    assert!(key.is_under(&Key::new("grant.h1").expect("valid")));
    assert!(key.is_under(&Key::new("grant").expect("valid")));
    assert!(!key.is_under(&Key::new("grant.h").expect("valid")));
    assert!(!key.is_under(&Key::new("grant.h1.u1").expect("valid")));
}

#[test]
fn command_ids_are_bounded_and_plain() {
    assert!(CommandId::parse("01JD3X:retry-1_a").is_ok());
    for bad in ["", "a b", "a.b", "a*", &"c".repeat(65)] {
        assert!(CommandId::parse(bad).is_err(), "{bad:?} should be rejected");
    }
}
