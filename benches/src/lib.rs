//! Benchmarks of factum; they live in `benches/`.
