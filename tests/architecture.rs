//! Guards the architecture that ARCHITECTURE.md describes, so that the
//! document and the code cannot drift apart unnoticed:
//!
//! 1. **Crate arrows.** The normal (non-dev) dependencies between workspace
//!    crates, as `cargo metadata` reads them from the manifests, are exactly
//!    those of the `depends on (workspace crates)` column of the crate table
//!    (section `## Crates`). No operator crate (`dflow-op-*`) depends on
//!    another, and the engine depends on none: operators plug into the
//!    engine, side by side.
//! 2. **No module cycles.** Within each workspace crate, the top-level
//!    modules (`src/exec/` and `src/exec.rs` are module `exec`) depend on
//!    each other without cycles, and so do the modules of each directory
//!    module (`exec::run`, `exec::units`). A module depends on another when
//!    it names it through `crate::`, `self::` or `super::` paths (use groups
//!    included) outside comments and literals. Two modules that need each
//!    other cannot be read, tested or moved out of the crate alone.
//!
//!    Test code is left out: an item under `#[cfg(test)]` (a
//!    `mod tests { … }`, a `fn`, an `impl`, a field…), the rest of a module
//!    after `#![cfg(test)]`, and the file of a `#[cfg(test)] mod name;`
//!    create no edge. They are not part of the built crate, and a unit test
//!    may use a higher module, e.g. as a reference implementation, without
//!    making the two modules a cycle. Only the plain `cfg(test)` counts
//!    (`cfg(all(test, …))` code is still read).
//!
//! The test reads sources and manifests only: it uses the standard library
//! alone and builds in seconds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

// ---------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------

#[test]
fn crate_table_matches_the_manifests() {
    let workspace = workspace();
    let table = documented_crates(&read_architecture(workspace));
    let mut problems = Vec::new();
    for package in &workspace.packages {
        if !table.contains_key(&package.name) {
            problems.push(format!("no row for crate `{}`", package.name));
        }
    }
    for name in table.keys() {
        if workspace.package(name).is_none() {
            problems.push(format!("a row for `{name}`, which is no workspace crate"));
        }
    }
    let actual = manifest_arrows(workspace);
    let documented = table_arrows(&table);
    for arrow in actual.difference(&documented) {
        problems.push(format!("in Cargo.toml, not documented: {}", show(arrow)));
    }
    for arrow in documented.difference(&actual) {
        problems.push(format!("documented, not in Cargo.toml: {}", show(arrow)));
    }
    assert!(
        problems.is_empty(),
        "ARCHITECTURE.md's crate table (section `## Crates`) disagrees with \
         the manifests:\n  {}\nUpdate the table: one row per workspace crate, \
         and in `depends on (workspace crates)` the workspace crates of its \
         `[dependencies]`, comma-separated, each in backticks.",
        problems.join("\n  ")
    );
}

#[test]
fn no_operator_crate_depends_on_another() {
    let workspace = workspace();
    let offending: Vec<String> = manifest_arrows(workspace)
        .iter()
        .filter(|(from, to)| is_operator_crate(from) && is_operator_crate(to))
        .map(|arrow| describe_arrow(workspace, arrow))
        .collect();
    assert!(
        offending.is_empty(),
        "operator crates must not depend on each other (ARCHITECTURE.md, \
         `## Crates`):\n  {}\nMove what they share into a crate below both \
         (the engine, `dflow-schemas` or a new library crate) and depend on \
         that instead.",
        offending.join("\n  ")
    );
}

#[test]
fn engine_depends_on_no_operator_crate() {
    let workspace = workspace();
    let offending: Vec<String> = manifest_arrows(workspace)
        .iter()
        .filter(|(from, to)| from == "dflow-engine" && is_operator_crate(to))
        .map(|arrow| describe_arrow(workspace, arrow))
        .collect();
    assert!(
        offending.is_empty(),
        "the engine must know no operator crate (ARCHITECTURE.md, \
         `## Crates`):\n  {}\nGive the engine a trait or a registry hook for \
         what it needs, and let the operator crate implement it.",
        offending.join("\n  ")
    );
}

#[test]
fn no_module_cycles_within_a_crate() {
    let workspace = workspace();
    let mut reports = Vec::new();
    for package in &workspace.packages {
        for root in &package.module_roots {
            for graph in module_graphs(root) {
                for cycle in cycles(&graph.edges) {
                    reports.push(cycle_report(workspace, package, &graph, &cycle));
                }
            }
        }
    }
    assert!(
        reports.is_empty(),
        "modules that depend on each other:\n{}\nBreak each cycle: move what \
         the modules share into one of them, or into a module that both use, \
         so that every arrow points one way.",
        reports.join("\n")
    );
}

/// Whether `name` is an operator crate.
fn is_operator_crate(name: &str) -> bool {
    name.starts_with("dflow-op-")
}

/// `from -> to`.
fn show((from, to): &(String, String)) -> String {
    format!("{from} -> {to}")
}

/// `from -> to (its manifest)`, to say where an arrow comes from.
fn describe_arrow(workspace: &Workspace, arrow: &(String, String)) -> String {
    let manifest = workspace
        .package(&arrow.0)
        .map(|package| workspace.relative(&package.manifest))
        .unwrap_or_default();
    format!("{} ({manifest})", show(arrow))
}

// ---------------------------------------------------------------------------
// The workspace, as `cargo metadata` describes it
// ---------------------------------------------------------------------------

/// The workspace's packages, read once for all the checks.
struct Workspace {
    root: PathBuf,
    packages: Vec<Package>,
}

/// A workspace package.
struct Package {
    name: String,
    manifest: PathBuf,
    /// Workspace crates this package names as normal (non-dev, non-build)
    /// dependencies.
    workspace_dependencies: BTreeSet<String>,
    /// Directories of the package's `lib.rs`/`main.rs` crate roots, whose
    /// files are the crate's modules (`src/`, or `common/` for benches).
    module_roots: Vec<PathBuf>,
}

impl Workspace {
    /// The package named `name`.
    fn package(&self, name: &str) -> Option<&Package> {
        self.packages.iter().find(|package| package.name == name)
    }

