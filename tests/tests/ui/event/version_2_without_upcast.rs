// Version 2 must say how version 1 is read.
use factum::event;

#[event(name = "Opened", version = 2)]
pub struct Opened {}

fn main() {}
