//! `tandem-agent`: the Tandem endpoint agent. See `tandem-agent --help`.

fn main() -> std::process::ExitCode {
    tandem_agent::cli::main()
}