    /// `path` relative to the workspace root, for messages.
    fn relative(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }
}

/// The workspace, from `cargo metadata` (run once).
fn workspace() -> &'static Workspace {
    static WORKSPACE: OnceLock<Workspace> = OnceLock::new();
    WORKSPACE.get_or_init(|| workspace_from_metadata(&cargo_metadata()))
}

/// The directory `cargo metadata` runs in: the root package's (the current
/// directory when this file is compiled by `rustc` alone).
fn manifest_dir() -> PathBuf {
    option_env!("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from("."), PathBuf::from)
}

/// The parsed output of `cargo metadata --no-deps` (no compilation).
fn cargo_metadata() -> Json {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(manifest_dir())
        .output()
        .unwrap_or_else(|err| panic!("cannot run `{} metadata`: {err}", cargo.display()));
    assert!(
        output.status.success(),
        "`cargo metadata` failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("cargo metadata prints UTF-8");
    Json::parse(&text).unwrap_or_else(|err| panic!("cannot parse `cargo metadata`: {err}"))
}

/// The workspace described by `metadata` (`--no-deps`: members only).
fn workspace_from_metadata(metadata: &Json) -> Workspace {
    let root = metadata
        .get("workspace_root")
        .and_then(Json::as_str)
        .expect("cargo metadata has a workspace_root");
    let packages = metadata.get("packages").map_or(&[][..], Json::items);
    let members: BTreeSet<&str> = packages
        .iter()
        .filter_map(|package| package.get("name").and_then(Json::as_str))
        .collect();
    Workspace {
        root: PathBuf::from(root),
        packages: packages
            .iter()
            .map(|package| package_from_metadata(package, &members))
            .collect(),
    }
}

/// One package of `cargo metadata`; `members` are the workspace's crates.
fn package_from_metadata(package: &Json, members: &BTreeSet<&str>) -> Package {
    let text = |key: &str| package.get(key).and_then(Json::as_str).unwrap_or_default();
    let workspace_dependencies = package
        .get("dependencies")
        .map_or(&[][..], Json::items)
        .iter()
        .filter(|dependency| matches!(dependency.get("kind"), Some(Json::Null)))
        .filter_map(|dependency| dependency.get("name").and_then(Json::as_str))
        .filter(|name| members.contains(name))
        .map(str::to_owned)
        .collect();
    Package {
        name: text("name").to_owned(),
        manifest: PathBuf::from(text("manifest_path")),
        workspace_dependencies,
        module_roots: module_roots(package),
    }
}

/// Directories of the package's `lib.rs` and `main.rs` crate roots (other
/// binaries and examples are crates of one file, or hold no modules here).
fn module_roots(package: &Json) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = package
        .get("targets")
        .map_or(&[][..], Json::items)
        .iter()
        .filter_map(|target| target.get("src_path").and_then(Json::as_str))
        .map(Path::new)
        .filter(|path| matches!(file_name(path), "lib.rs" | "main.rs"))
        .filter_map(Path::parent)
        .map(Path::to_path_buf)
        .collect();
    roots.sort();
    roots.dedup();
    roots
}

/// The last component of `path` ("" if none).
fn file_name(path: &Path) -> &str {
    path.file_name()
        .and_then(|name| name.to_str())
        .unwrap_or_default()
}

/// Every (crate -> workspace crate) normal-dependency arrow of the manifests.
fn manifest_arrows(workspace: &Workspace) -> BTreeSet<(String, String)> {
    workspace
        .packages
        .iter()
        .flat_map(|package| {
            package
                .workspace_dependencies
                .iter()
                .map(|dependency| (package.name.clone(), dependency.clone()))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The crate table of ARCHITECTURE.md
// ---------------------------------------------------------------------------

/// The heading of the section that holds the crate table.
const CRATES_SECTION: &str = "## Crates";
/// The table's column of crate names.
const CRATE_COLUMN: &str = "crate";
/// The table's column of each crate's workspace dependencies.
const DEPENDS_COLUMN: &str = "depends on (workspace crates)";

/// The text of ARCHITECTURE.md.
fn read_architecture(workspace: &Workspace) -> String {
    let path = workspace.root.join("ARCHITECTURE.md");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
}

/// The crate table: each documented crate and the workspace crates it is
/// documented to depend on.
fn documented_crates(architecture: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut rows = section_lines(architecture, CRATES_SECTION)
        .filter(|line| line.trim_start().starts_with('|'))
        .map(table_cells);
    let header = rows
        .next()
        .unwrap_or_else(|| panic!("ARCHITECTURE.md: no table under `{CRATES_SECTION}`"));
    let crate_column = column(&header, CRATE_COLUMN);
    let depends_column = column(&header, DEPENDS_COLUMN);
    rows.filter(|cells| !is_separator_row(cells))
        .filter_map(|cells| {
            let name = code_spans(cells.get(crate_column)?).next()?.to_owned();
            let dependencies = code_spans(cells.get(depends_column).map_or("", |cell| cell))
                .map(str::to_owned)
                .collect();
            Some((name, dependencies))
        })
        .collect()
}

/// The lines of the markdown section under `heading`, up to the next
/// heading of its level or above.
fn section_lines<'a>(markdown: &'a str, heading: &str) -> impl Iterator<Item = &'a str> {
    markdown
        .lines()
        .skip_while(move |line| line.trim_end() != heading)
        .skip(1)
        .take_while(|line| !line.starts_with("# ") && !line.starts_with("## "))
}

/// The trimmed cells of a markdown table row.
fn table_cells(row: &str) -> Vec<String> {
    let row = row.trim();
    let row = row.strip_prefix('|').unwrap_or(row);
    let row = row.strip_suffix('|').unwrap_or(row);
    row.split('|').map(|cell| cell.trim().to_owned()).collect()
}

/// Whether `cells` are the `|---|---|` row under a table's header.
fn is_separator_row(cells: &[String]) -> bool {
    cells
        .iter()
        .all(|cell| cell.chars().all(|c| matches!(c, '-' | ':' | ' ')))
}

/// The index of the header cell `name`.
fn column(header: &[String], name: &str) -> usize {
    header
        .iter()
        .position(|cell| cell == name)
        .unwrap_or_else(|| {
            panic!(
                "ARCHITECTURE.md: the table under `{CRATES_SECTION}` needs a \
                 column `{name}` (its columns: {header:?})"
            )
        })
}

/// The texts between backticks in `cell`.
fn code_spans(cell: &str) -> impl Iterator<Item = &str> {
    cell.split('`').skip(1).step_by(2).map(str::trim)
}

/// Every (crate -> workspace crate) arrow of the table.
fn table_arrows(table: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<(String, String)> {
    table
        .iter()
        .flat_map(|(name, dependencies)| {
            dependencies
                .iter()
                .map(|dependency| (name.clone(), dependency.clone()))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Module graphs
// ---------------------------------------------------------------------------

/// Where an edge between modules comes from.
#[derive(Clone)]
struct Site {
    file: PathBuf,
    line: usize,
}

/// The dependencies between sibling modules: the top-level modules of a
/// crate (`parent` empty), or the modules of one directory module.
struct ModuleGraph {
    /// The module whose children are the nodes (empty: the crate root).
    parent: Vec<String>,
    /// `from -> to`, with the first place (by file, then line) that makes it.
    edges: BTreeMap<(String, String), Site>,
}

/// A source file of a crate, with the module it holds.
struct SourceFile {
    path: PathBuf,
    /// The module path from the crate root (`exec/run.rs`: `exec::run`).
    module: Vec<String>,
}

/// The module graphs of the crate whose root files are in `root`: the
/// top-level modules, then those of each directory module.
fn module_graphs(root: &Path) -> Vec<ModuleGraph> {
    let files = source_files(root);
    let mut graphs = vec![ModuleGraph {
        parent: Vec::new(),
        edges: BTreeMap::new(),
    }];
    let directory_modules: BTreeSet<&str> = files
        .iter()
        .filter(|file| file.module.len() >= 2)
        .map(|file| file.module[0].as_str())
        .collect();
    graphs.extend(directory_modules.iter().map(|name| ModuleGraph {
        parent: vec![(*name).to_owned()],
        edges: BTreeMap::new(),
    }));
    let sources: Vec<Vec<Spanned>> = files
        .iter()
        .map(|file| tokenize(&read(&file.path)))
        .collect();
    let test_modules = test_modules(root, &files, &sources);
    for (file, tokens) in files.iter().zip(&sources) {
        if test_modules
            .iter()
            .any(|module| file.module.starts_with(module))
        {
            continue;
        }
        for mention in mentioned_modules(tokens, &file.module) {
            for graph in &mut graphs {
                add_edge(graph, &files, file, &mention);
            }
        }
    }
    graphs
}

/// The text of the source file at `path`.
fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
}

/// The modules that a `#[cfg(test)] mod name;` declares, in the crate root
/// files in `root` or in `files` (whose tokens are `sources`): test code in
/// files of their own.
fn test_modules(root: &Path, files: &[SourceFile], sources: &[Vec<Spanned>]) -> Vec<Vec<String>> {
    let crate_roots = ["lib.rs", "main.rs"]
        .map(|name| root.join(name))
        .into_iter()
        .filter(|path| path.is_file())
        .map(|path| (Vec::new(), tokenize(&read(&path))));
    let mut modules = Vec::new();
    for (module, tokens) in crate_roots {
        modules.extend(test_module_names(&tokens).map(|name| child(&module, name)));
    }
    for (file, tokens) in files.iter().zip(sources) {
        modules.extend(test_module_names(tokens).map(|name| child(&file.module, name)));
    }
    modules
}

/// The module `name` in `parent`.
fn child(parent: &[String], name: &str) -> Vec<String> {
    parent.iter().cloned().chain([name.to_owned()]).collect()
}

/// Adds to `graph` the edge that `mention`, made in `file`, creates, if any:
/// one from the child of `graph.parent` that holds `file` to another child.
fn add_edge(graph: &mut ModuleGraph, files: &[SourceFile], file: &SourceFile, mention: &Mention) {
    let depth = graph.parent.len();
    let (Some(from), Some(to)) = (file.module.get(depth), mention.module.get(depth)) else {
        return;
    };
    let within_parent =
        file.module.starts_with(&graph.parent) && mention.module.starts_with(&graph.parent);
    if !within_parent || from == to || !is_module(files, &mention.module[..=depth]) {
        return;
    }
    graph
        .edges
        .entry((
            qualified(&file.module[..=depth]),
            qualified(&mention.module[..=depth]),
        ))
        .or_insert_with(|| Site {
            file: file.path.clone(),
            line: mention.line,
        });
}

/// Whether some file of the crate holds `module` or one of its children.
fn is_module(files: &[SourceFile], module: &[String]) -> bool {
    files.iter().any(|file| file.module.starts_with(module))
}

/// `a::b`.
fn qualified(module: &[String]) -> String {
    module.join("::")
}

/// The `.rs` files under `root`, sorted, without the crate roots (`lib.rs`,
/// `main.rs`) and without `bin/` (each file there is a crate of its own).
fn source_files(root: &Path) -> Vec<SourceFile> {
    let mut paths = Vec::new();
    collect_rust_files(root, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .filter_map(|path| {
            let relative = path.strip_prefix(root).ok()?;
            let module = module_of(relative);
            let in_bin = relative.starts_with("bin");
            (!module.is_empty() && !in_bin).then_some(SourceFile { path, module })
        })
        .collect()
}

/// Appends the `.rs` files under `dir`, recursively, to `paths`.
fn collect_rust_files(dir: &Path, paths: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_rust_files(&path, paths);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            paths.push(path);
        }
    }
}

/// The module a file holds, from its path under the crate's root directory:
/// `exec/run.rs` is `exec::run`, `exec/mod.rs` and `exec.rs` are `exec`,
/// `lib.rs` and `main.rs` are the crate root (empty).
fn module_of(relative: &Path) -> Vec<String> {
    let mut module: Vec<String> = relative
        .iter()
        .map(|component| {
            let component = component.to_string_lossy();
            component
                .strip_suffix(".rs")
                .unwrap_or(&component)
                .to_owned()
        })
        .collect();
    if module.last().is_some_and(|last| last == "mod") {
        module.pop();
    }
    if module.len() == 1 && matches!(module[0].as_str(), "lib" | "main") {
        module.clear();
    }
    module
}

/// The sets of at least two modules that all reach each other through
/// `edges` (the strongly connected components that are cycles).
fn cycles(edges: &BTreeMap<(String, String), Site>) -> Vec<BTreeSet<String>> {
    let mut successors: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        successors.entry(from).or_default().push(to);
    }
    let reach: BTreeMap<&str, BTreeSet<&str>> = successors
        .keys()
        .map(|&node| (node, reachable(&successors, node)))
        .collect();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut components = Vec::new();
    for (&node, reached) in &reach {
        if seen.contains(node) {
            continue;
        }
        let component: BTreeSet<String> = reached
            .iter()
            .filter(|other| reach.get(**other).is_some_and(|back| back.contains(node)))
            .map(|other| (*other).to_owned())
            .collect();
        seen.extend(reached.iter().filter(|other| component.contains(**other)));
        if component.len() > 1 {
            components.push(component);
        }
    }
    components
}

/// The nodes reachable from `start` by one edge or more.
fn reachable<'a>(
    successors: &BTreeMap<&'a str, Vec<&'a str>>,
    start: &'a str,
) -> BTreeSet<&'a str> {
    let mut reached = BTreeSet::new();
    let mut stack = vec![start];
    while let Some(node) = stack.pop() {
        for &next in successors.get(node).into_iter().flatten() {
            if reached.insert(next) {
                stack.push(next);
            }
        }
    }
    reached
}

/// The modules of `cycle` and, for each edge among them, where it comes from.
fn cycle_report(
    workspace: &Workspace,
    package: &Package,
    graph: &ModuleGraph,
    cycle: &BTreeSet<String>,
) -> String {
    let modules: Vec<&str> = cycle.iter().map(String::as_str).collect();
    let within = if graph.parent.is_empty() {
        String::new()
    } else {
        format!(" (in module `{}`)", qualified(&graph.parent))
    };
    let heading = format!(
        "  {}{within}: {} depend on each other:",
        package.name,
        modules.join(", ")
    );
    let edges = graph
        .edges
        .iter()
        .filter(|((from, to), _)| cycle.contains(from) && cycle.contains(to))
        .map(|((from, to), site)| {
            let place = format!("{}:{}", workspace.relative(&site.file), site.line);
            format!("    {from} -> {to}  ({place})")
        });
    std::iter::once(heading)
        .chain(edges)
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------
// Module paths in Rust source
// ---------------------------------------------------------------------------

/// A token of Rust source, as far as paths need: comments are dropped,
/// literals kept only as placeholders.
#[derive(Debug, PartialEq)]
enum Token {
    Ident(String),
    /// `::`
    PathSep,
    Punct(char),
    Literal,
}

/// A token and its 1-based line.
struct Spanned {
    token: Token,
    line: usize,
}

/// The tokens of `source`.
fn tokenize(source: &str) -> Vec<Spanned> {
    let mut lexer = Lexer {
        chars: source.chars().collect(),
        pos: 0,
        line: 1,
    };
    let mut tokens = Vec::new();
    while let Some(c) = lexer.peek(0) {
        let line = lexer.line;
        if let Some(token) = lexer.token(c) {
            tokens.push(Spanned { token, line });
        }
    }
    tokens
}

/// Reads Rust source one token at a time.
struct Lexer {
    chars: Vec<char>,
    pos: usize,
    line: usize,
}

impl Lexer {
    /// The character `ahead` places after the current one.
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    /// Moves past one character, counting lines.
    fn bump(&mut self) -> Option<char> {
        let c = self.peek(0)?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    /// Reads what starts with `c`: a token, or nothing (space, comments).
    fn token(&mut self, c: char) -> Option<Token> {
        match (c, self.peek(1)) {
            _ if c.is_whitespace() => self.skip(1),
            ('/', Some('/')) => self.skip_line(),
            ('/', Some('*')) => self.skip_block_comment(),
            ('"', _) => return Some(self.quoted()),
            ('\'', _) => return self.quote_mark(),
            (':', Some(':')) => {
                self.skip(2);
                return Some(Token::PathSep);
            }
            _ if c.is_alphanumeric() || c == '_' => return Some(self.word()),
            _ => {
                self.skip(1);
                return Some(Token::Punct(c));
            }
        }
        None
    }

    /// Moves past `count` characters.
    fn skip(&mut self, count: usize) {
        for _ in 0..count {
            self.bump();
        }
    }

    /// Moves past a line comment (doc comments included).
    fn skip_line(&mut self) {
        while self.peek(0).is_some_and(|c| c != '\n') {
            self.bump();
        }
    }

    /// Moves past a block comment, nested ones included.
    fn skip_block_comment(&mut self) {
        let mut depth = 0;
        while let Some(c) = self.bump() {
            match (c, self.peek(0)) {
                ('/', Some('*')) => {
                    self.bump();
                    depth += 1;
                }
                ('*', Some('/')) => {
                    self.bump();
                    depth -= 1;
                    if depth == 0 {
                        return;
                    }
                }
                _ => {}
            }
        }
    }

    /// Moves past a `"…"` literal, escapes included.
    fn quoted(&mut self) -> Token {
        self.bump();
        while let Some(c) = self.bump() {
            match c {
                '\\' => {
                    self.bump();
                }
                '"' => break,
                _ => {}
            }
        }
        Token::Literal
    }

    /// Moves past a raw literal (`r"…"`, `r#"…"#`), its prefix already read.
    fn raw_quoted(&mut self) -> Token {
        let mut hashes = 0;
        while self.peek(0) == Some('#') {
            self.bump();
            hashes += 1;
        }
        self.bump();
        while let Some(c) = self.bump() {
            if c == '"' && (0..hashes).all(|i| self.peek(i) == Some('#')) {
                self.skip(hashes);
                break;
            }
        }
        Token::Literal
    }

    /// Reads what starts with `'`: a character literal, or the mark of a
    /// lifetime or label (whose name then reads as a word).
    fn quote_mark(&mut self) -> Option<Token> {
        match (self.peek(1), self.peek(2)) {
            (Some('\\'), _) => {
                self.skip(3);
                while self.bump().is_some_and(|c| c != '\'') {}
                Some(Token::Literal)
            }
            (_, Some('\'')) => {
                self.skip(3);
                Some(Token::Literal)
            }
            _ => {
                self.skip(1);
                None
            }
        }
    }

    /// Reads an identifier, keyword or number, or a literal with a prefix
    /// (`b"…"`, `r#"…"#`, `b'…'`); `r#name` reads as `name`.
    fn word(&mut self) -> Token {
        let start = self.pos;
        while self
            .peek(0)
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            self.bump();
        }
        let word: String = self.chars[start..self.pos].iter().collect();
        let raw_prefix = matches!(word.as_str(), "r" | "br" | "cr");
        match (self.peek(0), self.peek(1)) {
            (Some('"'), _) | (Some('#'), Some('"' | '#')) if raw_prefix => self.raw_quoted(),
            (Some('#'), Some(_)) if word == "r" => {
                self.bump();
                match self.word() {
                    Token::Ident(name) => Token::Ident(name),
                    other => other,
                }
            }
            (Some('"'), _) if matches!(word.as_str(), "b" | "c") => self.quoted(),
            (Some('\''), _) if word == "b" => self.quote_mark().unwrap_or(Token::Literal),
            _ => Token::Ident(word),
        }
    }
}

/// A module path that source names, resolved from the crate root, and the
/// line that names it.
#[derive(Debug, PartialEq)]
struct Mention {
    module: Vec<String>,
    line: usize,
}

/// The paths that start with `crate::`, `self::` or `super::` in the tokens
/// of a file that holds `file_module`, resolved from the crate root (inline
/// `mod name { … }` blocks taken into account for `self` and `super`),
/// outside test code (see [`test_code`]).
fn mentioned_modules(tokens: &[Spanned], file_module: &[String]) -> Vec<Mention> {
    let test_code = test_code(tokens);
    let mut mentions = Vec::new();
    let mut depth = 0;
    let mut inline_modules: Vec<(String, usize)> = Vec::new();
    let mut next_path_start = 0;
    for (i, spanned) in tokens.iter().enumerate() {
        match &spanned.token {
            Token::Punct('{') => {
                depth += 1;
                if let Some(name) = inline_module_name(tokens, i) {
                    inline_modules.push((name.to_owned(), depth));
                }
            }
            Token::Punct('}') => {
                if inline_modules
                    .last()
                    .is_some_and(|(_, open)| *open == depth)
                {
                    inline_modules.pop();
                }
                depth = depth.saturating_sub(1);
            }
            Token::Ident(_) if i >= next_path_start && !test_code[i] && starts_path(tokens, i) => {
                let mut paths = Vec::new();
                next_path_start = use_tree(tokens, i, Vec::new(), &mut paths);
                let current: Vec<String> = file_module
                    .iter()
                    .cloned()
                    .chain(inline_modules.iter().map(|(name, _)| name.clone()))
                    .collect();
                mentions.extend(paths.iter().filter_map(|path| {
                    Some(Mention {
                        module: resolve(&current, path)?,
                        line: spanned.line,
                    })
                }));
            }
            _ => {}
        }
    }
    mentions
}

/// Which of `tokens` are test code: each item, statement, field or arm
/// under an outer `#[cfg(test)]`, from the attribute on, and the rest of the
/// module (or block) after an inner `#![cfg(test)]`.
fn test_code(tokens: &[Spanned]) -> Vec<bool> {
    let mut test_code = vec![false; tokens.len()];
    let mut i = 0;
    while i < tokens.len() {
        let Some((inner, after)) = cfg_test_attribute(tokens, i) else {
            i += 1;
            continue;
        };
        let end = if inner {
            gated_end(tokens, after, Extent::Module)
        } else {
            gated_end(tokens, after, item_extent(tokens, after))
        };
        test_code[i..end].fill(true);
        i = end.max(i + 1);
    }
    test_code
}

/// Whether `#[cfg(test)]` or (`inner`) `#![cfg(test)]` starts at `i`, and
/// the position after it.
fn cfg_test_attribute(tokens: &[Spanned], i: usize) -> Option<(bool, usize)> {
    if tokens[i].token != Token::Punct('#') {
        return None;
    }
    let inner = tokens.get(i + 1)?.token == Token::Punct('!');
    let start = i + 1 + usize::from(inner);
    let attribute = ["[", "cfg", "(", "test", ")", "]"];
    let found = tokens.get(start..start + attribute.len())?;
    found
        .iter()
        .zip(attribute)
        .all(|(spanned, text)| is(&spanned.token, text))
        .then_some((inner, start + attribute.len()))
}

/// Whether `token` reads `text`.
fn is(token: &Token, text: &str) -> bool {
    match token {
        Token::Ident(word) => word == text,
        Token::PathSep => text == "::",
        Token::Punct(c) => text.chars().eq([*c]),
        Token::Literal => false,
    }
}

/// How far code under a `cfg` attribute reaches.
#[derive(Clone, Copy, PartialEq)]
enum Extent {
    /// To the end of the module or block (an inner attribute).
    Module,
    /// To its `;` (`use`, `let`, `const`, `static`, `type`).
    Statement,
    /// To its `;` or the `{ … }` that ends it (`fn`, `mod`, `impl`…).
    Item,
    /// To its `;`, its `,` or the `{ … }` that ends it (fields, variants,
    /// arms, expressions).
    Element,
}

/// The extent of the item, statement, field or arm at `pos`, from its
/// first word past other outer attributes and visibility.
fn item_extent(tokens: &[Spanned], mut pos: usize) -> Extent {
    let word = |pos: usize| tokens.get(pos).map(|spanned| &spanned.token);
    loop {
        match (word(pos), word(pos + 1)) {
            (Some(Token::Punct('#')), Some(Token::Punct('['))) => pos = group_end(tokens, pos + 1),
            (Some(Token::Ident(keyword)), Some(Token::Punct('('))) if keyword == "pub" => {
                pos = group_end(tokens, pos + 1);
            }
            (Some(Token::Ident(keyword)), _) if keyword == "pub" => pos += 1,
            _ => break,
        }
    }
    let is_word = |pos: usize, texts: &[&str]| {
        word(pos).is_some_and(|token| texts.iter().any(|text| is(token, text)))
    };
    let function_after_const = ["fn", "unsafe", "async", "extern"];
    if is_word(pos, &["use", "let", "static", "type"])
        || (is_word(pos, &["const"]) && !is_word(pos + 1, &function_after_const))
    {
        Extent::Statement
    } else if is_word(
        pos,
        &[
            "fn",
            "mod",
            "impl",
            "struct",
            "enum",
            "union",
            "trait",
            "extern",
            "unsafe",
            "async",
            "const",
            "macro_rules",
        ],
    ) {
        Extent::Item
    } else {
        Extent::Element
    }
}

/// The position after the group that the `(`, `[` or `{` at `open` starts.
fn group_end(tokens: &[Spanned], open: usize) -> usize {
    let mut level = 0usize;
    for (i, spanned) in tokens.iter().enumerate().skip(open) {
        match spanned.token {
            Token::Punct('(' | '[' | '{') => level += 1,
            Token::Punct(')' | ']' | '}') => {
                level = level.saturating_sub(1);
                if level == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
    }
    tokens.len()
}

/// The position after code of `extent` that starts at `pos`; at the latest
/// that of the `)`, `]` or `}` that closes what holds it.
fn gated_end(tokens: &[Spanned], pos: usize, extent: Extent) -> usize {
    let mut level = 0usize;
    for (i, spanned) in tokens.iter().enumerate().skip(pos) {
        match spanned.token {
            Token::Punct('(' | '[' | '{') => level += 1,
            Token::Punct(')' | ']' | '}') if level == 0 => return i,
            Token::Punct(close @ (')' | ']' | '}')) => {
                level -= 1;
                let block_ends = matches!(extent, Extent::Item | Extent::Element);
                if level == 0 && close == '}' && block_ends {
                    return i + 1;
                }
            }
            Token::Punct(';') if level == 0 && extent != Extent::Module => return i + 1,
            Token::Punct(',') if level == 0 && extent == Extent::Element => return i + 1,
            _ => {}
        }
    }
    tokens.len()
}

/// The names of the modules that `#[cfg(test)] mod name;` declares at the
/// top level of a file's `tokens`.
fn test_module_names(tokens: &[Spanned]) -> impl Iterator<Item = &str> {
    let test_code = test_code(tokens);
    let mut depth = 0usize;
    tokens.iter().enumerate().filter_map(move |(i, spanned)| {
        match spanned.token {
            Token::Punct('{') => depth += 1,
            Token::Punct('}') => depth = depth.saturating_sub(1),
            _ => {}
        }
        let declares = depth == 0 && test_code[i] && is(&spanned.token, "mod");
        match (declares, tokens.get(i + 1..i + 3)?) {
            (true, [name, end]) if is(&end.token, ";") => match &name.token {
                Token::Ident(name) => Some(name.as_str()),
                _ => None,
            },
            _ => None,
        }
    })
}

/// The name of the inline module that the `{` at `open` starts, if it does
/// (`mod name {`).
fn inline_module_name(tokens: &[Spanned], open: usize) -> Option<&str> {
    let keyword = &tokens.get(open.checked_sub(2)?)?.token;
    match (keyword, &tokens[open - 1].token) {
        (Token::Ident(keyword), Token::Ident(name)) if keyword == "mod" => Some(name),
        _ => None,
    }
}

/// Whether the token at `i` starts a `crate::`, `self::` or `super::` path.
fn starts_path(tokens: &[Spanned], i: usize) -> bool {
    let is_anchor = matches!(&tokens[i].token, Token::Ident(word) if matches!(word.as_str(), "crate" | "self" | "super"));
    let continues = i > 0 && tokens[i - 1].token == Token::PathSep;
    let followed = tokens
        .get(i + 1)
        .is_some_and(|next| next.token == Token::PathSep);
    is_anchor && followed && !continues
}

/// Reads the path or use tree at `pos` (`a::b`, `a::{b, c::d}`, `a::*`)
/// below `prefix`, appends each path it names to `paths`, and returns the
/// position after it.
fn use_tree(
    tokens: &[Spanned],
    mut pos: usize,
    mut prefix: Vec<String>,
    paths: &mut Vec<Vec<String>>,
) -> usize {
    loop {
        match tokens.get(pos).map(|spanned| &spanned.token) {
            Some(Token::Ident(name)) => {
                prefix.push(name.clone());
                pos += 1;
            }
            Some(Token::Punct('{')) => return use_group(tokens, pos + 1, &prefix, paths),
            Some(Token::Punct('*')) => {
                paths.push(prefix);
                return pos + 1;
            }
            _ => {
                paths.push(prefix);
                return pos;
            }
        }
        match tokens.get(pos).map(|spanned| &spanned.token) {
            Some(Token::PathSep) => pos += 1,
            Some(Token::Ident(word)) if word == "as" => {
                paths.push(prefix);
                return pos + 2;
            }
            _ => {
                paths.push(prefix);
                return pos;
            }
        }
    }
}

/// Reads the use trees of a `{ … }` group, from after its `{`, below
/// `prefix`; returns the position after its `}`.
fn use_group(
    tokens: &[Spanned],
    mut pos: usize,
    prefix: &[String],
    paths: &mut Vec<Vec<String>>,
) -> usize {
    loop {
        match tokens.get(pos).map(|spanned| &spanned.token) {
            None => return pos,
            Some(Token::Punct('}')) => return pos + 1,
            Some(Token::Punct(',')) => pos += 1,
            Some(_) => {
                let next = use_tree(tokens, pos, prefix.to_vec(), paths);
                pos = next.max(pos + 1);
            }
        }
    }
}

/// `path` (starting with `crate`, `self` or `super`) as a module path from
/// the crate root, named in module `current`; `None` if it climbs above the
/// root.
fn resolve(current: &[String], path: &[String]) -> Option<Vec<String>> {
    let (anchor, rest) = path.split_first()?;
    let mut module = match anchor.as_str() {
        "crate" => Vec::new(),
        "self" => current.to_vec(),
        "super" => current.split_last()?.1.to_vec(),
        _ => return None,
    };
    let climbs = rest
        .iter()
        .take_while(|segment| *segment == "super")
        .count();
    for _ in 0..climbs {
        module.pop()?;
    }
    module.extend(
        rest[climbs..]
            .iter()
            .filter(|segment| *segment != "self")
            .cloned(),
    );
    Some(module)
}

// ---------------------------------------------------------------------------
// JSON, just enough to read `cargo metadata`
// ---------------------------------------------------------------------------

/// A JSON value.
#[derive(Debug, PartialEq)]
enum Json {
    Null,
    /// `true`, `false` or a number: this test reads none, so the value is
    /// not kept.
    Scalar,
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Parses a whole JSON text.
    fn parse(text: &str) -> Result<Json, String> {
        let mut parser = JsonParser {
            bytes: text.as_bytes(),
            pos: 0,
        };
        let value = parser.value()?;
        parser.skip_space();
        if parser.pos == parser.bytes.len() {
            Ok(value)
        } else {
            Err(parser.error("text after the value"))
        }
    }

    /// The member `key` of an object.
    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members
                .iter()
                .find(|(name, _)| name == key)
                .map(|(_, value)| value),
            _ => None,
        }
    }

    /// The text of a string.
    fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(text) => Some(text),
            _ => None,
        }
    }

    /// The items of an array (none for other values).
    fn items(&self) -> &[Json] {
        match self {
            Json::Array(items) => items,
            _ => &[],
        }
    }
}

