//! The `dflow` command. All the work is in the library (`dflow::cli`).

/// mimalloc keeps freed memory for reuse: reading a crawl allocates and
/// frees a buffer per record, which glibc's malloc hands back to the kernel
/// and faults in again (BENCHMARKS.md, WARC read throughput).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(dflow::cli::main());
}
