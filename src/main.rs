//! The `weir` binary: everything happens in the library's CLI layer.

fn main() -> std::process::ExitCode {
    weir::cli::main()
}
