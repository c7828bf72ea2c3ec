//! Subcommands. Exit codes: 0 ok, 1 a node (or the command) failed, 2 the
//! pipeline does not compile.

mod cluster;
mod dag;
mod ops;
mod shell;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};
use dflow_engine::cache::gc::{GcOptions, GcReport};
use dflow_engine::cache::{CacheStore, LockFile};
use dflow_engine::exec::run::cache_location;
use dflow_engine::exec::{
    Cancel, JsonReporter, PlainReporter, ProgressReporter, QuietReporter, Reporter, RunOptions,
    Workspace,
};
use dflow_engine::sql::Access;
use dflow_engine::storage::ObjectUrl;
use dflow_engine::{Diagnostics, Error, PipelineSpec, Plan};

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_COMPILE: i32 = 2;
/// A run stopped by Ctrl-C (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: i32 = 130;

/// The first Ctrl-C cancels the run: running units finish and are kept,
/// nothing new starts, the lock file and run log are written. A second one
/// stops the process at once (committed entries are safe either way).
fn cancel_on_interrupt(cancel: &Cancel) {
    let cancel = cancel.clone();
    let installed = ctrlc::set_handler(move || {
        if cancel.is_cancelled() {
            eprintln!("\ninterrupted again: stopping now (finished units are in the cache)");
            std::process::exit(EXIT_INTERRUPTED);
        }
        eprintln!(
            "\ncancelling: running units finish, nothing new starts (Ctrl-C again to stop now)"
        );
        cancel.cancel();
    });
    if let Err(e) = installed {
        eprintln!("warning: Ctrl-C will stop the run at once, without writing its log: {e}");
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "dflow",
    version,
    about = "Declarative dataflow for multilingual retrieval datasets",
    long_about = "dflow compiles a YAML pipeline into a DAG of operators over Arrow tables, \
caches every output by content hash, and recomputes only what changed."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Debug)]
struct CacheArgs {
    /// Cache directory (default: `.dflow` beside the pipeline file), or an
    /// object store URL (`s3://bucket/prefix`, `gs://`, `az://`) to share
    /// the cache through, with `.dflow` as its local working copy.
    #[arg(long, env = "DFLOW_CACHE_DIR", global = true)]
    cache_dir: Option<PathBuf>,
    /// Read sources' relative paths under this object store prefix instead
    /// of the pipeline's directory (`s3://bucket/sample`): the same
    /// pipeline file, its inputs in a store.
    #[arg(long, env = "DFLOW_SOURCE_ROOT", global = true)]
    source_root: Option<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum TableFormat {
    Table,
    Csv,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum DagFormat {
    Text,
    Dot,
    Mermaid,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Build every stale node of a pipeline.
    Run {
        pipeline: PathBuf,
        /// Run only this node (inputs from the cache). Repeatable.
        #[arg(long, value_name = "NODE")]
        only: Vec<String>,
        /// Run this node and everything upstream of it. Repeatable.
        #[arg(long, value_name = "NODE")]
        until: Vec<String>,
        /// Recompute this node even if cached. Repeatable.
        #[arg(long, value_name = "NODE")]
        force: Vec<String>,
        /// Recompute this node from scratch: an incremental node (dedup,
        /// mine) as one unit over all its partitions, without the state of
        /// earlier runs. Repeatable.
        #[arg(long, value_name = "NODE")]
        full: Vec<String>,
        /// Nodes run at once (default: one per core).
        #[arg(long, short = 'j', default_value_t = 0)]
        jobs: usize,
        /// Fail instead of waiting when another run holds the cache.
        #[arg(long)]
        no_wait: bool,
        /// Print only errors and warnings.
        #[arg(long, short = 'q')]
        quiet: bool,
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        /// Run the stale units on the Ballista cluster whose scheduler is
        /// at this address (`dflow cluster scheduler`); the cache must be in
        /// an object store every executor reads (`--cache-dir s3://...`).
        #[arg(long, env = "DFLOW_CLUSTER", value_name = "HOST:PORT")]
        cluster: Option<String>,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Compile and type-check a pipeline, and print its plan.
    Check { pipeline: PathBuf },
    /// FRESH / STALE / MISSING for each node, with the cause.
    Status {
        pipeline: PathBuf,
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        format: LogFormat,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Why a node is stale: the field-level difference to the lock file.
    Explain {
        pipeline: PathBuf,
        node: String,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// SQL over every node's latest output; an interactive shell without QUERY.
    /// Read-only unless --allow-write.
    Sql {
        pipeline: PathBuf,
        query: Option<String>,
        #[arg(long, value_enum, default_value_t = TableFormat::Table)]
        format: TableFormat,
        /// Let statements write files and define tables: `COPY ... TO
        /// 'path'` (writes the file you name), `INSERT`, `CREATE [EXTERNAL]
        /// TABLE` (reads any file you name), `CREATE VIEW`, `SET`. Without
        /// it, `dflow sql` only reads the pipeline's tables.
        #[arg(long)]
        allow_write: bool,
        /// Run QUERY on the Ballista cluster whose scheduler is at this
        /// address, over the tables as published in the shared cache
        /// (`--cache-dir s3://...`): for tables too big for one machine.
        #[arg(
            long,
            env = "DFLOW_CLUSTER",
            value_name = "HOST:PORT",
            requires = "query"
        )]
        cluster: Option<String>,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Print the DAG.
    Dag {
        pipeline: PathBuf,
        #[arg(long, value_enum, default_value_t = DagFormat::Text)]
        format: DagFormat,
    },
    /// Delete cache entries that no pipeline using the cache can still use.
    ///
    /// Keeps what any registered lock file (`.dflow/locks.json`) references,
    /// and what unfinished runs left to resume from; refuses to delete
    /// anything when the registry or a registered lock file cannot be read.
    Gc {
        pipeline: PathBuf,
        #[arg(long)]
        dry_run: bool,
        /// Also delete the vector store (`.dflow/memo/`): vectors computed
        /// before, which later runs would otherwise reuse.
        #[arg(long)]
        memo: bool,
        /// Also delete what unfinished (interrupted or failed) runs left for
        /// the next run to resume from: the work directories of their units
        /// (training checkpoints, a crawl's WARCs and journal) and the
        /// entries they committed that no lock file records yet.
        #[arg(long)]
        unfinished: bool,
        /// With a shared cache (`--cache-dir s3://...`): what it keeps of
        /// unreferenced entries and blobs younger than this many hours,
        /// which runs on other machines may be writing now.
        #[arg(long, default_value_t = 24.0)]
        grace_hours: f64,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Check cache entries fully: each file's size and content digest
    /// against the entry's meta.json. Damaged entries are listed and
    /// removed, so the next `dflow run` recomputes them; exits 1 if any.
    Verify {
        pipeline: PathBuf,
        /// Every entry in the cache, not only those the lock file references.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// List the operators, or show one with its params.
    Ops { name: Option<String> },
    /// Print the JSON Schema of pipeline files (for editors and CI).
    Schema,
    /// Run a scheduler or an executor of a cluster (`dflow run --cluster`).
    Cluster {
        #[command(subcommand)]
        role: cluster::ClusterRole,
    },
}

/// Entry point; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("dflow-io")
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return EXIT_FAILED;
        }
    };
    match dispatch(cli.command, &runtime) {
        Ok(code) => code,
        Err(Failure::Compile(d)) => {
            print_diagnostics(&d);
            EXIT_COMPILE
        }
        Err(Failure::Exec(e)) => {
            eprintln!("error[{}]: {e}\n  help: {}", e.code(), e.help());
            EXIT_FAILED
        }
    }
}

enum Failure {
    Compile(Diagnostics),
    Exec(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Exec(e)
    }
}

impl From<Diagnostics> for Failure {
    fn from(d: Diagnostics) -> Self {
        Failure::Compile(d)
    }
}

fn print_diagnostics(d: &Diagnostics) {
    if std::io::stderr().is_terminal() {
        let handler = miette::GraphicalReportHandler::new();
        for e in &d.errors {
            let mut out = String::new();
            if handler.render_report(&mut out, e).is_ok() {
                eprintln!("{out}");
            }
        }
    } else {
        eprint!("{}", d.render_plain());
    }
    eprintln!(
        "error: the pipeline does not compile ({} error{})",
        d.errors.len(),
        if d.errors.len() == 1 { "" } else { "s" }
    );
}

/// Loads and compiles a pipeline file.
pub fn load_plan(path: &Path, runtime: &tokio::runtime::Runtime) -> Result<Plan, Diagnostics> {
    let spec = PipelineSpec::load(path)?;
    let registry = crate::registry();
    dflow_engine::compile(spec, &registry, runtime.handle().clone())
}

/// Loads and compiles a pipeline file with its sources under
/// `--source-root` when given.
fn load_plan_at(
    path: &Path,
    runtime: &tokio::runtime::Runtime,
    cache: &CacheArgs,
) -> Result<Plan, Failure> {
    let mut spec = PipelineSpec::load(path)?;
    if let Some(root) = &cache.source_root {
        let url = ObjectUrl::parse(root).map_err(|e| {
            Error::config(format!(
                "--source-root must be an object store URL (s3://bucket/prefix): {e}"
            ))
        })?;
        spec.source_root = Some(url);
    }
    let registry = crate::registry();
    Ok(dflow_engine::compile(
        spec,
        &registry,
        runtime.handle().clone(),
    )?)
}

/// The cache of `plan` (none yet: `None`), with its shared tier when
/// `--cache-dir` names an object store.
fn open_cache(plan: &Plan, cache: &CacheArgs) -> Result<(PathBuf, Option<CacheStore>), Error> {
    let (root, shared) = cache_location(plan, cache.cache_dir.as_deref())?;
    let store = match shared {
        None => CacheStore::open_existing(&root),
        Some(shared) => Some(CacheStore::open(&root)?.with_shared(shared)),
    };
    Ok((root, store))
}

fn lock_of(plan: &Plan) -> Result<LockFile, Error> {
    LockFile::load(&dflow_engine::cache::lockfile::lock_path(
        &plan.spec.base_dir,
    ))
}

fn dispatch(cmd: Command, runtime: &tokio::runtime::Runtime) -> Result<i32, Failure> {
    match cmd {
        Command::Run {
            pipeline,
            only,
            until,
            force,
            full,
            jobs,
            no_wait,
            quiet,
            log_format,
            cluster,
            cache,
        } => {
            let plan = load_plan_at(&pipeline, runtime, &cache)?;
            let ws = Workspace::for_plan(&plan, cache.cache_dir.as_deref())?;
            let remote = match &cluster {
                Some(scheduler) => {
                    if ws.store.shared().is_none() {
                        return Err(Error::Cluster(
                            "--cluster needs the cache in an object store every executor reads: \
                             add --cache-dir s3://bucket/prefix"
                                .into(),
                        )
                        .into());
                    }
                    Some(cluster::remote(scheduler, runtime)?)
                }
                None => None,
            };
            let reporter: Box<dyn Reporter> = if log_format == LogFormat::Json {
                Box::new(JsonReporter::stdout())
            } else if quiet {
                Box::new(QuietReporter)
            } else if std::io::stderr().is_terminal() {
                Box::new(ProgressReporter::new())
            } else {
                Box::new(PlainReporter)
            };
            let opts = RunOptions {
                only,
                until,
                force,
                full,
                jobs,
                wait: !no_wait,
                cancel: Cancel::default(),
                remote,
            };
            cancel_on_interrupt(&opts.cancel);
            let summary = dflow_engine::exec::run(&plan, &ws, &opts, reporter.as_ref())?;
            drop(reporter);
            if summary.ok {
                Ok(EXIT_OK)
            } else if summary.cancelled {
                eprintln!(
                    "cancelled: {} units computed and kept; `dflow run` again goes on from there",
                    summary.computed
                );
                Ok(EXIT_INTERRUPTED)
            } else {
                for (node, err) in &summary.failed {
                    eprintln!("error: node `{node}` failed: {err}");
                }
                if !summary.skipped.is_empty() {
                    eprintln!("skipped (upstream failed): {}", summary.skipped.join(", "));
                }
                Ok(EXIT_FAILED)
            }
        }
        Command::Check { pipeline } => {
            let plan = load_plan(&pipeline, runtime)?;
            print!("{}", dag::plan_text(&plan, true));
            println!("ok: {} nodes, no errors", plan.nodes.len());
            Ok(EXIT_OK)
        }
        Command::Status {
            pipeline,
            format,
            cache,
        } => {
            let plan = load_plan_at(&pipeline, runtime, &cache)?;
            let (_, store) = open_cache(&plan, &cache)?;
            let lock = lock_of(&plan)?;
            let statuses = dflow_engine::status::status(&plan, store.as_ref(), &lock)?;
            if format == LogFormat::Json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&statuses).map_err(Error::from)?
                );
            } else {
                let width = statuses.iter().map(|s| s.node.len()).max().unwrap_or(4);
                for s in &statuses {
                    let mut why: Vec<String> = s.causes.iter().map(|c| c.to_string()).collect();
                    if let Some(n) = &s.note {
                        why.push(n.clone());
                    }
                    let line = format!(
                        "{:<width$}  {:<7}  {}",
                        s.node,
                        s.state.as_str(),
                        why.join("; ")
                    );
                    println!("{}", line.trim_end());
                }
            }
            Ok(EXIT_OK)
        }
        Command::Explain {
            pipeline,
            node,
            cache,
        } => {
            let plan = load_plan_at(&pipeline, runtime, &cache)?;
            let (_, store) = open_cache(&plan, &cache)?;
            let lock = lock_of(&plan)?;
            print!(
                "{}",
                dflow_engine::status::explain(&plan, store.as_ref(), &lock, &node)?
            );
            Ok(EXIT_OK)
        }
        Command::Sql {
            pipeline,
            query,
            format,
            allow_write,
            cluster,
            cache,
        } => {
            let plan = load_plan_at(&pipeline, runtime, &cache)?;
            let (root, store) = open_cache(&plan, &cache)?;
            let lock = lock_of(&plan)?;
            if let (Some(scheduler), Some(q)) = (&cluster, &query) {
                let shared = store.as_ref().and_then(|s| s.shared()).ok_or_else(|| {
                    Error::Cluster(
                        "--cluster reads the tables from the shared cache: add --cache-dir s3://bucket/prefix"
                            .into(),
                    )
                })?;
                let batches = cluster::sql(scheduler, &plan, &lock, shared, q, runtime)?;
                print!("{}", shell::format_batches(&batches, format)?);
                return Ok(EXIT_OK);
            }
            let udfs = crate::registry().udfs().to_vec();
            let ctx = dflow_engine::sql::open_session(&plan, store.as_ref(), &lock, &udfs)?;
            let access = if allow_write {
                Access::Write
            } else {
                Access::ReadOnly
            };
            match query {
                Some(q) => {
                    let batches = runtime.block_on(dflow_engine::sql::query(&ctx, &q, access))?;
                    print!("{}", shell::format_batches(&batches, format)?);
                    Ok(EXIT_OK)
                }
                None => {
                    shell::repl(&ctx, runtime, format, access, &root)?;
                    Ok(EXIT_OK)
                }
            }
        }
        Command::Dag { pipeline, format } => {
            let plan = load_plan(&pipeline, runtime)?;
            print!(
                "{}",
                match format {
                    DagFormat::Text => dag::plan_text(&plan, false),
                    DagFormat::Dot => dag::dot(&plan),
                    DagFormat::Mermaid => dag::mermaid(&plan),
                }
            );
            Ok(EXIT_OK)
        }
        Command::Gc {
            pipeline,
            dry_run,
            memo,
            unfinished,
            grace_hours,
            cache,
        } => {
            let plan = load_plan_at(&pipeline, runtime, &cache)?;
            let (_, Some(store)) = open_cache(&plan, &cache)? else {
                println!("no cache yet: nothing to collect");
                return Ok(EXIT_OK);
            };
            if let Some(shared) = store.shared() {
                let grace = std::time::Duration::try_from_secs_f64(grace_hours * 3600.0)
                    .map_err(|e| Error::config(format!("--grace-hours {grace_hours}: {e}")))?;
                let own: Vec<String> = lock_of(&plan)?
                    .referenced_keys()
                    .map(str::to_string)
                    .collect();
                let report = shared.collect(&own, grace, dry_run)?;
                println!(
                    "{} {}: {} {} entries and {} blobs ({:.1} MB); kept {} referenced by {} registered pipelines and {} younger than {grace_hours} h",
                    if dry_run {
                        "would collect"
                    } else {
                        "collected"
                    },
                    shared.root(),
                    if dry_run { "would remove" } else { "removed" },
                    report.removed.len(),
                    report.blobs_removed,
                    report.bytes as f64 / 1e6,
                    report.referenced,
                    report.registrations,
                    report.recent,
                );
            }
            let lock = dflow_engine::cache::lockfile::lock_path(&plan.spec.base_dir);
            let held = store.writer_lock(true, |m| eprintln!("dflow: {m}; waiting"))?;
            let opts = GcOptions {
                dry_run,
                memo,
                unfinished,
            };
            let report = dflow_engine::cache::gc::collect(&store, &held, &lock, opts)?;
            print!("{}", gc_text(&report, opts));
            Ok(EXIT_OK)
        }
        Command::Verify {
            pipeline,
            all,
            cache,
        } => {
            let plan = load_plan_at(&pipeline, runtime, &cache)?;
            let (_, Some(store)) = open_cache(&plan, &cache)? else {
                println!("no cache yet: nothing to verify");
                return Ok(EXIT_OK);
            };
            let keys: Vec<String> = if all {
                store.keys()?
            } else {
                let keys: std::collections::BTreeSet<String> = lock_of(&plan)?
                    .referenced_keys()
                    .map(str::to_string)
                    .collect();
                keys.into_iter().collect()
            };
            let problems = dflow_engine::cache::verify::verify(&store, &keys);
            for (key, problem) in &problems {
                println!("{}: {problem}", store.entry_dir(key).display());
            }
            let mut shared_damaged = 0;
            if let Some(shared) = store.shared() {
                let shared_problems = shared.verify(&keys, true)?;
                for (url, problem) in &shared_problems {
                    println!("{url}: {problem}");
                }
                shared_damaged = shared_problems
                    .iter()
                    .filter(|(_, p)| p != "not published")
                    .count();
                println!(
                    "verified {} published entries in {}: {} damaged (their manifests removed; the next run publishes them again), {} not published",
                    keys.len(),
                    shared.root(),
                    shared_damaged,
                    shared_problems.len() - shared_damaged
                );
            }
            if problems.is_empty() && shared_damaged > 0 {
                return Ok(EXIT_FAILED);
            }
            if problems.is_empty() {
                println!("verified {} entries: all whole", keys.len());
                return Ok(EXIT_OK);
            }
            let held = store.writer_lock(true, |m| eprintln!("dflow: {m}; waiting"))?;
            let removed = dflow_engine::cache::verify::remove_damaged(&store, &held, &problems)?;
            println!(
                "verified {} entries: {} damaged (removed), {} missing; `dflow run` recomputes them",
                keys.len(),
                removed,
                problems.len() - removed
            );
            Ok(EXIT_FAILED)
        }
        Command::Cluster { role } => {
            cluster::run_role(role, runtime)?;
            Ok(EXIT_OK)
        }
        Command::Schema => {
            let schema = ops::pipeline_schema(&crate::registry());
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).map_err(Error::from)?
            );
            Ok(EXIT_OK)
        }
        Command::Ops { name } => {
            let registry = crate::registry();
            match name {
                None => {
                    for op in registry.ops() {
                        println!("{:<12} {}", op.name, op.summary);
                    }
                    let udfs: Vec<&str> = registry.udfs().iter().map(|u| u.name()).collect();
                    println!("\nSQL functions: {}", udfs.join(", "));
                }
                Some(n) => match registry.op(&n) {
                    Some(op) => print!("{}", ops::describe(op)),
                    None => {
                        eprintln!(
                            "no operator `{n}`; the operators are: {}",
                            registry.op_names().collect::<Vec<_>>().join(", ")
                        );
                        return Ok(EXIT_FAILED);
                    }
                },
            }
            Ok(EXIT_OK)
        }
    }
}

