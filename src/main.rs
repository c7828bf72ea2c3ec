//! The `dflow` command. All the work is in the library (`dflow::cli`).

fn main() {
    std::process::exit(dflow::cli::main());
}