/// A recursive-descent JSON parser over UTF-8 bytes.
struct JsonParser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl JsonParser<'_> {
    /// An error message that says where.
    fn error(&self, what: &str) -> String {
        format!("{what} at byte {}", self.pos)
    }

    /// Moves past white space.
    fn skip_space(&mut self) {
        while self
            .bytes
            .get(self.pos)
            .is_some_and(u8::is_ascii_whitespace)
        {
            self.pos += 1;
        }
    }

    /// Moves past `byte` if it comes next.
    fn eat(&mut self, byte: u8) -> bool {
        let found = self.bytes.get(self.pos) == Some(&byte);
        self.pos += usize::from(found);
        found
    }

    /// Moves past `byte`, which must come next (after white space).
    fn expect(&mut self, byte: u8) -> Result<(), String> {
        self.skip_space();
        if self.eat(byte) {
            Ok(())
        } else {
            Err(self.error(&format!("expected `{}`", char::from(byte))))
        }
    }

    /// Reads a value.
    fn value(&mut self) -> Result<Json, String> {
        self.skip_space();
        match self.bytes.get(self.pos) {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => self.string().map(Json::String),
            Some(b'n') => self.keyword("null", Json::Null),
            Some(b't') => self.keyword("true", Json::Scalar),
            Some(b'f') => self.keyword("false", Json::Scalar),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.error("expected a value")),
        }
    }

    /// Reads `word`, which stands for `value`.
    fn keyword(&mut self, word: &str, value: Json) -> Result<Json, String> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error("expected a value"))
        }
    }

    /// Reads a number (not kept).
    fn number(&mut self) -> Result<Json, String> {
        let start = self.pos;
        while self
            .bytes
            .get(self.pos)
            .is_some_and(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
        {
            self.pos += 1;
        }
        if self.bytes[start..self.pos].iter().any(u8::is_ascii_digit) {
            Ok(Json::Scalar)
        } else {
            Err(self.error("expected digits"))
        }
    }

    /// Reads an array.
    fn array(&mut self) -> Result<Json, String> {
        self.expect(b'[')?;
        let mut items = Vec::new();
        self.skip_space();
        if self.eat(b']') {
            return Ok(Json::Array(items));
        }
        loop {
            items.push(self.value()?);
            self.skip_space();
            if self.eat(b']') {
                return Ok(Json::Array(items));
            }
            self.expect(b',')?;
        }
    }

    /// Reads an object.
    fn object(&mut self) -> Result<Json, String> {
        self.expect(b'{')?;
        let mut members = Vec::new();
        self.skip_space();
        if self.eat(b'}') {
            return Ok(Json::Object(members));
        }
        loop {
            self.skip_space();
            let key = self.string()?;
            self.expect(b':')?;
            members.push((key, self.value()?));
            self.skip_space();
            if self.eat(b'}') {
                return Ok(Json::Object(members));
            }
            self.expect(b',')?;
        }
    }

    /// Reads a string, escapes decoded.
    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut text = Vec::new();
        loop {
            let byte = *self
                .bytes
                .get(self.pos)
                .ok_or_else(|| self.error("unterminated string"))?;
            self.pos += 1;
            match byte {
                b'"' => return String::from_utf8(text).map_err(|_| self.error("invalid UTF-8")),
                b'\\' => {
                    let c = self.escape()?;
                    text.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                }
                _ => text.push(byte),
            }
        }
    }

    /// Reads the rest of an escape, after its `\`.
    fn escape(&mut self) -> Result<char, String> {
        let byte = self.bytes.get(self.pos).copied();
        self.pos += 1;
        match byte {
            Some(b'"') => Ok('"'),
            Some(b'\\') => Ok('\\'),
            Some(b'/') => Ok('/'),
            Some(b'b') => Ok('\u{8}'),
            Some(b'f') => Ok('\u{c}'),
            Some(b'n') => Ok('\n'),
            Some(b'r') => Ok('\r'),
            Some(b't') => Ok('\t'),
            Some(b'u') => self.unicode_escape(),
            _ => Err(self.error("invalid escape")),
        }
    }

    /// Reads the digits of a `\u` escape, and of the low surrogate that
    /// follows a high one.
    fn unicode_escape(&mut self) -> Result<char, String> {
        let high = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&high) {
            if !(self.eat(b'\\') && self.eat(b'u')) {
                return Err(self.error("lone surrogate"));
            }
            let low = self.hex4()?;
            if !(0xDC00..0xE000).contains(&low) {
                return Err(self.error("invalid low surrogate"));
            }
            0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
        } else {
            high
        };
        char::from_u32(code).ok_or_else(|| self.error("invalid \\u escape"))
    }

    /// Reads four hex digits.
    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self
            .bytes
            .get(self.pos..self.pos + 4)
            .filter(|digits| digits.iter().all(u8::is_ascii_hexdigit))
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .and_then(|digits| u32::from_str_radix(digits, 16).ok())
            .ok_or_else(|| self.error("expected four hex digits"))?;
        self.pos += 4;
        Ok(digits)
    }
}

