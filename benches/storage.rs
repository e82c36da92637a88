//! Storage benchmark (written next).
fn main() {}
