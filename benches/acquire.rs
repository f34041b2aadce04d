//! Placeholder; the benchmark suite lands in the next commit.
fn main() {}
