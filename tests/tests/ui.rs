//! Compile-fail UI tests of the macros: `tests/ui/<category>/<mistake>.rs`, one mistake
//! per file, each with the compiler output it must produce in a checked-in `.stderr`;
//! and compile-pass tests of the expansions' hygiene in `tests/ui-pass/`.
//!
//! The correct account domain the cases share lives once in `tests/fixtures/` (outside the
//! globs, so not a case itself); a case pulls it in with
//! `include!("../../fixtures/account_domain.rs");` and holds only the item with its mistake.
//! Spans into a fixture show in a `.stderr` without line numbers, so editing a fixture moves
//! no case's expected output.
//!
//! Regenerate the expected output with `TRYBUILD=overwrite cargo test -p factum-tests --test ui`,
//! then read every changed `.stderr`: the error must land on the user's offending tokens.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*/*.rs");
    t.pass("tests/ui-pass/*.rs");
}
