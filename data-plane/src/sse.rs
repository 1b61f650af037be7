//! Server-sent events, read incrementally from an upstream body and written to the client
//! one event at a time (WHATWG HTML "Server-sent events": lines end in CR, LF or CRLF; an
//! empty line ends an event; `data` lines join with LF; comments start with `:`).
//!
//! Hand-written rather than taken from `eventsource-stream`/`sse-stream`: the proxy needs a
//! hard cap on one event's size while parsing (so a hostile upstream cannot make it buffer
//! without bound), comments kept as keep-alives, and the `retry` field passed through; the
//! crates give none of the three.

use bytes::{Bytes, BytesMut};

/// One parsed item of a stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// `id` field, if any.
    pub id: Option<String>,
    /// `event` field, if any.
    pub event: Option<String>,
    /// The joined `data` lines (`None` when the event had no data field).
    pub data: Option<String>,
    /// `retry` field, if any (milliseconds, digits only).
    pub retry: Option<String>,
    /// Set when the item is only a comment (a keep-alive).
    pub comment: bool,
}

impl Event {
    /// A data-only event.
    pub fn data(data: impl Into<String>) -> Self {
        Event {
            data: Some(data.into()),
            ..Event::default()
        }
    }

    /// Encodes the event for the wire.
    pub fn encode(&self) -> Bytes {
        let mut out = String::new();
        if self.comment {
            out.push_str(":\n\n");
            return Bytes::from(out);
        }
        if let Some(event) = &self.event {
            push_field(&mut out, "event", event);
        }
        if let Some(id) = &self.id {
            push_field(&mut out, "id", id);
        }
        if let Some(retry) = &self.retry {
            push_field(&mut out, "retry", retry);
        }
        match &self.data {
            Some(data) => {
                for line in data.split('\n') {
                    push_field(&mut out, "data", line);
                }
            }
            None if out.is_empty() => out.push_str("data:\n"),
            None => {}
        }
        out.push('\n');
        Bytes::from(out)
    }
}

fn push_field(out: &mut String, name: &str, value: &str) {
    // A value never contains CR or LF here: the parser split on them, and callers only set
    // values that came from it or from JSON (which escapes both).
    let clean: String = value.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    out.push_str(name);
    out.push_str(": ");
    out.push_str(&clean);
    out.push('\n');
}

/// A stream exceeded a limit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("an event of the upstream's stream exceeds {limit} bytes")]
pub struct EventTooLarge {
    /// The limit.
    pub limit: usize,
}

/// An incremental parser.
#[derive(Debug)]
pub struct Parser {
    buffer: BytesMut,
    current: Event,
    has_field: bool,
    data_lines: usize,
    event_bytes: usize,
    max_event_bytes: usize,
    /// Whether the previous chunk ended in CR (so a leading LF belongs to it).
    after_cr: bool,
}

impl Parser {
    /// A parser refusing events larger than `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Self {
        Parser {
            buffer: BytesMut::new(),
            current: Event::default(),
            has_field: false,
            data_lines: 0,
            event_bytes: 0,
            max_event_bytes,
            after_cr: false,
        }
    }

    /// Feeds a chunk; returns the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Event>, EventTooLarge> {
        let mut events = Vec::new();
        let mut chunk = chunk;
        if self.after_cr {
            if chunk.first() == Some(&b'\n') {
                chunk = &chunk[1..];
            }
            self.after_cr = false;
        }
        self.buffer.extend_from_slice(chunk);
        while let Some(end) = self.buffer.iter().position(|b| *b == b'\n' || *b == b'\r') {
            let line = self.buffer.split_to(end);
            let terminator = self.buffer.split_to(1);
            if terminator[0] == b'\r' {
                if self.buffer.first() == Some(&b'\n') {
                    let _ = self.buffer.split_to(1);
                } else if self.buffer.is_empty() {
                    self.after_cr = true;
                }
            }
            self.event_bytes += line.len() + 1;
            if self.event_bytes > self.max_event_bytes {
                return Err(EventTooLarge {
                    limit: self.max_event_bytes,
                });
            }
            if let Some(event) = self.line(&line) {
                events.push(event);
            }
        }
        if self.event_bytes + self.buffer.len() > self.max_event_bytes {
            return Err(EventTooLarge {
                limit: self.max_event_bytes,
            });
        }
        Ok(events)
    }

    fn line(&mut self, line: &[u8]) -> Option<Event> {
        if line.is_empty() {
            self.event_bytes = 0;
            if !self.has_field {
                return None;
            }
            self.has_field = false;
            self.data_lines = 0;
            return Some(std::mem::take(&mut self.current));
        }
        let text = String::from_utf8_lossy(line);
        if let Some(_comment) = text.strip_prefix(':') {
            if !self.has_field {
                self.event_bytes = 0;
                return Some(Event {
                    comment: true,
                    ..Event::default()
                });
            }
            return None;
        }
        let (name, value) = match text.split_once(':') {
            Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
            None => (text.as_ref(), ""),
        };
        match name {
            "data" => {
                let data = self.current.data.get_or_insert_with(String::new);
                if self.data_lines > 0 {
                    data.push('\n');
                }
                data.push_str(value);
                self.data_lines += 1;
            }
            "event" => self.current.event = Some(value.to_owned()),
            "id" if !value.contains('\0') => self.current.id = Some(value.to_owned()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.current.retry = Some(value.to_owned());
            }
            _ => return None,
        }
        self.has_field = true;
        None
    }
}

#[cfg(test)]
mod tests;
