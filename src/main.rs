//! The `ctscope` binary: everything lives in the library (`ctscope::cli`).
fn main() -> std::process::ExitCode {
    ctscope::cli::main()
}
