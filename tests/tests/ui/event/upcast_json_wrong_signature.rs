// An `upcast_json` function maps a `serde_json::Value` to a `Result` of one.
use factum::event;

fn upcast(value: String) -> String {
    value
}

#[event(name = "Opened", version = 2, upcast_json(from = 1, with = upcast))]
pub struct Opened {}

fn main() {}
