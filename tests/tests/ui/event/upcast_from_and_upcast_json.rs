// Give either `upcast_from` or `upcast_json`, not both.
use factum::event;

#[event(name = "Opened", version = 1)]
pub struct OpenedV1 {}

fn upcast(value: serde_json::Value) -> Result<serde_json::Value, std::convert::Infallible> {
    Ok(value)
}

#[event(name = "Opened", version = 2, upcast_from = OpenedV1, upcast_json(from = 1, with = upcast))]
pub struct Opened {}

impl From<OpenedV1> for Opened {
    fn from(_: OpenedV1) -> Self {
        Opened {}
    }
}

fn main() {}
