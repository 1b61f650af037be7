//! Tests of host id rules.

use rand::SeedableRng;

use super::*;

#[test]
fn generated_ids_are_prefix_two_words_and_four_digits() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let id = generate("acme", &mut rng).expect("valid prefix");
    let parts: Vec<&str> = id.split('-').collect();
    assert_eq!(parts.len(), 4, "{id}");
    assert_eq!(parts[0], "acme");
    assert!(ADJECTIVES.contains(&parts[1]));
    assert!(NOUNS.contains(&parts[2]));
    assert!(parts[3].len() == 4 && parts[3].bytes().all(|b| b.is_ascii_digit()));
}

#[test]
fn the_longest_id_is_a_dns_label_and_a_subject_token() {
    let longest = ADJECTIVES.iter().map(|w| w.len()).max().unwrap_or(0)
        + NOUNS.iter().map(|w| w.len()).max().unwrap_or(0)
        + MAX_PREFIX_LEN
        + 4
        + 3;
    assert!(longest <= 63, "{longest}");
}

#[test]
fn prefixes_must_be_dns_friendly() {
    for good in ["a", "acme", "acme-corp", "a1", &"a".repeat(32)] {
        assert_eq!(validate_prefix(good), Ok(()), "{good}");
    }
    for (bad, why) in [
        ("", InvalidPrefix::Length),
        (&"a".repeat(33) as &str, InvalidPrefix::Length),
        ("Acme", InvalidPrefix::Characters),
        ("1acme", InvalidPrefix::Characters),
        ("acme-", InvalidPrefix::Characters),
        ("ac--me", InvalidPrefix::Characters),
        ("ac.me", InvalidPrefix::Characters),
        ("ac_me", InvalidPrefix::Characters),
        ("acmé", InvalidPrefix::Characters),
    ] {
        assert_eq!(validate_prefix(bad), Err(why), "{bad}");
    }
}
