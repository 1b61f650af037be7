//! Tests of sealing, opening, rotation and the key text format.

use super::*;

fn ring(text: &str) -> KeyRing {
    KeyRing::parse(text).expect("valid key text")
}

fn key_text(id: &str, byte: u8) -> String {
    format!("{id}:{}", STANDARD.encode([byte; 32]))
}

#[test]
fn a_sealed_value_opens_only_with_its_associated_data() {
    let keys = ring(&key_text("k1", 7));
    let sealed = keys
        .seal(b"client-secret", b"server/S1/client_secret")
        .expect("seals");
    assert_eq!(sealed.key_id, "k1");
    assert!(
        !sealed.bytes.windows(13).any(|w| w == b"client-secret"),
        "no plaintext at rest"
    );
    let opened = keys
        .open(&sealed, b"server/S1/client_secret")
        .expect("opens");
    assert_eq!(opened.as_slice(), b"client-secret");
    assert_eq!(
        keys.open(&sealed, b"server/S2/client_secret"),
        Err(OpenError::Rejected)
    );
}

#[test]
fn tampered_or_truncated_values_do_not_open() {
    let keys = ring(&key_text("k1", 7));
    let mut sealed = keys.seal(b"secret", b"ad").expect("seals");
    let last = sealed.bytes.len() - 1;
    sealed.bytes[last] ^= 1;
    assert_eq!(keys.open(&sealed, b"ad"), Err(OpenError::Rejected));
    sealed.bytes.truncate(10);
    assert_eq!(keys.open(&sealed, b"ad"), Err(OpenError::Rejected));
}

#[test]
fn rotation_seals_with_the_new_key_and_still_opens_the_old() {
    let old = ring(&key_text("k1", 1));
    let sealed_before = old.seal(b"old", b"ad").expect("seals");
    let rotated = ring(&format!("{},{}", key_text("k2", 2), key_text("k1", 1)));
    assert_eq!(rotated.active_key_id(), "k2");
    assert_eq!(
        rotated
            .open(&sealed_before, b"ad")
            .expect("opens")
            .as_slice(),
        b"old"
    );
    let sealed_after = rotated.seal(b"new", b"ad").expect("seals");
    assert_eq!(sealed_after.key_id, "k2");
    let retired = ring(&key_text("k2", 2));
    assert_eq!(
        retired.open(&sealed_before, b"ad"),
        Err(OpenError::UnknownKey("k1".into()))
    );
}

#[test]
fn nonces_differ_between_seals() {
    let keys = ring(&key_text("k1", 3));
    assert_ne!(
        keys.seal(b"same", b"ad").expect("seals").bytes,
        keys.seal(b"same", b"ad").expect("seals").bytes
    );
}

#[test]
fn bad_key_texts_are_refused_with_their_position() {
    assert_eq!(KeyRing::parse("").err(), Some(KeyRingError::Empty));
    assert_eq!(
        KeyRing::parse("k1:notbase64!").err(),
        Some(KeyRingError::BadKey { position: 1 })
    );
    let short = format!("k1:{}", STANDARD.encode([0u8; 16]));
    assert_eq!(
        KeyRing::parse(&short).err(),
        Some(KeyRingError::BadKey { position: 1 })
    );
    let bad_id = format!(
        "{},bad id:{}",
        key_text("k1", 1),
        STANDARD.encode([0u8; 32])
    );
    assert_eq!(
        KeyRing::parse(&bad_id).err(),
        Some(KeyRingError::BadKeyId { position: 2 })
    );
    let twice = format!("{},{}", key_text("k1", 1), key_text("k1", 2));
    assert_eq!(
        KeyRing::parse(&twice).err(),
        Some(KeyRingError::DuplicateKeyId("k1".into()))
    );
}

#[test]
fn generated_keys_parse_and_a_bare_key_gets_a_derived_id() {
    let text = generate_key_text();
    let keys = ring(&text);
    assert!(keys.active_key_id().starts_with('k'));
    let bare = STANDARD.encode([9u8; 32]);
    assert_eq!(ring(&bare).active_key_id().len(), 9);
}

#[test]
fn debug_output_names_key_ids_only() {
    let keys = ring(&key_text("k1", 5));
    let shown = format!("{keys:?}");
    assert!(shown.contains("k1"));
    assert!(!shown.contains(&STANDARD.encode([5u8; 32])));
}

#[test]
fn a_keyed_hash_matches_only_its_data_purpose_and_ring() {
    let keys = ring(&format!("{},{}", key_text("k2", 2), key_text("k1", 1)));
    let stored = keys.mac(b"human-sign-in-code:h:u", b"123456").expect("mac");
    assert!(!stored.windows(6).any(|w| w == b"123456"), "no plaintext");
    assert!(keys.mac_matches(&stored, b"human-sign-in-code:h:u", b"123456"));
    assert!(!keys.mac_matches(&stored, b"human-sign-in-code:h:u", b"123457"));
    assert!(!keys.mac_matches(&stored, b"human-sign-in-code:h:v", b"123456"));
    assert!(!keys.mac_matches(
        &stored[..stored.len() - 1],
        b"human-sign-in-code:h:u",
        b"123456"
    ));
    assert!(!keys.mac_matches(&[], b"p", b"d"));
    // Still checked after a rotation keeps the old key; not by a ring without it.
    let rotated = ring(&format!("{},{}", key_text("k3", 3), key_text("k2", 2)));
    assert!(rotated.mac_matches(&stored, b"human-sign-in-code:h:u", b"123456"));
    let other = ring(&key_text("k2", 9));
    assert!(!other.mac_matches(&stored, b"human-sign-in-code:h:u", b"123456"));
    // The purpose and the data cannot trade bytes.
    let a = keys.mac(b"ab", b"c").expect("mac");
    assert!(!keys.mac_matches(&a, b"a", b"bc"));
}
