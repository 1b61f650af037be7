//! Given an input, then the normalized value or the typed refusal.

use super::*;

#[test]
fn emails_are_trimmed_lower_cased_and_checked() {
    assert_eq!(
        normalize_email("  Ada.Lovelace+x@Example.COM "),
        Ok("ada.lovelace+x@example.com".to_owned())
    );
    assert_eq!(normalize_email("   "), Err(InvalidEmail::Empty));
    for bad in [
        "ada",
        "ada@",
        "@example.com",
        "ada@example",
        "ada@@example.com",
        "a da@example.com",
        "ada@exa_mple.com",
        "ada@-example.com",
        ".ada@example.com",
        "ada..b@example.com",
        "adé@example.com",
    ] {
        assert_eq!(normalize_email(bad), Err(InvalidEmail::Format), "{bad}");
    }
    let long = format!("{}@example.com", "a".repeat(250));
    assert_eq!(normalize_email(&long), Err(InvalidEmail::TooLong));
}

#[test]
fn server_keys_are_url_safe_and_short() {
    for good in ["github", "my-server_2", "0day", &"k".repeat(48)] {
        assert_eq!(validate_server_key(good), Ok(()), "{good}");
    }
    assert_eq!(validate_server_key(""), Err(InvalidServerKey::Length));
    assert_eq!(
        validate_server_key(&"k".repeat(49)),
        Err(InvalidServerKey::Length)
    );
    for bad in ["GitHub", "-x", "_x", "a.b", "a/b", "a b", "ключ"] {
        assert_eq!(
            validate_server_key(bad),
            Err(InvalidServerKey::Characters),
            "{bad}"
        );
    }
}

#[test]
fn a_derived_key_comes_from_the_name_else_the_url_host() {
    assert_eq!(
        derive_server_key(Some("GitHub Issues!"), "https://x.io"),
        "github-issues"
    );
    assert_eq!(
        derive_server_key(None, "https://mcp.linear.app/sse"),
        "linear"
    );
    assert_eq!(
        derive_server_key(Some("  "), "https://www.api.example.com/mcp"),
        "api-example"
    );
    assert_eq!(
        derive_server_key(None, "http://localhost:3000/mcp"),
        "localhost"
    );
    assert_eq!(derive_server_key(Some("日本"), "not a url"), "server");
    let long = derive_server_key(Some(&"word ".repeat(30)), "");
    assert!(long.len() <= MAX_SERVER_KEY_LEN, "{long}");
    assert_eq!(validate_server_key(&long), Ok(()));
}

#[test]
fn numbered_keys_stay_valid() {
    assert_eq!(numbered_server_key("github", 2), "github-2");
    let numbered = numbered_server_key(&"k".repeat(48), 12);
    assert_eq!(numbered.len(), 48);
    assert!(numbered.ends_with("-12"));
    assert_eq!(validate_server_key(&numbered), Ok(()));
}

#[test]
fn names_and_descriptions_have_limits() {
    assert_eq!(validate_name("  GitHub "), Ok("GitHub".to_owned()));
    assert_eq!(validate_name(" "), Err(InvalidText::Empty));
    assert_eq!(
        validate_name(&"n".repeat(101)),
        Err(InvalidText::TooLong { max: 100 })
    );
    assert_eq!(
        validate_name("a\u{7}b"),
        Err(InvalidText::ControlCharacters)
    );
    assert_eq!(
        validate_description("line one\nline two", MAX_DESCRIPTION_CHARS),
        Ok("line one\nline two".to_owned())
    );
    assert_eq!(
        validate_description("", MAX_DESCRIPTION_CHARS),
        Ok(String::new())
    );
    assert_eq!(
        validate_description(&"d".repeat(2001), MAX_DESCRIPTION_CHARS),
        Err(InvalidText::TooLong { max: 2000 })
    );
}

#[test]
fn server_urls_are_http_with_a_host_and_no_credentials() {
    assert_eq!(
        validate_server_url(" https://mcp.example.com/mcp "),
        Ok("https://mcp.example.com/mcp".to_owned())
    );
    assert_eq!(
        validate_server_url("mcp.example.com"),
        Err(InvalidUrl::Unparsable)
    );
    assert_eq!(
        validate_server_url("ftp://example.com"),
        Err(InvalidUrl::Scheme)
    );
    assert_eq!(
        validate_server_url("https://u:p@example.com/"),
        Err(InvalidUrl::Credentials)
    );
    assert_eq!(
        validate_server_url("https://example.com/#x"),
        Err(InvalidUrl::Fragment)
    );
    let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
    assert_eq!(validate_server_url(&long), Err(InvalidUrl::TooLong));
}

