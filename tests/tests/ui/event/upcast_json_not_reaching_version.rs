// The last `upcast_json` step must read the previous version (3), not version 2.
use factum::event;

fn upcast(value: serde_json::Value) -> Result<serde_json::Value, std::convert::Infallible> {
    Ok(value)
}

#[event(name = "Opened", version = 4, upcast_json(from = 2, with = upcast))]
pub struct Opened {}

fn main() {}
