//! The path of the value a failed decode of a stored payload is about, written as
//! `serde_path_to_error` writes it (`lines[0].quantity`, `.` for the root).
//!
//! An event's payload is decoded once, with the plain decoder. When that fails, the path is
//! found from the error's position in the text, without decoding the type a second time:
//! a path-tracking decode would need a second instantiation of the type's `Deserialize`
//! impl in every domain crate, one per event, which was a large part of the code factum's
//! macros cost to compile (issue 16, BENCHMARKS.md). A stored payload is always JSON (a
//! `RawValue`), so the errors are about its data; errors of JSON syntax, whose path
//! depends on how the type reads the text, are commands' (`decode_command` tracks them).

use serde_json::error::Category;

/// The path of the value `error`, from decoding the JSON text `json`, is about.
pub(crate) fn error_path(json: &str, error: &serde_json::Error) -> String {
    let message = error.to_string();
    let subject =
        if message.starts_with("duplicate field") || message.starts_with("unknown variant") {
            Subject::Object
        } else if message.starts_with("invalid type: unit variant") {
            Subject::Variant
        } else if error.classify() == Category::Syntax && message.starts_with("trailing") {
            Subject::Container
        } else {
            Subject::Value
        };
    let mut offset = offset(json, error.line(), error.column());
    if matches!(error.classify(), Category::Syntax | Category::Eof) {
        // On JSON text, a type's own syntax errors (an enum that is not a string or an
        // object, a sequence longer than the type reads) are raised at a byte peeked at
        // and not read: serde_json's position is one past it.
        offset = offset.saturating_sub(1);
    }
    path_at(json, offset, subject)
}

/// What serde reports an error at, told by its message.
#[derive(Clone, Copy, PartialEq)]
enum Subject {
    /// The value being read; at an object's key, the key's field (`unknown field`).
    Value,
    /// At an object's key, the object (a duplicate field, an unknown enum variant).
    Object,
    /// The unit variant just read as a string, where the variant holds data.
    Variant,
    /// The innermost container: it holds more than its type reads.
    Container,
}

/// The byte offset of serde_json's (1-based line, byte column) position; 0 for none.
fn offset(json: &str, line: usize, column: usize) -> usize {
    if line == 0 {
        return 0;
    }
    // Line 1 starts at 0, line n after the (n - 1)th newline.
    let start_of_line = match line - 1 {
        0 => 0,
        newlines => json
            .match_indices('\n')
            .nth(newlines - 1)
            .map_or(json.len(), |(newline, _)| newline + 1),
    };
    (start_of_line + column).min(json.len())
}

/// Where a scan of a container stands.
#[derive(Clone, Copy, PartialEq)]
enum Place {
    /// After `{`, `[` or `,`: a key (object) or an element (array) comes next.
    Start,
    /// After an object's key, before its `:`.
    Key,
    /// After an object's `:`: its value comes next or is being read.
    Value,
    /// After a value, before `,` or the end.
    After,
}

enum Frame {
    Object(Option<String>, Place),
    Array(usize, Place),
}

/// The path of what an error at byte `end` of `json` is about.
fn path_at(json: &str, end: usize, subject: Subject) -> String {
    let bytes = json.as_bytes();
    let mut stack: Vec<Frame> = Vec::new();
    let mut root_read = false;
    // The last string read as a value, and where it ended.
    let mut last_string: Option<(usize, usize)> = None;
    let mut at = 0;
    loop {
        while at < end && bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        if at >= end {
            break;
        }
        let byte = bytes[at];
        let value_next = match stack.last() {
            None => !root_read,
            Some(Frame::Object(_, place)) => *place == Place::Value,
            Some(Frame::Array(_, place)) => *place == Place::Start && byte != b']',
        };
        if value_next {
            match byte {
                b'{' => stack.push(Frame::Object(None, Place::Start)),
                b'[' => stack.push(Frame::Array(0, Place::Start)),
                b'"' => match string_end(bytes, at) {
                    Some(close) if close < end => {
                        last_string = Some((at, close));
                        at = close;
                        complete(&mut stack, &mut root_read);
                    }
                    _ => break,
                },
                _ => {
                    let scalar_end = bytes[at..]
                        .iter()
                        .position(|b| matches!(b, b',' | b']' | b'}') || b.is_ascii_whitespace())
                        .map_or(bytes.len(), |length| at + length);
                    // Inside the scalar, or at a byte that starts no value (not JSON).
                    if scalar_end > end || scalar_end == at {
                        break;
                    }
                    at = scalar_end - 1;
                    complete(&mut stack, &mut root_read);
                }
            }
            at += 1;
            continue;
        }
        match stack.last_mut() {
            Some(Frame::Object(key, place @ Place::Start)) if byte == b'"' => {
                match string_end(bytes, at) {
                    Some(close) if close < end => {
                        *key = serde_json::from_str(&json[at..=close]).ok();
                        *place = Place::Key;
                        at = close;
                    }
                    _ => break,
                }
            }
            Some(Frame::Object(_, place @ Place::Key)) if byte == b':' => *place = Place::Value,
            Some(Frame::Object(key, place @ Place::After)) if byte == b',' => {
                *key = None;
                *place = Place::Start;
            }
            Some(Frame::Array(index, place @ Place::After)) if byte == b',' => {
                *index += 1;
                *place = Place::Start;
            }
            Some(Frame::Object(_, Place::Start | Place::After)) if byte == b'}' => {
                stack.pop();
                complete(&mut stack, &mut root_read);
            }
            Some(Frame::Array(_, Place::Start | Place::After)) if byte == b']' => {
                stack.pop();
                complete(&mut stack, &mut root_read);
            }
            _ => break,
        }
        at += 1;
    }
    let mut path = String::new();
    let depth = stack.len();
    for (level, frame) in stack.iter().enumerate() {
        let innermost = level + 1 == depth;
        if innermost && subject == Subject::Container {
            break;
        }
        match frame {
            Frame::Object(key, place) => {
                let names_key = match place {
                    Place::Value | Place::After => true,
                    Place::Key => !innermost || subject != Subject::Object,
                    Place::Start => !innermost,
                };
                if names_key {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key.as_deref().unwrap_or("?"));
                }
            }
            Frame::Array(index, _) => path.push_str(&format!("[{index}]")),
        }
    }
    if subject == Subject::Variant {
        let variant = last_string
            .filter(|(_, close)| bytes[close + 1..end].iter().all(u8::is_ascii_whitespace))
            .and_then(|(open, close)| serde_json::from_str::<String>(&json[open..=close]).ok());
        if let Some(variant) = variant {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(&variant);
        }
    }
    if path.is_empty() {
        path.push('.');
    }
    path
}

