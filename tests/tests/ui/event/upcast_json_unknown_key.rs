// `to` is not a key of `upcast_json`.
use factum::event;

fn upcast(value: serde_json::Value) -> Result<serde_json::Value, std::convert::Infallible> {
    Ok(value)
}

#[event(name = "Opened", version = 2, upcast_json(from = 1, to = 2, with = upcast))]
pub struct Opened {}

fn main() {}
