//! The paths a user gives to `upcast_json(with = ...)` resolve in the user's scope, even
//! when they are spelled like the generated code's own locals.
use factum::event;

fn payload(value: serde_json::Value) -> Result<serde_json::Value, std::convert::Infallible> {
    Ok(value)
}

fn version(value: serde_json::Value) -> Result<serde_json::Value, std::convert::Infallible> {
    Ok(value)
}

#[event(
    name = "Opened",
    version = 3,
    upcast_json(from = 1, with = payload),
    upcast_json(from = 2, with = version)
)]
pub struct Opened {}

fn main() {}
