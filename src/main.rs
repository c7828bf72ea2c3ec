//! The `dflow` command. All the work is in the library (`dflow::cli`).

/// mimalloc keeps freed memory for reuse: reading a crawl allocates and
/// frees a buffer per record, which glibc's malloc hands back to the kernel
/// and faults in again (BENCHMARKS.md, WARC read throughput).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's settings for how it takes memory from the kernel and gives
/// it back, and dflow's values (see [`use_lazy_memory_return`]).
const ALLOCATOR_SETTINGS: [(&str, &str); 2] = [
    // Freed memory goes back with `MADV_FREE`, not `MADV_DONTNEED`.
    ("MIMALLOC_PURGE_DECOMMITS", "0"),
    // No transparent huge pages for mimalloc's arenas.
    ("MIMALLOC_ALLOW_THP", "0"),
];

fn main() {
    use_lazy_memory_return();
    std::process::exit(dflow::cli::main());
}

/// Runs dflow with mimalloc returning freed memory with `MADV_FREE` (the
/// kernel takes the pages back when it needs them) instead of
/// `MADV_DONTNEED` (every reuse faults in freshly zeroed pages), and
/// without transparent huge pages (each first touch of a huge page zeroes
/// 2 MB on the faulting thread, and freeing part of one splits it).
/// Training frees and reallocates gigabytes per step and runs about 1.5x
/// faster with the first and another 5–15% with the second; resident memory
/// reads higher by the reclaimable pages (BENCHMARKS.md, fine-tuning speed).
///
/// mimalloc reads its options from the environment when the process starts,
/// before `main`, so the settings take one `exec` of this same binary (same
/// pid, arguments and stdio). A value the user set is left alone, and if the
/// `exec` fails the run goes on with mimalloc's defaults.
fn use_lazy_memory_return() {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let unset: Vec<_> = ALLOCATOR_SETTINGS
            .into_iter()
            .filter(|(name, _)| std::env::var_os(name).is_none())
            .collect();
        if unset.is_empty() {
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
            .envs(unset)
            .exec();
    }
}
