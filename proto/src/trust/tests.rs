//! Tests of the domain trust level and its conversions.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

use super::*;

#[test]
fn trust_levels_are_ordered_low_medium_high() {
    assert!(TrustLevel::Low < TrustLevel::Medium);
    assert!(TrustLevel::Medium < TrustLevel::High);
    assert_eq!(
        [TrustLevel::High, TrustLevel::Medium].iter().min(),
        Some(&TrustLevel::Medium)
    );
}

#[test]
fn trust_levels_parse_and_print_in_lower_case() {
    for level in TrustLevel::ALL {
        assert_eq!(level.as_str().parse::<TrustLevel>(), Ok(level));
        assert_eq!(level.to_string(), level.as_str());
    }
    for bad in ["", "LOW", "Low", "highest", " low"] {
        let err = bad.parse::<TrustLevel>().unwrap_err();
        assert_eq!(err.input, bad);
    }
}

#[test]
fn trust_levels_serialize_as_lower_case_strings() {
    assert_eq!(
        serde_json::to_string(&TrustLevel::Medium).unwrap(),
        "\"medium\""
    );
    assert_eq!(
        serde_json::from_str::<TrustLevel>("\"high\"").unwrap(),
        TrustLevel::High
    );
    assert!(serde_json::from_str::<TrustLevel>("\"HIGH\"").is_err());
}

#[test]
fn unspecified_and_unknown_protobuf_levels_are_rejected() {
    assert_eq!(TrustLevel::try_from(1), Ok(TrustLevel::Low));
    assert_eq!(TrustLevel::try_from(2), Ok(TrustLevel::Medium));
    assert_eq!(TrustLevel::try_from(3), Ok(TrustLevel::High));
    assert_eq!(TrustLevel::try_from(0), Err(InvalidTrustLevel { value: 0 }));
    assert_eq!(TrustLevel::try_from(4), Err(InvalidTrustLevel { value: 4 }));
    assert_eq!(
        TrustLevel::try_from(-1),
        Err(InvalidTrustLevel { value: -1 })
    );
}

#[test]
fn domain_levels_round_trip_through_protobuf_numbers() {
    for level in TrustLevel::ALL {
        assert_eq!(TrustLevel::try_from(i32::from(level)), Ok(level));
        assert_eq!(TrustLevel::try_from(pb::TrustLevel::from(level)), Ok(level));
    }
}
