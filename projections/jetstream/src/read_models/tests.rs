//! Tests of reading KV records' operation markers.

use super::*;

#[track_caller]
fn check(marker: Option<&str>, expected: Result<Operation, ()>) {
    let headers = marker.map(|value| {
        let mut headers = HeaderMap::new();
        headers.insert(KV_OPERATION_HEADER, value);
        headers
    });
    assert_eq!(
        operation(headers.as_ref()).map_err(|_| ()),
        expected,
        "{marker:?}"
    );
}

#[test]
fn deletes_and_purges_remove_a_key_and_unknown_markers_are_errors() {
    check(None, Ok(Operation::Put));
    check(Some("DEL"), Ok(Operation::Removed));
    check(Some("PURGE"), Ok(Operation::Removed));
    check(Some("ROLLUP"), Err(()));
    check(Some(""), Err(()));
}