// ---------------------------------------------------------------------------
// The readers above, on small inputs
// ---------------------------------------------------------------------------

/// The module paths `source`, held by module `file_module`, names.
fn mentioned_in(source: &str, file_module: &[&str]) -> Vec<String> {
    let file_module: Vec<String> = file_module.iter().map(|s| (*s).to_owned()).collect();
    mentioned_modules(&tokenize(source), &file_module)
        .into_iter()
        .map(|mention| qualified(&mention.module))
        .collect()
}

#[test]
fn paths_resolve_through_groups_super_and_inline_modules() {
    let source = "use crate::{a, b::{self, c}, d::*};\n\
                  use super::units as u;\n\
                  fn f() { crate::e::f::<T>(); self::g::h(); }\n\
                  mod tests { use super::super::i; use super::*; }";
    assert_eq!(
        mentioned_in(source, &["exec", "run"]),
        [
            "a",
            "b",
            "b::c",
            "d",
            "exec::units",
            "e::f",
            "exec::run::g::h",
            "exec::i",
            "exec::run",
        ]
    );
}

#[test]
fn comments_and_literals_name_no_module() {
    let source = "// crate::a\n/* crate::b /* crate::c */ crate::d */\n\
                  /// [`crate::e`]\nconst S: &str = \"crate::f \\\" crate::g\";\n\
                  const R: &str = r#\"crate::h\"#; const C: char = '\"';\n\
                  fn x<'a>(_: &'a str) { let _ = crate::real::X; }";
    assert_eq!(mentioned_in(source, &["m"]), ["real::X"]);
    let lines: Vec<usize> = mentioned_modules(&tokenize(source), &[])
        .iter()
        .map(|mention| mention.line)
        .collect();
    assert_eq!(lines, [6]);
}

