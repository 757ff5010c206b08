//! The `weir` binary: parses the command line and hands over to the CLI layer.

fn main() {}
