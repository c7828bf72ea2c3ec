//! The `dflow` command. All the work is in the library (`dflow::cli`).

/// mimalloc keeps freed memory for reuse: reading a crawl allocates and
/// frees a buffer per record, which glibc's malloc hands back to the kernel
/// and faults in again (BENCHMARKS.md, WARC read throughput).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's setting for how freed memory goes back to the kernel.
const PURGE_DECOMMITS: &str = "MIMALLOC_PURGE_DECOMMITS";

fn main() {
    use_lazy_purge();
    std::process::exit(dflow::cli::main());
}

/// Runs dflow with mimalloc returning freed memory with `MADV_FREE` (the
/// kernel takes the pages back when it needs them) instead of
/// `MADV_DONTNEED` (every reuse faults in freshly zeroed pages). Training
/// frees and reallocates gigabytes per step, and runs about 1.5x faster
/// this way; resident memory reads higher by the reclaimable pages
/// (BENCHMARKS.md, fine-tuning speed).
///
/// mimalloc reads its options from the environment when the process starts,
/// before `main`, so the setting takes one `exec` of this same binary (same
/// pid, arguments and stdio). A value the user set is left alone, and if the
/// `exec` fails the run goes on with mimalloc's default.
fn use_lazy_purge() {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        if std::env::var_os(PURGE_DECOMMITS).is_some() {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let mut args = std::env::args_os();
        let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
        // `exec` returns only if it failed.
        let _failed = std::process::Command::new(exe)
            .arg0(arg0)
            .args(args)
            .env(PURGE_DECOMMITS, "0")
            .exec();
    }
}
