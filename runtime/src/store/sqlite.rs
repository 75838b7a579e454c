//! stub
/// stub
#[derive(Debug)]
pub struct SqliteStore;