/// The edges that `source`, in file `a.rs` of a crate with modules `a` and
/// `x`, makes between the top-level modules.
fn edges_from(source: &str) -> Vec<(String, String)> {
    let files = ["a", "x"].map(|name| SourceFile {
        path: PathBuf::from(format!("{name}.rs")),
        module: vec![name.to_owned()],
    });
    let mut graph = ModuleGraph {
        parent: Vec::new(),
        edges: BTreeMap::new(),
    };
    for mention in mentioned_modules(&tokenize(source), &files[0].module) {
        add_edge(&mut graph, &files, &files[0], &mention);
    }
    graph.edges.into_keys().collect()
}

#[test]
fn test_modules_make_no_edge() {
    let edge = [("a".to_owned(), "x".to_owned())];
    assert_eq!(edges_from("mod tests { use crate::x; }"), edge);
    assert_eq!(edges_from("#[cfg(test)]\nmod tests { use crate::x; }"), []);
    assert_eq!(
        edges_from("#[cfg(not(test))] mod tests { use crate::x; }"),
        edge
    );
    assert_eq!(edges_from("#[cfg(test)] mod tests {}\nuse crate::x;"), edge);
}

#[test]
fn test_items_name_no_module() {
    let source = "#[cfg(test)] use crate::a;\n\
                  #[cfg(test)] #[derive(Debug)] pub(crate) struct S<A, B> { f: crate::b::T }\n\
                  #[cfg(test)] impl<A, B> crate::c::X for S<A, B> {}\n\
                  #[cfg(test)] const fn f() { crate::d::f() }\n\
                  #[cfg(test)] const C: X = X { y: crate::e::Y }.with(crate::e::Z);\n\
                  struct T { #[cfg(test)] f: crate::f::T, g: crate::kept1::T }\n\
                  fn g() { #[cfg(test)] crate::g::h(); let _ = crate::kept2::x(); }\n\
                  fn h(x: u8) { match x { #[cfg(test)] 0 => crate::h::f(), _ => crate::kept3::f() } }\n\
                  mod inner { #![cfg(test)] use crate::i; }\n\
                  use crate::kept4;";
    assert_eq!(
        mentioned_in(source, &["m"]),
        ["kept1::T", "kept2::x", "kept3::f", "kept4"]
    );
}

