// `upcast_json` steps are consecutive: version 2 has no step.
use factum::event;

fn upcast(value: serde_json::Value) -> Result<serde_json::Value, std::convert::Infallible> {
    Ok(value)
}

#[event(
    name = "Opened",
    version = 4,
    upcast_json(from = 1, with = upcast),
    upcast_json(from = 3, with = upcast)
)]
pub struct Opened {}

fn main() {}
