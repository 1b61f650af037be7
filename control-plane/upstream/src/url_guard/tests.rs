//! Tests of the SSRF guard: URL shapes, address classes, and resolution of names.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

use super::*;

const PROD: UrlPolicy = UrlPolicy::PRODUCTION;
const DEV: UrlPolicy = UrlPolicy::DEVELOPMENT;

#[test]
fn public_https_urls_pass_in_production() {
    check(PROD, "https://93.184.215.14/mcp", Ok(()));
    check(
        PROD,
        "https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/mcp",
        Ok(()),
    );
}

#[test]
fn only_http_and_https_are_accepted() {
    for url in [
        "ftp://example.com/",
        "file:///etc/passwd",
        "gopher://x/",
        "javascript:alert(1)",
    ] {
        let scheme = url.split(':').next().unwrap_or_default();
        check(
            DEV,
            url,
            Err(&format!(
                "url scheme \"{scheme}\" is not allowed; use https"
            )),
        );
    }
}

#[test]
fn plain_http_is_for_development_only() {
    check(
        PROD,
        "http://93.184.215.14/mcp",
        Err("url must use https; plain http is accepted only in development mode"),
    );
    check(DEV, "http://93.184.215.14/mcp", Ok(()));
}

#[test]
fn credentials_in_the_url_are_refused() {
    let message = "url must not contain a user name or password; configure credentials separately";
    check(DEV, "https://user:pass@93.184.215.14/", Err(message));
    check(DEV, "https://user@93.184.215.14/", Err(message));
}

#[test]
fn garbage_and_overlong_urls_are_refused() {
    check(
        DEV,
        "not a url",
        Err("url is not a valid absolute URL: relative URL without a base"),
    );
    check(
        DEV,
        "https://",
        Err("url is not a valid absolute URL: empty host"),
    );
    let long = format!("https://93.184.215.14/{}", "a".repeat(MAX_URL_LEN));
    let length = long.len();
    check(
        DEV,
        &long,
        Err(&format!(
            "url is {length} bytes long; at most {MAX_URL_LEN} are accepted"
        )),
    );
}

#[test]
fn loopback_literals_in_every_spelling_are_refused_in_production() {
    for url in [
        "https://127.0.0.1/",
        "https://127.1.2.3:8443/",
        "https://2130706433/",
        "https://0x7f.0.0.1/",
        "https://0x7f000001/",
        "https://017700000001/",
        "https://127.1/",
    ] {
        let host = Url::parse(url).unwrap().host_str().unwrap().to_owned();
        check(
            PROD,
            url,
            Err(&format!(
                "url host {host} is {host}, a loopback address, which the gateway does not \
                 connect to outside development mode"
            )),
        );
        check(DEV, url, Ok(()));
    }
    check(
        PROD,
        "https://[::1]/",
        Err(
            "url host [::1] is ::1, a loopback address, which the gateway does not connect to \
             outside development mode",
        ),
    );
    check(
        PROD,
        "https://[::ffff:127.0.0.1]/",
        Err(
            "url host [::ffff:7f00:1] is ::ffff:127.0.0.1, a loopback address, which the \
             gateway does not connect to outside development mode",
        ),
    );
}

#[test]
fn metadata_endpoints_are_refused_even_in_development() {
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://100.100.100.200/",
        "http://[::ffff:169.254.169.254]/",
        "http://2852039166/",
    ] {
        let rejected = DEV.check_syntax(url).unwrap_err();
        assert!(
            matches!(
                rejected,
                UrlRejected::ForbiddenAddress {
                    class: AddressClass::CloudMetadata,
                    ..
                }
            ),
            "{url}: {rejected}"
        );
        assert!(
            rejected
                .to_string()
                .ends_with("a cloud metadata address, which the gateway does not connect to"),
            "{rejected}"
        );
    }
}

