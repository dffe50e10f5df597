//! The `tandem` binary.

fn main() -> std::process::ExitCode {
    tandem_server::cli::main()
}
