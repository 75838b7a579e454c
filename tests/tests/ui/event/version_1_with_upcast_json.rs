// Version 1 has nothing to upcast from.
use factum::event;

fn upcast(value: serde_json::Value) -> Result<serde_json::Value, std::convert::Infallible> {
    Ok(value)
}

#[event(name = "Opened", upcast_json(from = 1, with = upcast))]
pub struct Opened {}

fn main() {}
