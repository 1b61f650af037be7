//! Given events, when a command, then events or a refusal.

use portcullis_proto::TrustLevel::{High, Low, Medium};
use portcullis_proto::events::v1::AutoClassification;

use super::*;

fn auto(keyword: &str) -> Classification {
    Classification {
        kind: Some(classification::Kind::Auto(AutoClassification {
            matched_keyword: keyword.into(),
            reason: format!("name contains {keyword:?}"),
        })),
    }
}

fn tool(name: &str, level: TrustLevel) -> pb::Tool {
    pb::Tool {
        name: name.into(),
        description: format!("{name} does things"),
        input_schema_sha256: vec![1; 32],
        trust_level: level.into(),
        enabled: true,
        classification: Some(auto("")),
    }
}

fn import(tools: Vec<pb::Tool>) -> ServerCommand {
    ServerCommand::Import {
        server_id: "S1".into(),
        key: "github".into(),
        url: "https://mcp.example.com/mcp".into(),
        name: " GitHub ".into(),
        description: "Issues".into(),
        upstream_auth: None,
        timeout_seconds: None,
        tools,
    }
}

fn imported(tools: Vec<pb::Tool>) -> EventBody {
    EventBody::ServerImported(ServerImported {
        server_id: "S1".into(),
        key: "github".into(),
        url: "https://mcp.example.com/mcp".into(),
        name: "GitHub".into(),
        description: "Issues".into(),
        upstream_auth: Some(pb::UpstreamAuth {
            mode: Some(pb::upstream_auth::Mode::None(pb::NoUpstreamAuth {})),
        }),
        tools,
        timeout_seconds: None,
    })
}

fn live() -> EventBody {
    imported(vec![tool("list_issues", Low), tool("delete_repo", High)])
}

fn deleted() -> EventBody {
    EventBody::ServerDeleted(ServerDeleted {})
}

fn change_tool(name: &str, level: Option<TrustLevel>, enabled: Option<bool>) -> ServerCommand {
    ServerCommand::ChangeTool {
        name: name.into(),
        trust_level: level,
        enabled,
    }
}

fn tool_changed(name: &str, level: Option<TrustLevel>, enabled: Option<bool>) -> EventBody {
    EventBody::ToolChanged(ToolChanged {
        name: name.into(),
        trust_level: level.map(i32::from),
        enabled,
        classification: level.map(|_| admin_override()),
    })
}

fn state(history: &[EventBody]) -> Server {
    history.iter().fold(Server::default(), Server::evolve)
}

#[track_caller]
fn check(
    history: &[EventBody],
    command: ServerCommand,
    expected: Result<Decision<EventBody>, ServerRejected>,
) {
    assert_eq!(state(history).decide(&command), expected);
}

#[test]
fn a_server_is_imported_with_its_tools_and_no_upstream_auth_by_default() {
    check(
        &[],
        import(vec![tool("list_issues", Low), tool("delete_repo", High)]),
        Ok(Decision::Append(live())),
    );
}

#[test]
fn an_import_with_a_bad_key_url_name_or_tool_is_refused() {
    let with = |change: fn(&mut ServerCommand)| {
        let mut command = import(vec![tool("a", Low)]);
        change(&mut command);
        state(&[]).decide(&command)
    };
    assert_eq!(
        with(|c| if let ServerCommand::Import { key, .. } = c {
            *key = "Bad Key".into();
        }),
        Err(ServerRejected::InvalidKey(InvalidServerKey::Characters))
    );
    assert_eq!(
        with(|c| if let ServerCommand::Import { url, .. } = c {
            *url = "file:///etc/passwd".into();
        }),
        Err(ServerRejected::InvalidUrl(InvalidUrl::Scheme))
    );
    assert_eq!(
        with(|c| if let ServerCommand::Import { name, .. } = c {
            *name = "".into();
        }),
        Err(ServerRejected::InvalidName(InvalidText::Empty))
    );
    assert_eq!(
        with(|c| if let ServerCommand::Import { tools, .. } = c {
            tools.push(tool("has space", Low));
        }),
        Err(ServerRejected::InvalidTool {
            index: 1,
            problem: ToolProblem::Name(InvalidToolName::Characters)
        })
    );
    assert_eq!(
        with(|c| if let ServerCommand::Import { tools, .. } = c {
            tools.push(tool("a", High));
        }),
        Err(ServerRejected::DuplicateTool("a".into()))
    );
    assert_eq!(
        with(|c| if let ServerCommand::Import { tools, .. } = c {
            tools[0].trust_level = 0;
        }),
        Err(ServerRejected::InvalidTool {
            index: 0,
            problem: ToolProblem::TrustLevel
        })
    );
}

