//! Tests of settings validation: each bad value is refused with a message naming the flag.

use super::*;

fn nats(urls: &[&str], namespace: &str, replicas: usize) -> Result<NatsSettings, ConfigError> {
    NatsSettings::from_args(&NatsArgs {
        nats: urls.iter().map(|s| (*s).to_owned()).collect(),
        namespace: namespace.to_owned(),
        replicas,
    })
}

#[test]
fn nats_urls_in_the_usual_forms_are_accepted() {
    let ok = nats(
        &["nats://127.0.0.1:4222", "tls://user:pw@n2:4222", "n3"],
        "portcullis",
        3,
    )
    .expect("valid settings");
    assert_eq!(ok.urls.len(), 3);
}

#[test]
fn bad_nats_settings_name_the_flag_and_the_fix() {
    for (urls, namespace, replicas, flag) in [
        (vec!["http://x:4222"], "portcullis", 1, "nats"),
        (vec!["nats://x:notaport"], "portcullis", 1, "nats"),
        (vec!["nats://:4222"], "portcullis", 1, "nats"),
        (vec![""], "portcullis", 1, "nats"),
        (vec!["nats://x"], "Upper", 1, "namespace"),
        (vec!["nats://x"], "a.b", 1, "namespace"),
        (vec!["nats://x"], "portcullis", 2, "replicas"),
    ] {
        let err = nats(&urls, namespace, replicas).expect_err("must be refused");
        assert_eq!(err.flag, flag, "{err}");
        assert!(err.to_string().contains("PORTCULLIS_"), "{err}");
    }
}

#[test]
fn durations_are_parsed_and_bounded() {
    assert_eq!(
        parse_max_staleness("10s").expect("valid"),
        Duration::from_secs(10)
    );
    assert_eq!(
        parse_max_staleness("1500ms").expect("valid"),
        Duration::from_millis(1500)
    );
    assert!(parse_max_staleness("10").is_err(), "a unit is required");
    assert!(parse_max_staleness("0s").is_err(), "below the floor");
    assert!(parse_max_staleness("2h").is_err(), "above the ceiling");
    assert_eq!(parse_stale_wait("0s").expect("valid"), Duration::ZERO);
    assert_eq!(
        parse_stale_wait("10s").expect("valid"),
        Duration::from_secs(10)
    );
    let error = parse_stale_wait("61s").expect_err("above the ceiling");
    assert!(error.to_string().contains("--stale-wait"), "{error}");
}

#[test]
fn audit_retention_is_a_day_to_ten_years() {
    const DAY: u64 = 24 * 60 * 60;
    assert_eq!(
        parse_audit_retention("90d").expect("the default is valid"),
        Duration::from_secs(90 * DAY)
    );
    assert_eq!(
        parse_audit_retention("1day").expect("the floor is valid"),
        Duration::from_secs(DAY)
    );
    assert_eq!(
        parse_audit_retention("10y").expect("the ceiling is valid"),
        Duration::from_secs(10 * 31_557_600)
    );
    for bad in ["23h", "11y", "90", "forever", ""] {
        let err = parse_audit_retention(bad).expect_err(bad);
        assert_eq!(err.flag, "audit-retention", "{err}");
        assert!(
            err.to_string().contains("PORTCULLIS_AUDIT_RETENTION"),
            "{err}"
        );
    }
    let err = parse_audit_retention("11y").expect_err("above the ceiling");
    assert!(err.reason.contains("between 1day and 10years"), "{err}");
}

#[test]
fn public_urls_are_a_scheme_a_domain_and_maybe_a_port() {
    assert_eq!(
        parse_public_url("https://GW.example.com/").expect("valid"),
        ("https".into(), "gw.example.com".into(), None)
    );
    assert_eq!(
        parse_public_url("http://gw.test:8443").expect("valid"),
        ("http".into(), "gw.test".into(), Some(8443))
    );
    for bad in [
        "gw.example.com",
        "ftp://gw",
        "https://gw/path",
        "https://u@gw",
        "https://",
        "https://gw:x",
        "https://a..b",
    ] {
        assert!(parse_public_url(bad).is_err(), "{bad}");
    }
}

#[test]
fn otlp_endpoints_are_plain_collector_urls() {
    for good in ["http://127.0.0.1:4317", "https://otel.example.com:4317/"] {
        assert!(parse_otlp_endpoint(good).is_ok(), "{good}");
    }
    for (bad, says) in [
        ("127.0.0.1:4317", "http"),
        ("grpc://collector:4317", "http:// or https://"),
        ("http://user:secret@collector:4317", "credentials"),
        ("http://collector:4317/?token=x", "query"),
        ("not a url", "otel-collector"),
    ] {
        let err = parse_otlp_endpoint(bad).expect_err(bad);
        assert_eq!(err.flag, "otlp-endpoint");
        assert!(err.reason.contains(says), "{bad}: {err}");
        assert!(!err.to_string().is_empty());
    }
}
