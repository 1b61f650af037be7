//! Tests of the dev bootstrap against the embedded store.

use std::sync::Arc;

use portcullis_store_sqlite::SqliteStore;

use super::*;

fn context() -> Context {
    Context::system("test.bootstrap", "boot-1")
}

#[tokio::test]
async fn the_first_start_creates_one_organization_and_one_default_host() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(SqliteStore::open(&dir.path().join("p.db")).expect("open"));
    let first = ensure_default_host(store.as_ref(), &context())
        .await
        .expect("bootstrap");
    assert!(first.created);
    assert!(first.host_id.starts_with("default-"), "{}", first.host_id);
    let head = store.head().await.expect("head");
    assert_eq!(head, 3, "organization, assignment, host");

    let again = ensure_default_host(store.as_ref(), &context())
        .await
        .expect("again");
    assert_eq!(again.host_id, first.host_id);
    assert!(!again.created);
    assert_eq!(store.head().await.expect("head"), head, "nothing new");
}

#[tokio::test]
async fn a_start_after_a_crash_between_steps_finishes_the_same_host() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(SqliteStore::open(&dir.path().join("p.db")).expect("open"));
    // The crash: the organization and its assignment were recorded, the host was not.
    let org = subjects::organization(DEFAULT_ORG_ID).expect("valid");
    for (id, command) in [
        (
            "c1",
            OrganizationCommand::Create {
                org_id: DEFAULT_ORG_ID.into(),
                name: "Default organization".into(),
            },
        ),
        (
            "c2",
            OrganizationCommand::AssignDefaultHost {
                host_id: "default-calm-otter-1234".into(),
            },
        ),
    ] {
        execute::<Organization>(
            store.as_ref(),
            &context(),
            &org,
            &CommandId::parse(id).expect("valid"),
            &command,
        )
        .await
        .expect("recorded");
    }
    let after = ensure_default_host(store.as_ref(), &context())
        .await
        .expect("bootstrap");
    assert_eq!(after.host_id, "default-calm-otter-1234");
    assert!(after.created);
    let (host, _) = load_state::<Host>(
        store.as_ref(),
        &subjects::host("default-calm-otter-1234").expect("valid"),
    )
    .await
    .expect("load");
    assert!(matches!(
        host,
        Host::Live {
            is_default: true,
            ..
        }
    ));
}
