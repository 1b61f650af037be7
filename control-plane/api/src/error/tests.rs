//! Tests of the error mapping.

use super::*;

#[test]
fn each_control_error_has_its_status_and_code() {
    for (error, status, code) in [
        (
            ControlError::Unauthenticated,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        ),
        (
            ControlError::not_found("host", "h1"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            ControlError::invalid("email", "not an email"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            ControlError::conflict("server key", "k", "taken"),
            StatusCode::CONFLICT,
            "conflict",
        ),
    ] {
        let (got_status, got_code, _) = ApiError::from(error).parts();
        assert_eq!((got_status, got_code), (status, code));
    }
}

#[test]
fn a_validation_error_names_its_field_in_details_and_in_grpc() {
    let error = ApiError::from(ControlError::invalid("tools[0].name", "empty"));
    let (_, _, details) = error.parts();
    assert_eq!(details["field"], "tools[0].name");
    let status = tonic::Status::from(ApiError::from(ControlError::invalid("email", "bad")));
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("email"));
}

#[tokio::test]
async fn a_401_says_how_to_authenticate() {
    let response = ApiError::from(ControlError::Unauthenticated).into_response();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
}
