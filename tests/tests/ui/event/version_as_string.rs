// `version = "2"`: a version is an integer; the message says to drop the quotes.
use factum::event;

#[event(name = "Opened", version = "2", upcast_json(from = 1, with = upcast))]
pub struct Opened {}

fn upcast(payload: serde_json::Value) -> Result<serde_json::Value, std::convert::Infallible> {
    Ok(payload)
}

fn main() {}
