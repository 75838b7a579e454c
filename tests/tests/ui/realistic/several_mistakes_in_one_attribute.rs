// Three mistakes in one attribute are three errors in one build: a quoted version, a
// quoted version in `upcast_json`, an unknown key; nothing follows from them.
use factum::prelude::*;

#[event(name = "Opened", version = "2", upcast_json(from = "1", with = upcast), colour = "red")]
pub struct Opened {}

fn upcast(payload: serde_json::Value) -> Result<serde_json::Value, std::convert::Infallible> {
    Ok(payload)
}

#[derive(Events)]
pub enum AccountEvent {
    Opened(Opened),
}

fn main() {}
