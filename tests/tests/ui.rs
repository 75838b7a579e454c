//! Compile-fail UI tests of the macros: `tests/ui/<category>/<mistake>.rs`, one mistake
//! per file, each with the compiler output it must produce in a checked-in `.stderr`;
//! and compile-pass tests of the expansions' hygiene in `tests/ui-pass/`.
//!
//! Regenerate the expected output with `TRYBUILD=overwrite cargo test -p factum-tests --test ui`,
//! then read every changed `.stderr`: the error must land on the user's offending tokens.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*/*.rs");
    t.pass("tests/ui-pass/*.rs");
}
