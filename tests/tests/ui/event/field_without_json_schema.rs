// A field type without `JsonSchema`: the error says what to derive.
use factum::event;

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Money {
    pub cents: i64,
}

#[event(name = "Paid")]
pub struct Paid {
    pub amount: Money,
}

fn main() {}