#[test]
fn origins_are_scheme_host_and_port_only() {
    assert_eq!(
        normalize_origin("HTTPS://App.Example.com:443/"),
        Ok("https://app.example.com".to_owned())
    );
    assert_eq!(
        normalize_origin("http://localhost:3000"),
        Ok("http://localhost:3000".to_owned())
    );
    assert_eq!(normalize_origin("*"), Err(InvalidOrigin::Format));
    assert_eq!(
        normalize_origin("https://*.example.com"),
        Err(InvalidOrigin::Format)
    );
    assert_eq!(normalize_origin("example.com"), Err(InvalidOrigin::Format));
    assert_eq!(
        normalize_origin("chrome-extension://abc"),
        Err(InvalidOrigin::Scheme)
    );
    for bad in [
        "https://example.com/path",
        "https://example.com?q=1",
        "https://example.com#f",
        "https://user@example.com",
    ] {
        assert_eq!(
            normalize_origin(bad),
            Err(InvalidOrigin::NotAnOrigin),
            "{bad}"
        );
    }
}

#[test]
fn tool_names_have_no_whitespace() {
    assert_eq!(validate_tool_name("repo.create_issue/v2"), Ok(()));
    assert_eq!(validate_tool_name(""), Err(InvalidToolName::Length));
    assert_eq!(
        validate_tool_name(&"t".repeat(129)),
        Err(InvalidToolName::Length)
    );
    assert_eq!(validate_tool_name("a b"), Err(InvalidToolName::Characters));
}

#[test]
fn upstream_timeouts_are_1_to_3600_seconds() {
    for ok in [1, 30, 3600] {
        assert_eq!(validate_upstream_timeout(ok), Ok(()), "{ok}");
    }
    for bad in [0, 3601, u64::MAX] {
        assert_eq!(
            validate_upstream_timeout(bad),
            Err(InvalidTimeout::OutOfRange),
            "{bad}"
        );
    }
    assert_eq!(
        InvalidTimeout::OutOfRange.to_string(),
        "must be 1 to 3600 seconds"
    );
}

#[test]
fn host_settings_are_normalized_and_bounded() {
    let given = pb::HostSettings {
        dynamic_mcps: true,
        tool_visibility: 0,
        session_idle_seconds: None,
        session_absolute_seconds: Some(MAX_SESSION_SECONDS),
        allowed_origins: vec![
            "https://A.example.com/".into(),
            "https://a.example.com".into(),
            "http://localhost:8080".into(),
        ],
        auth: None,
    };
    let normalized = normalize_host_settings(&given).expect("valid");
    assert_eq!(
        normalized.tool_visibility,
        pb::ToolVisibility::Permitted as i32
    );
    assert_eq!(
        normalized.allowed_origins,
        vec!["https://a.example.com", "http://localhost:8080"]
    );
    assert_eq!(normalized.session_idle_seconds, None);

    let with = |change: fn(&mut pb::HostSettings)| {
        let mut settings = pb::HostSettings::default();
        change(&mut settings);
        normalize_host_settings(&settings).map(|_| ())
    };
    assert_eq!(
        with(|s| s.tool_visibility = 7),
        Err(InvalidSettings::ToolVisibility)
    );
    assert_eq!(
        with(|s| s.session_idle_seconds = Some(59)),
        Err(InvalidSettings::IdleOutOfRange)
    );
    assert_eq!(
        with(|s| s.session_absolute_seconds = Some(MAX_SESSION_SECONDS + 1)),
        Err(InvalidSettings::AbsoluteOutOfRange)
    );
    // 100 idle days against the default 90 absolute days.
    assert_eq!(
        with(|s| s.session_idle_seconds = Some(100 * 86_400)),
        Err(InvalidSettings::IdleExceedsAbsolute)
    );
    let bad_origin = with(|s| s.allowed_origins = vec!["https://ok.com".into(), "nope".into()]);
    assert_eq!(
        bad_origin,
        Err(InvalidSettings::Origin {
            index: 1,
            source: InvalidOrigin::Format
        })
    );
    assert_eq!(
        bad_origin.err().map(|e| e.field()),
        Some("allowed_origins[1]".to_owned())
    );
}

