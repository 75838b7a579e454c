// `upcast_json` needs `from`.
use factum::event;

fn upcast(value: serde_json::Value) -> Result<serde_json::Value, std::convert::Infallible> {
    Ok(value)
}

#[event(name = "Opened", version = 2, upcast_json(with = upcast))]
pub struct Opened {}

fn main() {}