/// A value, or the end of a container, was read: its container stands after it.
fn complete(stack: &mut [Frame], root_read: &mut bool) {
    match stack.last_mut() {
        Some(Frame::Object(_, place) | Frame::Array(_, place)) => *place = Place::After,
        None => *root_read = true,
    }
}

/// The index of the quote that closes the string opened at `open`.
fn string_end(bytes: &[u8], open: usize) -> Option<usize> {
    let mut at = open + 1;
    while at < bytes.len() {
        match bytes[at] {
            b'\\' => at += 2,
            b'"' => return Some(at),
            _ => at += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    //! The paths are serde_path_to_error's: both are asked about every failing input of a
    //! corpus of valid payloads spoiled in every way a byte at a time that leaves JSON.

    use std::collections::BTreeMap;

    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code, reason = "only decoded")]
    struct Order {
        customer_id: String,
        lines: Vec<Line>,
        currency: Currency,
        note: Option<String>,
        tags: Vec<String>,
        at: chrono::DateTime<chrono::Utc>,
        id: uuid::Uuid,
        nested: Option<Box<Order>>,
        pair: (u32, String),
        totals: BTreeMap<String, u64>,
        kind: Kind,
        tagged: Tagged,
        #[serde(flatten)]
        extra: Extra,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code, reason = "only decoded")]
    struct Line {
        sku: String,
        quantity: u32,
    }

    #[derive(Debug, Deserialize)]
    enum Currency {
        Eur,
        Usd,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code, reason = "only decoded")]
    enum Kind {
        Count(u32),
        Named { name: String },
        Plain,
    }

    #[derive(Debug, Deserialize)]
    #[serde(tag = "type")]
    #[allow(dead_code, reason = "only decoded")]
    enum Tagged {
        One { n: u32 },
        Two,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code, reason = "only decoded")]
    struct Extra {
        flag: bool,
    }

    const ORDER: &str = r#"{"customer_id":"c-1","lines":[{"sku":"a","quantity":2},{"sku":"b\"q","quantity":1}],"currency":"Eur","note":null,"tags":["x","y"],"at":"2026-01-02T03:04:05Z","id":"67e55044-10b1-426f-9247-bb680e5fe0c8","nested":{"customer_id":"c-2","lines":[],"currency":"Usd","note":"n","tags":[],"at":"2026-01-02T03:04:05Z","id":"67e55044-10b1-426f-9247-bb680e5fe0c8","nested":null,"pair":[1,"p"],"totals":{},"kind":"Plain","tagged":{"type":"Two"},"flag":false},"pair":[7,"q"],"totals":{"eur":10,"usd":20},"kind":{"Named":{"name":"k"}},"tagged":{"type":"One","n":3},"flag":true}"#;

    /// Each input that fails to decode, with the path serde_path_to_error gives and the
    /// path `error_path` gives, where they differ.
    fn differences(inputs: impl IntoIterator<Item = String>) -> Vec<(String, String, String)> {
        let mut failing = 0;
        let mut differing = Vec::new();
        for json in inputs {
            // Stored payloads are JSON: text that is not is commands', which keep their
            // path-tracking decode.
            if serde_json::from_str::<serde::de::IgnoredAny>(&json).is_err() {
                continue;
            }
            let Err(error) = serde_json::from_str::<Order>(&json) else {
                continue;
            };
            failing += 1;
            let mut deserializer = serde_json::Deserializer::from_str(&json);
            let expected = match serde_path_to_error::deserialize::<_, Order>(&mut deserializer) {
                Err(error) => error.path().to_string(),
                // Trailing characters: the decoders of factum name the root.
                Ok(_) => ".".to_owned(),
            };
            let found = super::error_path(&json, &error);
            if found != expected {
                differing.push((json, expected, found));
            }
        }
        assert!(failing > 0, "the corpus has no failing input");
        for (json, expected, found) in differing.iter().take(10) {
            let error = serde_json::from_str::<Order>(json).unwrap_err();
            let line = json
                .lines()
                .nth(error.line().saturating_sub(1))
                .unwrap_or_default();
            eprintln!("{line}\n  {error}\n  expected {expected}, found {found}\n");
        }
        differing
    }

    /// The payload, compact and pretty-printed (positions on later lines).
    fn payloads() -> Vec<String> {
        let value: serde_json::Value = serde_json::from_str(ORDER).unwrap();
        serde_json::from_str::<Order>(ORDER).expect("the corpus starts from a valid order");
        vec![
            ORDER.to_owned(),
            serde_json::to_string_pretty(&value).unwrap(),
        ]
    }

    #[test]
    fn every_scalar_of_the_wrong_type_or_value() {
        let mut inputs = Vec::new();
        for payload in payloads() {
            // Every string, number and literal replaced in turn.
            let tokens = scalars(&payload);
            for (start, end) in tokens {
                for replacement in [
                    "\"x\"",
                    "1",
                    "-1",
                    "1.5",
                    "true",
                    "null",
                    "[]",
                    "{}",
                    "[1]",
                    "{\"a\":1}",
                ] {
                    inputs.push(splice(&payload, start..end, replacement));
                }
            }
        }
        assert_eq!(differences(inputs), Vec::new());
    }

    #[test]
    fn every_byte_removed_and_every_truncation() {
        let mut inputs = Vec::new();
        for payload in payloads() {
            for at in 0..payload.len() {
                inputs.push(splice(&payload, at..at + 1, ""));
                inputs.push(payload[..at].to_owned());
            }
        }
        assert_eq!(differences(inputs), Vec::new());
    }

    #[test]
    fn every_byte_inserted_everywhere() {
        let mut inputs = Vec::new();
        for payload in payloads() {
            for at in 0..=payload.len() {
                for byte in [",", "}", "]", "\"", "x", "{", "[", ":", "1", " "] {
                    inputs.push(splice(&payload, at..at, byte));
                }
            }
        }
        assert_eq!(differences(inputs), Vec::new());
    }

    #[test]
    fn keys_renamed_and_repeated() {
        let mut inputs = Vec::new();
        for payload in payloads() {
            for (start, end) in scalars(&payload) {
                if payload[end..].trim_start().starts_with(':') {
                    inputs.push(splice(&payload, start..end, "\"zzz\""));
                    let pair_end = payload[end..]
                        .find([',', '}'])
                        .map_or(payload.len(), |i| end + i);
                    let pair = format!(",{}", &payload[start..pair_end]);
                    inputs.push(splice(&payload, pair_end..pair_end, &pair));
                }
            }
        }
        assert_eq!(differences(inputs), Vec::new());
    }

    #[test]
    fn sequences_of_the_wrong_length() {
        let inputs = [r#"[7,"q",1]"#, r#"[7]"#, "[]", r#"[7,"q",[1,2]]"#]
            .map(|pair| ORDER.replace(r#""pair":[7,"q"]"#, &format!(r#""pair":{pair}"#)));
        assert_eq!(differences(inputs), Vec::new());
    }

    /// `text` with `range` replaced by `with`.
    fn splice(text: &str, range: std::ops::Range<usize>, with: &str) -> String {
        let mut spliced = text.to_owned();
        spliced.replace_range(range, with);
        spliced
    }

    /// The byte ranges of the strings, numbers and literals of valid JSON.
    fn scalars(json: &str) -> Vec<(usize, usize)> {
        let bytes = json.as_bytes();
        let mut tokens = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            match bytes[at] {
                b'"' => {
                    let close = super::string_end(bytes, at).unwrap();
                    tokens.push((at, close + 1));
                    at = close + 1;
                }
                b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => {
                    let start = at;
                    while at < bytes.len()
                        && !matches!(bytes[at], b',' | b']' | b'}')
                        && !bytes[at].is_ascii_whitespace()
                    {
                        at += 1;
                    }
                    tokens.push((start, at));
                }
                _ => at += 1,
            }
        }
        tokens
    }
}
