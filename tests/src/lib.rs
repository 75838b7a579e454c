//! Workspace-level tests of factum; the tests live in `tests/`.