#[test]
fn a_server_id_is_imported_once_and_a_deleted_server_is_gone_for_good() {
    check(
        &[live()],
        import(vec![]),
        Err(ServerRejected::AlreadyExists),
    );
    check(
        &[live()],
        ServerCommand::Delete,
        Ok(Decision::Append(deleted())),
    );
    check(
        &[live(), deleted()],
        import(vec![]),
        Err(ServerRejected::AlreadyExists),
    );
    for command in [
        ServerCommand::Delete,
        change_tool("list_issues", Some(High), None),
        ServerCommand::ChangeDetails {
            name: Some("x".into()),
            description: None,
            timeout: None,
        },
    ] {
        check(&[live(), deleted()], command, Err(ServerRejected::NotFound));
    }
    check(&[], ServerCommand::Delete, Err(ServerRejected::NotFound));
}

#[test]
fn details_change_only_what_differs() {
    check(
        &[live()],
        ServerCommand::ChangeDetails {
            name: Some("GitHub".into()),
            description: Some("Pull requests".into()),
            timeout: None,
        },
        Ok(Decision::Append(EventBody::ServerDetailsChanged(
            ServerDetailsChanged {
                name: None,
                description: Some("Pull requests".into()),
                timeout: None,
            },
        ))),
    );
    check(
        &[live()],
        ServerCommand::ChangeDetails {
            name: Some(" GitHub".into()),
            description: None,
            timeout: None,
        },
        Ok(Decision::Unchanged),
    );
    check(
        &[live()],
        ServerCommand::ChangeDetails {
            name: Some("n".repeat(101)),
            description: None,
            timeout: None,
        },
        Err(ServerRejected::InvalidName(InvalidText::TooLong {
            max: 100,
        })),
    );
}

fn change_timeout(timeout: TimeoutChange) -> ServerCommand {
    ServerCommand::ChangeDetails {
        name: None,
        description: None,
        timeout: Some(timeout),
    }
}

fn timeout_changed(timeout: server_details_changed::Timeout) -> EventBody {
    EventBody::ServerDetailsChanged(ServerDetailsChanged {
        name: None,
        description: None,
        timeout: Some(timeout),
    })
}

fn timeout_set(seconds: u64) -> EventBody {
    timeout_changed(server_details_changed::Timeout::TimeoutSeconds(seconds))
}

fn timeout_cleared() -> EventBody {
    timeout_changed(server_details_changed::Timeout::ClearTimeout(
        ClearTimeout {},
    ))
}

fn renamed() -> EventBody {
    EventBody::ServerDetailsChanged(ServerDetailsChanged {
        name: Some("Renamed".into()),
        description: None,
        timeout: None,
    })
}

#[test]
fn a_server_is_imported_with_an_upstream_timeout_of_1_to_3600_seconds() {
    let with_timeout = |timeout: Option<u64>| {
        let mut command = import(vec![]);
        if let ServerCommand::Import {
            timeout_seconds, ..
        } = &mut command
        {
            *timeout_seconds = timeout;
        }
        command
    };
    let imported_with = |timeout: Option<u64>| {
        let mut body = imported(vec![]);
        if let EventBody::ServerImported(e) = &mut body {
            e.timeout_seconds = timeout;
        }
        body
    };
    for seconds in [1, 600, 3600] {
        check(
            &[],
            with_timeout(Some(seconds)),
            Ok(Decision::Append(imported_with(Some(seconds)))),
        );
    }
    for seconds in [0, 3601] {
        check(
            &[],
            with_timeout(Some(seconds)),
            Err(ServerRejected::InvalidTimeout(InvalidTimeout::OutOfRange)),
        );
    }
    let Server::Live(server) = state(&[imported_with(Some(600))]) else {
        panic!("live")
    };
    assert_eq!(server.timeout_seconds, Some(600));
    let Server::Live(server) = state(&[imported_with(None)]) else {
        panic!("live")
    };
    assert_eq!(server.timeout_seconds, None, "unset: the global default");
}