#[test]
fn test_modules_in_files_of_their_own_are_found() {
    let source = "#[cfg(test)]\nmod tests;\nmod real;\n#[cfg(test)] mod inline { mod nested; }";
    let tokens = tokenize(source);
    let names: Vec<&str> = test_module_names(&tokens).collect();
    assert_eq!(names, ["tests"]);
}

#[test]
fn json_reads_what_cargo_metadata_prints() {
    let json = Json::parse(r#"{"a": [null, true, -1.5e3, "x\"\u00e9\ud83d\ude00"], "b": {}}"#);
    let json = json.expect("valid JSON");
    let items = json.get("a").map_or(&[][..], Json::items);
    assert_eq!(items[0], Json::Null);
    assert_eq!(items[3].as_str(), Some("x\"é😀"));
    assert_eq!(json.get("b"), Some(&Json::Object(Vec::new())));
    assert!(Json::parse("[1, 2").is_err());
}

#[test]
fn crate_table_reads_names_in_backticks() {
    let markdown = "## Crates\n\n| crate | path | depends on (workspace crates) |\n\
                    |---|---|---|\n| `a` | `a/` | `b`, `c` |\n| `b` | `b/` | none |\n\
                    \n## Next\n| `z` | | `a` |\n";
    let table = documented_crates(markdown);
    let expected = [("a", vec!["b", "c"]), ("b", vec![])].map(|(name, deps)| {
        (
            name.to_owned(),
            deps.into_iter().map(str::to_owned).collect(),
        )
    });
    assert_eq!(table, BTreeMap::from(expected));
}
