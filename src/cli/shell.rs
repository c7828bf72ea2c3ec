//! Query output formats and the interactive SQL shell of `dflow sql`.

use std::path::Path;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::SessionContext;
use dflow_engine::Error;
use dflow_engine::sql::Access;
use rustyline::error::ReadlineError;

use super::TableFormat;

pub fn format_batches(batches: &[RecordBatch], format: TableFormat) -> Result<String, Error> {
    match format {
        TableFormat::Table => Ok(format!("{}\n", pretty_format_batches(batches)?)),
        TableFormat::Csv => {
            let mut buf = Vec::new();
            {
                let mut w = datafusion::arrow::csv::Writer::new(&mut buf);
                for b in batches {
                    w.write(b)?;
                }
            }
            Ok(String::from_utf8_lossy(&buf).into_owned())
        }
        TableFormat::Json => {
            let mut buf = Vec::new();
            {
                let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut buf);
                for b in batches {
                    w.write(b)?;
                }
                w.finish()?;
            }
            Ok(String::from_utf8_lossy(&buf).into_owned())
        }
    }
}

const HELP: &str = "end statements with `;`.  \\d lists tables, \\d NAME describes one, \\q quits";

/// The interactive shell: statements end with `;`, history in the cache dir.
pub fn repl(
    ctx: &SessionContext,
    runtime: &tokio::runtime::Runtime,
    format: TableFormat,
    access: Access,
    cache_root: &Path,
) -> Result<(), Error> {
    let mut rl = rustyline::DefaultEditor::new()
        .map_err(|e| Error::internal(format!("cannot start the shell: {e}")))?;
    let history = cache_root.join("sql_history");
    let _ = rl.load_history(&history);
    println!("dflow sql — {HELP}");
    let mut statement = String::new();
    loop {
        let prompt = if statement.is_empty() {
            "dflow> "
        } else {
            "   ..> "
        };
        match rl.readline(prompt) {
            Ok(line) => {
                let trimmed = line.trim();
                if statement.is_empty() && trimmed.starts_with('\\') {
                    let _ = rl.add_history_entry(trimmed);
                    match trimmed {
                        "\\q" => break,
                        "\\?" | "\\h" => println!("{HELP}"),
                        "\\d" => run(ctx, runtime, "SHOW TABLES", format, access),
                        cmd if cmd.starts_with("\\d ") => {
                            let t = cmd[3..].trim();
                            run(ctx, runtime, &format!("DESCRIBE {t}"), format, access)
                        }
                        other => println!("unknown command {other}; {HELP}"),
                    }
                    continue;
                }
                statement.push_str(&line);
                statement.push('\n');
                if trimmed.ends_with(';') {
                    let _ = rl.add_history_entry(statement.trim());
                    run(
                        ctx,
                        runtime,
                        statement.trim().trim_end_matches(';'),
                        format,
                        access,
                    );
                    statement.clear();
                }
            }
            Err(ReadlineError::Interrupted) => statement.clear(),
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(Error::internal(format!("shell: {e}"))),
        }
    }
    if let Some(parent) = history.parent()
        && parent.is_dir()
    {
        let _ = rl.save_history(&history);
    }
    Ok(())
}

fn run(
    ctx: &SessionContext,
    runtime: &tokio::runtime::Runtime,
    sql: &str,
    format: TableFormat,
    access: Access,
) {
    match runtime
        .block_on(dflow_engine::sql::query(ctx, sql, access))
        .and_then(|b| format_batches(&b, format))
    {
        Ok(text) => print!("{text}"),
        Err(e) => eprintln!("error: {e}"),
    }
}