#[test]
fn the_upstream_timeout_is_set_changed_and_cleared_only_when_it_differs() {
    check(
        &[live()],
        change_timeout(TimeoutChange::Set(120)),
        Ok(Decision::Append(timeout_set(120))),
    );
    check(
        &[live(), timeout_set(120)],
        change_timeout(TimeoutChange::Set(120)),
        Ok(Decision::Unchanged),
    );
    check(
        &[live(), timeout_set(120)],
        change_timeout(TimeoutChange::Set(5)),
        Ok(Decision::Append(timeout_set(5))),
    );
    check(
        &[live(), timeout_set(120)],
        change_timeout(TimeoutChange::Clear),
        Ok(Decision::Append(timeout_cleared())),
    );
    check(
        &[live()],
        change_timeout(TimeoutChange::Clear),
        Ok(Decision::Unchanged),
    );
    check(
        &[live(), timeout_set(120), timeout_cleared()],
        change_timeout(TimeoutChange::Clear),
        Ok(Decision::Unchanged),
    );
    for seconds in [0, 3601, u64::MAX] {
        check(
            &[live()],
            change_timeout(TimeoutChange::Set(seconds)),
            Err(ServerRejected::InvalidTimeout(InvalidTimeout::OutOfRange)),
        );
    }
    // A name change alongside keeps the timeout as it is.
    check(
        &[live(), timeout_set(120)],
        ServerCommand::ChangeDetails {
            name: Some("GitHub Enterprise".into()),
            description: None,
            timeout: None,
        },
        Ok(Decision::Append(EventBody::ServerDetailsChanged(
            ServerDetailsChanged {
                name: Some("GitHub Enterprise".into()),
                description: None,
                timeout: None,
            },
        ))),
    );
    let timeouts = |history: &[EventBody]| match state(history) {
        Server::Live(server) => server.timeout_seconds,
        other => panic!("live: {other:?}"),
    };
    assert_eq!(timeouts(&[live(), timeout_set(120)]), Some(120));
    assert_eq!(timeouts(&[live(), timeout_set(120), renamed()]), Some(120));
    assert_eq!(
        timeouts(&[live(), timeout_set(120), timeout_cleared()]),
        None
    );
}

#[test]
fn an_admin_adds_a_new_tool_but_not_one_that_exists() {
    check(
        &[live()],
        ServerCommand::AddTool {
            tool: tool("create_issue", Medium),
        },
        Ok(Decision::Append(EventBody::ToolAdded(ToolAdded {
            tool: Some(tool("create_issue", Medium)),
        }))),
    );
    check(
        &[live()],
        ServerCommand::AddTool {
            tool: tool("list_issues", Medium),
        },
        Err(ServerRejected::ToolExists("list_issues".into())),
    );
}

#[test]
fn an_admin_override_pins_the_level_and_toggles_enabled() {
    check(
        &[live()],
        change_tool("delete_repo", Some(Medium), Some(false)),
        Ok(Decision::Append(tool_changed(
            "delete_repo",
            Some(Medium),
            Some(false),
        ))),
    );
    // The same level as the auto one still pins it as the admin's decision.
    check(
        &[live()],
        change_tool("list_issues", Some(Low), None),
        Ok(Decision::Append(tool_changed(
            "list_issues",
            Some(Low),
            None,
        ))),
    );
    let pinned = tool_changed("list_issues", Some(Low), None);
    check(
        &[live(), pinned],
        change_tool("list_issues", Some(Low), Some(true)),
        Ok(Decision::Unchanged),
    );
    check(
        &[live()],
        change_tool("nope", Some(Low), None),
        Err(ServerRejected::UnknownTool("nope".into())),
    );
}