#[test]
fn sign_in_settings_get_explicit_defaults_and_normalized_domains() {
    let normalized = normalize_auth_settings(None).expect("defaults are valid");
    assert_eq!(normalized.password, Some(true));
    assert_eq!(normalized.email_otp, Some(false));
    assert!(normalized.allowed_domains.is_none());

    let given = pb::HostAuthSettings {
        password: Some(false),
        email_otp: Some(true),
        allowed_domains: Some(pb::DomainRule {
            domains: vec![
                " Example.COM. ".into(),
                "example.com".into(),
                "Bücher.example".into(),
            ],
            include_subdomains: true,
        }),
        password_domains: None,
        email_otp_domains: Some(pb::DomainRule::default()),
        providers: Vec::new(),
        passkeys: None,
        passkey_domains: None,
    };
    let normalized = normalize_auth_settings(Some(&given)).expect("valid");
    let allowed = normalized.allowed_domains.expect("kept");
    assert_eq!(allowed.domains, ["example.com", "xn--bcher-kva.example"]);
    assert!(allowed.include_subdomains);
    assert_eq!(
        normalized.email_otp_domains,
        Some(pb::DomainRule::default())
    );
}

#[test]
fn bad_sign_in_settings_name_the_field() {
    let off = pb::HostAuthSettings {
        password: Some(false),
        email_otp: Some(false),
        ..Default::default()
    };
    let err = normalize_auth_settings(Some(&off)).expect_err("nobody could sign in");
    assert_eq!(err, InvalidSettings::NoSignInMethod);
    assert_eq!(err.field(), "auth");
    for bad in [
        "",
        "user@example.com",
        "*.example.com",
        "https://example.com",
        "example.com:443",
        "localhost",
        "exa mple.com",
        "-bad-.example",
        "a..b",
    ] {
        let given = pb::HostAuthSettings {
            password_domains: Some(pb::DomainRule {
                domains: vec!["ok.example".into(), bad.into()],
                include_subdomains: false,
            }),
            ..Default::default()
        };
        let err = normalize_auth_settings(Some(&given)).expect_err(bad);
        assert_eq!(
            err.field(),
            "auth.password_domains.domains[1]",
            "{bad:?}: {err}"
        );
    }
    let many = pb::HostAuthSettings {
        allowed_domains: Some(pb::DomainRule {
            domains: (0..=MAX_RULE_DOMAINS)
                .map(|i| format!("d{i}.example"))
                .collect(),
            include_subdomains: false,
        }),
        ..Default::default()
    };
    let err = normalize_auth_settings(Some(&many)).expect_err("too many");
    assert_eq!(err.field(), "auth.allowed_domains.domains");
    // Through the whole settings too.
    let settings = pb::HostSettings {
        auth: Some(off),
        ..Default::default()
    };
    assert_eq!(
        normalize_host_settings(&settings),
        Err(InvalidSettings::NoSignInMethod)
    );
}

fn provider(kind: pb::SignInProviderKind) -> pb::SignInProvider {
    pb::SignInProvider {
        id: "sso".into(),
        kind: kind as i32,
        client_id: "portcullis".into(),
        sealed_client_secret: vec![1, 2, 3],
        key_id: "k1".into(),
        issuer: if kind == pb::SignInProviderKind::Oidc {
            "https://idp.example.com/".into()
        } else {
            String::new()
        },
        ..Default::default()
    }
}

fn with_providers(providers: Vec<pb::SignInProvider>) -> pb::HostAuthSettings {
    pb::HostAuthSettings {
        providers,
        ..Default::default()
    }
}

#[test]
fn a_provider_is_normalized_and_counts_as_a_sign_in_method() {
    let mut oidc = provider(pb::SignInProviderKind::Oidc);
    oidc.force_redirect_domains = vec!["Corp.Example.".into()];
    let given = pb::HostAuthSettings {
        password: Some(false),
        email_otp: Some(false),
        providers: vec![oidc],
        ..Default::default()
    };
    let normalized = normalize_auth_settings(Some(&given)).expect("valid");
    let oidc = &normalized.providers[0];
    assert_eq!(oidc.issuer, "https://idp.example.com");
    assert_eq!(oidc.force_redirect_domains, ["corp.example"]);
}

