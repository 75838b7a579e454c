//! Running the `factum` binary, as the command-line tests do.

use std::process::{Command, Output};

/// Runs `factum` with `arguments` and waits for it.
pub fn factum(arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_factum"))
        .args(arguments)
        .output()
        .expect("run the factum command")
}

/// Output bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