#[test]
fn removing_a_tool_needs_the_tool() {
    check(
        &[live()],
        ServerCommand::RemoveTool {
            name: "delete_repo".into(),
        },
        Ok(Decision::Append(EventBody::ToolRemoved(ToolRemoved {
            name: "delete_repo".into(),
        }))),
    );
    check(
        &[live()],
        ServerCommand::RemoveTool {
            name: "nope".into(),
        },
        Err(ServerRejected::UnknownTool("nope".into())),
    );
}

#[test]
fn a_refresh_keeps_admin_overrides_and_the_enabled_flag() {
    let overridden = tool_changed("delete_repo", Some(Low), Some(false));
    // Upstream changed the description and the classifier would now say medium.
    let mut discovered = tool("delete_repo", Medium);
    discovered.description = "Deletes a repository".into();
    discovered.classification = Some(auto("delete"));
    let server = state(&[live(), overridden.clone()]);
    let Server::Live(server) = &server else {
        panic!("live")
    };
    let existing = &server.tools["delete_repo"];
    let merged = merge_discovered(existing, &discovered);
    assert_eq!(merged.trust_level, i32::from(Low));
    assert!(is_admin_override(&merged));
    assert!(!merged.enabled);
    assert_eq!(merged.description, "Deletes a repository");
    check(
        &[live(), overridden],
        ServerCommand::RefreshTool { discovered },
        Ok(Decision::Append(EventBody::ToolAdded(ToolAdded {
            tool: Some(merged),
        }))),
    );
}

#[test]
fn a_refresh_takes_the_new_auto_level_of_a_tool_nobody_overrode() {
    let mut discovered = tool("list_issues", Medium);
    discovered.classification = Some(auto("update"));
    check(
        &[live()],
        ServerCommand::RefreshTool {
            discovered: discovered.clone(),
        },
        Ok(Decision::Append(EventBody::ToolAdded(ToolAdded {
            tool: Some(discovered),
        }))),
    );
}

#[test]
fn a_refresh_that_sees_the_same_tool_changes_nothing() {
    check(
        &[live()],
        ServerCommand::RefreshTool {
            discovered: tool("list_issues", Low),
        },
        Ok(Decision::Unchanged),
    );
    check(
        &[live()],
        ServerCommand::DropTool {
            name: "gone".into(),
        },
        Ok(Decision::Unchanged),
    );
}

#[test]
fn a_refresh_plan_reports_added_changed_and_removed_tools() {
    let Server::Live(server) = state(&[live()]) else {
        panic!("live")
    };
    let mut changed = tool("list_issues", Low);
    changed.input_schema_sha256 = vec![2; 32];
    let plan = server.plan_refresh(&[changed, tool("create_issue", Medium)]);
    assert_eq!(
        plan,
        RefreshPlan {
            added: vec!["create_issue".into()],
            changed: vec!["list_issues".into()],
            removed: vec!["delete_repo".into()],
        }
    );
}

#[test]
fn import_overrides_must_name_discovered_tools() {
    let discovered = vec![tool("list_issues", Low), tool("delete_repo", High)];
    let applied = apply_overrides(
        discovered.clone(),
        &[ToolOverride {
            name: "delete_repo".into(),
            trust_level: Some(Medium),
            enabled: Some(false),
        }],
    )
    .expect("known tool");
    assert_eq!(applied[1].trust_level, i32::from(Medium));
    assert!(is_admin_override(&applied[1]) && !applied[1].enabled);
    assert_eq!(applied[0], discovered[0]);
    assert_eq!(
        apply_overrides(
            discovered.clone(),
            &[ToolOverride {
                name: "nope".into(),
                trust_level: None,
                enabled: Some(false),
            }],
        ),
        Err(OverrideRejected::UnknownTool {
            index: 0,
            name: "nope".into()
        })
    );
    let twice = ToolOverride {
        name: "list_issues".into(),
        trust_level: None,
        enabled: None,
    };
    assert_eq!(
        apply_overrides(discovered, &[twice.clone(), twice]),
        Err(OverrideRejected::Duplicate {
            index: 1,
            name: "list_issues".into()
        })
    );
}