#[test]
fn bad_providers_name_the_field_and_say_why() {
    use pb::SignInProviderKind as Kind;
    let cases: Vec<(pb::SignInProvider, &str)> = vec![
        (
            pb::SignInProvider {
                id: "Bad Id".into(),
                ..provider(Kind::Oidc)
            },
            "id",
        ),
        (
            pb::SignInProvider {
                kind: 0,
                ..provider(Kind::Oidc)
            },
            "kind",
        ),
        (
            pb::SignInProvider {
                issuer: String::new(),
                ..provider(Kind::Oidc)
            },
            "issuer",
        ),
        (
            pb::SignInProvider {
                issuer: "ftp://x.example".into(),
                ..provider(Kind::Oidc)
            },
            "issuer",
        ),
        (
            pb::SignInProvider {
                issuer: "https://u:p@x.example".into(),
                ..provider(Kind::Oidc)
            },
            "issuer",
        ),
        (
            pb::SignInProvider {
                client_id: String::new(),
                ..provider(Kind::Oidc)
            },
            "client_id",
        ),
        (
            pb::SignInProvider {
                client_secret: "plain".into(),
                ..provider(Kind::Oidc)
            },
            "client_secret",
        ),
        (
            pb::SignInProvider {
                sealed_client_secret: Vec::new(),
                ..provider(Kind::Oidc)
            },
            "client_secret",
        ),
        (provider(Kind::Microsoft), "tenant"),
        (
            pb::SignInProvider {
                tenant: "common".into(),
                ..provider(Kind::Microsoft)
            },
            "allowed_tenants",
        ),
        (
            pb::SignInProvider {
                tenant: "organizations".into(),
                allowed_tenants: vec!["nope".into()],
                ..provider(Kind::Microsoft)
            },
            "allowed_tenants[0]",
        ),
        (
            pb::SignInProvider {
                tenant: "11111111-1111-4111-8111-111111111111".into(),
                allowed_tenants: vec!["22222222-2222-4222-8222-222222222222".into()],
                ..provider(Kind::Microsoft)
            },
            "allowed_tenants",
        ),
        (
            pb::SignInProvider {
                tenant: "common".into(),
                ..provider(Kind::Github)
            },
            "tenant",
        ),
        (
            pb::SignInProvider {
                api_base: "https://api.example".into(),
                ..provider(Kind::Google)
            },
            "api_base",
        ),
        (
            pb::SignInProvider {
                issuer: "https://idp.example".into(),
                ..provider(Kind::Github)
            },
            "issuer",
        ),
        (
            pb::SignInProvider {
                force_redirect_domains: vec!["not a domain".into()],
                ..provider(Kind::Google)
            },
            "force_redirect_domains[0]",
        ),
        (
            pb::SignInProvider {
                domains: Some(pb::DomainRule {
                    domains: vec!["other.example".into()],
                    include_subdomains: false,
                }),
                force_redirect_domains: vec!["corp.example".into()],
                ..provider(Kind::Google)
            },
            "force_redirect_domains[0]",
        ),
    ];
    for (bad, field) in cases {
        let err = normalize_auth_settings(Some(&with_providers(vec![bad.clone()])))
            .expect_err(&format!("{bad:?} must be refused"));
        assert_eq!(err.field(), format!("auth.providers[0].{field}"), "{err}");
    }
}

#[test]
fn provider_ids_and_forced_domains_are_unique_and_forced_domains_must_be_allowed() {
    use pb::SignInProviderKind as Kind;
    let twice = with_providers(vec![provider(Kind::Oidc), provider(Kind::Google)]);
    let err = normalize_auth_settings(Some(&twice)).expect_err("same id");
    assert_eq!(err.field(), "auth.providers[1].id");

    let forced = |id: &str, kind| pb::SignInProvider {
        id: id.into(),
        force_redirect_domains: vec!["corp.example".into()],
        ..provider(kind)
    };
    let claimed_twice = with_providers(vec![forced("a", Kind::Oidc), forced("b", Kind::Google)]);
    let err = normalize_auth_settings(Some(&claimed_twice)).expect_err("one domain, two providers");
    assert_eq!(err.field(), "auth.providers[1].force_redirect_domains[0]");

    let outside_global = pb::HostAuthSettings {
        allowed_domains: Some(pb::DomainRule {
            domains: vec!["other.example".into()],
            include_subdomains: false,
        }),
        ..with_providers(vec![forced("a", Kind::Oidc)])
    };
    let err = normalize_auth_settings(Some(&outside_global)).expect_err("not allowed globally");
    assert_eq!(err.field(), "auth.providers[0].force_redirect_domains[0]");
}
