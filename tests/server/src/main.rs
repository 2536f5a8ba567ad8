//! Placeholder: the reference server is being written (issue 3).
fn main() {}