#[test]
fn every_address_class_is_recognised() {
    let cases: &[(&str, Option<AddressClass>)] = &[
        ("8.8.8.8", None),
        ("2001:4860:4860::8888", None),
        ("10.1.2.3", Some(AddressClass::Private)),
        ("172.16.0.1", Some(AddressClass::Private)),
        ("172.31.255.255", Some(AddressClass::Private)),
        ("172.32.0.1", None),
        ("192.168.1.1", Some(AddressClass::Private)),
        ("169.254.1.1", Some(AddressClass::LinkLocal)),
        ("100.64.0.1", Some(AddressClass::SharedAddressSpace)),
        ("100.128.0.1", None),
        ("0.0.0.0", Some(AddressClass::Unspecified)),
        ("0.1.2.3", Some(AddressClass::Unspecified)),
        ("224.0.0.1", Some(AddressClass::Multicast)),
        ("255.255.255.255", Some(AddressClass::Broadcast)),
        ("240.0.0.1", Some(AddressClass::Reserved)),
        ("192.0.0.8", Some(AddressClass::Reserved)),
        ("192.0.2.1", Some(AddressClass::Documentation)),
        ("198.18.0.1", Some(AddressClass::Benchmarking)),
        ("::", Some(AddressClass::Unspecified)),
        ("::1", Some(AddressClass::Loopback)),
        ("fc00::1", Some(AddressClass::UniqueLocal)),
        ("fd12:3456::1", Some(AddressClass::UniqueLocal)),
        ("fe80::1", Some(AddressClass::LinkLocal)),
        ("ff02::1", Some(AddressClass::Multicast)),
        ("2001:db8::1", Some(AddressClass::Documentation)),
        ("2001:0:4136:e378::1", Some(AddressClass::Reserved)),
        ("64:ff9b::a00:1", Some(AddressClass::Private)),
        ("64:ff9b::808:808", None),
        ("2002:7f00:1::", Some(AddressClass::Loopback)),
        ("::10.0.0.1", Some(AddressClass::Private)),
        ("::ffff:192.168.0.1", Some(AddressClass::Private)),
    ];
    for (address, class) in cases {
        let ip: IpAddr = address.parse().unwrap();
        assert_eq!(classify_address(ip), *class, "{address}");
    }
}

#[test]
fn development_still_refuses_what_no_upstream_needs() {
    for url in [
        "http://0.0.0.0:8080/",
        "http://[::]/",
        "http://224.0.0.1/",
        "http://255.255.255.255/",
    ] {
        assert!(DEV.check_syntax(url).is_err(), "{url}");
    }
    for url in [
        "http://10.0.0.1/",
        "http://[fd00::1]/",
        "http://192.168.0.1/",
        "http://100.64.1.1/",
    ] {
        assert!(DEV.check_syntax(url).is_ok(), "{url}");
        assert!(
            PROD.check_syntax(&url.replace("http:", "https:")).is_err(),
            "{url}"
        );
    }
}

#[tokio::test]
async fn a_name_that_resolves_to_loopback_is_refused_in_production() {
    let rejected = PROD.validate("https://localhost/mcp").await.unwrap_err();
    assert!(
        matches!(
            rejected,
            UrlRejected::ForbiddenAddress {
                class: AddressClass::Loopback,
                ..
            }
        ),
        "{rejected}"
    );
    assert!(
        rejected
            .to_string()
            .starts_with("url host localhost resolves to "),
        "{rejected}"
    );
}

#[tokio::test]
async fn development_resolves_and_pins_loopback_names() {
    let guarded = DEV.validate("http://localhost:8123/mcp").await.unwrap();
    assert!(!guarded.addrs().is_empty());
    for addr in guarded.addrs() {
        assert!(addr.ip().is_loopback(), "{addr}");
        assert_eq!(addr.port(), 8123);
    }
}

#[tokio::test]
async fn an_unresolvable_name_is_refused() {
    let rejected = DEV
        .validate("http://no-such-host.invalid/")
        .await
        .unwrap_err();
    assert!(
        rejected
            .to_string()
            .starts_with("url host no-such-host.invalid does not resolve: "),
        "{rejected}"
    );
}

/// The one place these tests call the syntax checks: a URL in, `Ok` or the exact message out.
#[track_caller]
fn check(policy: UrlPolicy, url: &str, expected: Result<(), &str>) {
    let outcome = policy
        .check_syntax(url)
        .map(|_| ())
        .map_err(|e| e.to_string());
    assert_eq!(outcome, expected.map_err(str::to_owned), "{url}");
}
