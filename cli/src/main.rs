//! The `fhir-async` binary: see `docs/cli.md`.
#![forbid(unsafe_code)]

fn main() {
    std::process::exit(fhir_async_cli::main_with_args(std::env::args_os()));
}
