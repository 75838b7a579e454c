use factum::prelude::*;

/// A dose given: critical, so signed — but `signed` is a flag, not a setting.
#[event(name = "DoseGiven", signed = true)]
pub struct DoseGiven {
    pub patient_id: String,
    pub mg: u32,
}

fn main() {}
