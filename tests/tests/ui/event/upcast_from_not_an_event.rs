// `upcast_from` names a #[event] type.
use factum::event;

#[derive(serde::Deserialize)]
pub struct OpenedV1 {}

#[event(name = "Opened", version = 2, upcast_from = OpenedV1)]
pub struct Opened {}

impl From<OpenedV1> for Opened {
    fn from(_: OpenedV1) -> Self {
        Opened {}
    }
}

fn main() {}
