//! Sealed codes: round trip, host binding, expiry, tampering; the ledger on SQLite.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

use super::*;

const HOST: &str = "acme-pink-panda-6942";

fn ring() -> KeyRing {
    KeyRing::parse("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap()
}

fn grant() -> CodeGrant {
    CodeGrant {
        host_id: HOST.into(),
        client_id: "c1".into(),
        redirect_uri: "http://127.0.0.1:5000/cb".into(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        resource: "http://127.0.0.1:8080/mcp".into(),
        scope: "mcp".into(),
        session_id: "S1".into(),
        human_id: "H1".into(),
        expires_at_ms: 1_000 + CODE_TTL_MS,
    }
}

#[test]
fn a_sealed_code_opens_for_its_host_until_it_expires() {
    let code = seal(&ring(), &grant()).unwrap();
    assert!(code.starts_with("pc1.k1."));
    assert_eq!(open(&ring(), HOST, &code, 1_000).unwrap(), grant());
    assert!(matches!(
        open(&ring(), HOST, &code, 1_000 + CODE_TTL_MS),
        Err(CodeError::Expired)
    ));
}

#[test]
fn a_code_does_not_open_for_another_host_or_when_tampered() {
    let code = seal(&ring(), &grant()).unwrap();
    assert!(matches!(
        open(&ring(), "other-host", &code, 1_000),
        Err(CodeError::Invalid)
    ));
    let mut tampered = code.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert!(matches!(
        open(&ring(), HOST, &tampered, 1_000),
        Err(CodeError::Invalid)
    ));
    for junk in [
        "",
        "pc1",
        "pc1.k1",
        "pc1.k1.!!!",
        "pc2.k1.AAAA",
        &format!("{code}.x"),
    ] {
        assert!(
            matches!(open(&ring(), HOST, junk, 1_000), Err(CodeError::Invalid)),
            "{junk}"
        );
    }
    let other_ring = KeyRing::parse("k2:AQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
    assert!(matches!(
        open(&other_ring, HOST, &code, 1_000),
        Err(CodeError::Invalid)
    ));
}

#[tokio::test]
async fn the_ledger_redeems_a_code_once_per_host() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(portcullis_store_sqlite::SqliteStore::open(&dir.path().join("o.db")).unwrap());
    let ledger = KvCodeLedger::new(store, Bucket::new(OAUTH_BUCKET).unwrap())
        .await
        .unwrap();
    let hash = code_sha256_hex("pc1.k1.abc");
    assert_eq!(hash.len(), 64);
    assert_eq!(
        ledger.redeem(HOST, &hash, &grant(), 1).await.unwrap(),
        Redemption::First
    );
    assert_eq!(
        ledger.redeem(HOST, &hash, &grant(), 2).await.unwrap(),
        Redemption::Again
    );
    assert_eq!(
        ledger
            .redeem("other-host", &hash, &grant(), 3)
            .await
            .unwrap(),
        Redemption::First
    );
}
