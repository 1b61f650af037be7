//! Tests of server version parsing and the minimum-version rule.

use super::*;

#[track_caller]
fn check(text: &str, expected: Result<(u64, u64, u64, Option<&str>), ()>, supported: bool) {
    let parsed = text.parse::<ServerVersion>();
    match (parsed, expected) {
        (Ok(version), Ok((major, minor, patch, pre))) => {
            assert_eq!(
                (
                    version.major,
                    version.minor,
                    version.patch,
                    version.pre_release.as_deref()
                ),
                (major, minor, patch, pre),
                "{text:?}"
            );
            assert_eq!(version.is_supported(), supported, "{text:?}");
        }
        (Err(_), Err(())) => {}
        (parsed, expected) => panic!("{text:?}: got {parsed:?}, expected {expected:?}"),
    }
}

#[test]
fn release_versions_parse_and_compare() {
    check("2.15.1", Ok((2, 15, 1, None)), true);
    check("v2.12.0", Ok((2, 12, 0, None)), true);
    check(" 2.14.0 ", Ok((2, 14, 0, None)), true);
    check("3.0.0", Ok((3, 0, 0, None)), true);
    check("2.11.9", Ok((2, 11, 9, None)), false);
    check("2.9.10", Ok((2, 9, 10, None)), false);
    check("1.99.99", Ok((1, 99, 99, None)), false);
}

#[test]
fn pre_releases_come_before_their_release() {
    check("2.12.0-RC.3", Ok((2, 12, 0, Some("RC.3"))), false);
    check("2.12.1-beta", Ok((2, 12, 1, Some("beta"))), true);
    check("2.15.1+b2fd3ef", Ok((2, 15, 1, None)), true);
    check("2.13.0-dev+abc", Ok((2, 13, 0, Some("dev"))), true);
}

#[test]
fn malformed_versions_are_errors() {
    for bad in [
        "",
        "v",
        "2",
        "2.15",
        "2.15.1.4",
        "2..1",
        "2.x.1",
        "-2.15.1",
        "2.15.1-",
        "2.+15.1",
        "99999999999999999999.0.0",
        "２.15.1",
    ] {
        check(bad, Err(()), false);
    }
}

#[test]
fn versions_print_as_parsed() {
    let version: ServerVersion = "v2.12.0-RC.3+build"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(version.to_string(), "2.12.0-RC.3");
    assert_eq!(MINIMUM_SERVER_VERSION.to_string(), "2.12.0");
}
