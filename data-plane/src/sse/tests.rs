//! The parser against the spec's line rules, split chunks and the size cap.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

use super::*;

fn all(parser: &mut Parser, chunks: &[&[u8]]) -> Vec<Event> {
    chunks
        .iter()
        .flat_map(|chunk| parser.feed(chunk).unwrap())
        .collect()
}

#[test]
fn events_survive_any_chunking_and_any_line_ending() {
    let stream = b"id: 1\nretry: 3000\ndata:\n\nevent: message\ndata: {\"a\":1}\r\n\r\n: keep-alive\n\ndata: line1\rdata: line2\r\n\n";
    let expected = vec![
        Event {
            id: Some("1".into()),
            retry: Some("3000".into()),
            data: Some(String::new()),
            ..Event::default()
        },
        Event {
            event: Some("message".into()),
            data: Some("{\"a\":1}".into()),
            ..Event::default()
        },
        Event {
            comment: true,
            ..Event::default()
        },
        Event::data("line1\nline2"),
    ];
    let mut whole = Parser::new(1 << 20);
    assert_eq!(all(&mut whole, &[stream]), expected);
    for split in 1..stream.len() {
        let mut parser = Parser::new(1 << 20);
        let (a, b) = stream.split_at(split);
        assert_eq!(all(&mut parser, &[a, b]), expected, "split at {split}");
    }
    let mut bytewise = Parser::new(1 << 20);
    let chunks: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(all(&mut bytewise, &chunks), expected);
}

#[test]
fn an_event_over_the_cap_fails_even_without_a_newline() {
    let mut parser = Parser::new(16);
    assert!(parser.feed(b"data: 0123456789abcdef").is_err());
    let mut parser = Parser::new(16);
    assert!(parser.feed(b"data: 01234\ndata: 56789\ndata: x\n").is_err());
    let mut parser = Parser::new(16);
    assert_eq!(
        parser.feed(b"data: 0123\n\ndata: 4567\n\n").unwrap().len(),
        2
    );
}

#[test]
fn encoding_round_trips() {
    let event = Event {
        id: Some("e1".into()),
        event: Some("message".into()),
        data: Some("{\"x\":\"a\\nb\"}\nsecond".into()),
        retry: Some("10".into()),
        comment: false,
    };
    let mut parser = Parser::new(1 << 20);
    assert_eq!(parser.feed(&event.encode()).unwrap(), vec![event]);
    assert_eq!(
        &Event {
            comment: true,
            ..Event::default()
        }
        .encode()[..],
        b":\n\n"
    );
}
