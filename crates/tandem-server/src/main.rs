//! The `tandem` binary.

/// mimalloc rather than the C library's allocator: under agent check-ins glibc's malloc and
/// free (with their consolidation of freed chunks) were about a fifth of the server's CPU
/// (docs/BENCHMARKS.md, "A writer thread of its own …").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tandem_server::cli::main()
}