/// What `dflow gc` prints: with `--dry-run`, each entry and vector store
/// space it would remove, then one summary line.
fn gc_text(report: &GcReport, opts: GcOptions) -> String {
    let mb = |bytes: u64| format!("{:.1} MB", bytes as f64 / 1e6);
    let mut out = String::new();
    if opts.dry_run {
        for key in &report.removed {
            out.push_str(&format!("would remove {key}\n"));
        }
        for (dir, digest) in &report.spaces {
            out.push_str(&format!(
                "would remove {} (model {digest})\n",
                dir.display()
            ));
        }
    }
    out.push_str(&format!(
        "{} {} entries and {} vector store spaces of unused models ({}); kept {}",
        if opts.dry_run {
            "would remove"
        } else {
            "removed"
        },
        report.removed.len(),
        report.spaces.len(),
        mb(report.bytes),
        report.referenced
    ));
    if report.unfinished_entries > 0 || report.work_kept > 0 {
        out.push_str(&format!(
            "; kept for unfinished runs to resume: {} entries and {} work directories ({}) \
             (`--unfinished` removes them)",
            report.unfinished_entries,
            report.work_kept,
            mb(report.work_bytes)
        ));
    }
    if !report.dropped.is_empty() {
        out.push_str(&format!(
            "; forgot {} pipeline(s) whose files are gone",
            report.dropped.len()
        ));
    }
    match (opts.memo, opts.dry_run) {
        (true, true) => out.push_str(&format!(
            "; would remove the vector store ({})",
            mb(report.memo_bytes)
        )),
        (true, false) => out.push_str("; removed the vector store"),
        (false, _) if report.memo_bytes > 0 => out.push_str(&format!(
            "; the vector store keeps {} (`--memo` removes it)",
            mb(report.memo_bytes)
        )),
        (false, _) => {}
    }
    out.push('\n');
    out
}
