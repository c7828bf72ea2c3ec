//! SQL over the cache: a DataFusion session in which every node's latest
//! output is a table (`node`, or `node__port` for ports other than `out`),
//! plus `dflow_runs`. Queries are read-only unless the caller allows
//! writing ([`Access`]).

use crate::ports::OUT;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::ScalarUDF;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::cache::{CacheStore, LockFile, PortData};
use crate::compile::Plan;
use crate::error::{Error, Result, ResultExt};
use crate::exec::runlog::{RunRecord, load_run_records};
use crate::table::PartRef;

/// A session with dflow's row functions. `target_partitions: Some(1)` gives
/// a deterministic row order (used by `op: sql`); `None` uses every core.
pub fn new_session(udfs: &[ScalarUDF], target_partitions: Option<usize>) -> SessionContext {
    let mut config = SessionConfig::new().with_information_schema(true);
    // Keep classic Utf8/Binary types: operators declare `Utf8` columns, and
    // the cached Parquet stays readable by any tool.
    config
        .options_mut()
        .execution
        .parquet
        .schema_force_view_types = false;
    config.options_mut().sql_parser.map_string_types_to_utf8view = false;
    if let Some(n) = target_partitions {
        config = config.with_target_partitions(n);
    }
    let ctx = SessionContext::new_with_config(config);
    for udf in udfs {
        ctx.register_udf(udf.clone());
    }
    ctx
}

/// The table name of a node's port.
pub fn table_name(node: &str, port: &str) -> String {
    if port == OUT {
        node.to_string()
    } else {
        format!("{node}__{port}")
    }
}

/// Registers cached Parquet partitions as one table (streamed, never loaded
/// whole).
pub fn register_parts(
    ctx: &SessionContext,
    name: &str,
    schema: SchemaRef,
    parts: &[PartRef],
) -> Result<()> {
    let distinct: std::collections::HashSet<&std::path::Path> =
        parts.iter().map(|p| p.path.as_path()).collect();
    let table: Arc<dyn datafusion::catalog::TableProvider> = if parts.is_empty() {
        Arc::new(MemTable::try_new(schema, vec![vec![]])?)
    } else if distinct.len() == parts.len() {
        Arc::new(listing_table(parts, schema)?)
    } else {
        // Partitions with identical content share one cached file; a listing
        // table would read it once, so such tables are a UNION ALL of their
        // parts instead.
        let mut all: Option<datafusion::dataframe::DataFrame> = None;
        for part in parts {
            let one = ctx.read_table(Arc::new(listing_table(
                std::slice::from_ref(part),
                schema.clone(),
            )?))?;
            all = Some(match all {
                None => one,
                Some(df) => df.union(one)?,
            });
        }
        match all {
            Some(df) => df.into_view(),
            None => Arc::new(MemTable::try_new(schema, vec![vec![]])?),
        }
    };
    ctx.deregister_table(name)?;
    ctx.register_table(name, table)?;
    Ok(())
}

fn listing_table(parts: &[PartRef], schema: SchemaRef) -> Result<ListingTable> {
    let urls = parts
        .iter()
        .map(|p| {
            let path = std::path::absolute(&p.path)?;
            ListingTableUrl::parse(path.to_string_lossy()).map_err(Error::from)
        })
        .collect::<Result<Vec<_>>>()?;
    let file_schema = parts
        .first()
        .and_then(|p| parquet_schema(&p.path))
        .unwrap_or(schema);
    url_table(urls, file_schema, ".parquet")
}

fn url_table(
    urls: Vec<ListingTableUrl>,
    schema: SchemaRef,
    extension: &str,
) -> Result<ListingTable> {
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(extension);
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(schema);
    Ok(ListingTable::try_new(config)?)
}

/// Registers Parquet files named by URL (in an object store) as one
/// table of `schema`: what a query on a cluster reads straight from the
/// store. Files named twice (partitions with equal content) are read once
/// per name, as [`register_parts`] does.
pub fn register_urls(
    ctx: &SessionContext,
    name: &str,
    schema: SchemaRef,
    urls: &[String],
) -> Result<()> {
    let parsed = |u: &String| ListingTableUrl::parse(u).map_err(Error::from);
    let distinct: std::collections::HashSet<&String> = urls.iter().collect();
    let table: Arc<dyn datafusion::catalog::TableProvider> = if distinct.len() == urls.len() {
        let urls = urls.iter().map(parsed).collect::<Result<Vec<_>>>()?;
        Arc::new(url_table(urls, schema, "")?)
    } else {
        let mut all: Option<datafusion::dataframe::DataFrame> = None;
        for url in urls {
            let one =
                ctx.read_table(Arc::new(url_table(vec![parsed(url)?], schema.clone(), "")?))?;
            all = Some(match all {
                None => one,
                Some(df) => df.union(one)?,
            });
        }
        match all {
            Some(df) => df.into_view(),
            None => return Ok(()),
        }
    };
    ctx.deregister_table(name)?;
    ctx.register_table(name, table)?;
    Ok(())
}

fn parquet_schema(path: &std::path::Path) -> Option<SchemaRef> {
    let file = std::fs::File::open(path).ok()?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).ok()?;
    Some(builder.schema().clone())
}

/// A session over the latest outputs of every node of `plan`.
pub fn open_session(
    plan: &Plan,
    store: Option<&CacheStore>,
    lock: &LockFile,
    udfs: &[ScalarUDF],
) -> Result<SessionContext> {
    let ctx = new_session(udfs, None);
    let mut records = Vec::new();
    if let Some(store) = store {
        for node in &plan.nodes {
            let Some(nl) = lock.node(&plan.spec.name, &node.id) else {
                continue;
            };
            for (port, ty) in &node.outputs {
                if let Some(o) = nl.outputs.get(port)
                    && let Some(schema) = ty.table_schema()
                    && let Some(data) = PortData::from_lock(o, Some(schema), store)
                {
                    let parts = data.part_refs(store);
                    register_parts(&ctx, &table_name(&node.id, port), schema.clone(), &parts)
                        .context(|| format!("opening the output of `{}`", node.id))?;
                }
            }
        }
        records = load_run_records(store);
    }
    ctx.register_table("dflow_runs", Arc::new(runs_table(&records)?))?;
    Ok(ctx)
}

fn runs_table(records: &[RunRecord]) -> Result<MemTable> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("pipeline", DataType::Utf8, false),
        Field::new("node", DataType::Utf8, false),
        Field::new("op", DataType::Utf8, false),
        Field::new("partition", DataType::Utf8, true),
        Field::new("status", DataType::Utf8, false),
        Field::new("rows", DataType::UInt64, false),
        Field::new("seconds", DataType::Float64, false),
        Field::new("started_unix_ms", DataType::UInt64, false),
        Field::new("note", DataType::Utf8, true),
    ]));
    let strs = |f: &dyn Fn(&RunRecord) -> String| -> ArrayRef {
        Arc::new(StringArray::from(records.iter().map(f).collect::<Vec<_>>()))
    };
    let columns: Vec<ArrayRef> = vec![
        strs(&|r| r.run_id.clone()),
        strs(&|r| r.pipeline.clone()),
        strs(&|r| r.node.clone()),
        strs(&|r| r.op.clone()),
        Arc::new(StringArray::from(
            records
                .iter()
                .map(|r| r.partition.clone())
                .collect::<Vec<_>>(),
        )),
        strs(&|r| r.status.clone()),
        Arc::new(UInt64Array::from(
            records.iter().map(|r| r.rows).collect::<Vec<_>>(),
        )),
        Arc::new(Float64Array::from(
            records.iter().map(|r| r.seconds).collect::<Vec<_>>(),
        )),
        Arc::new(UInt64Array::from(
            records
                .iter()
                .map(|r| r.started_unix_ms)
                .collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            records.iter().map(|r| r.note.clone()).collect::<Vec<_>>(),
        )),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    Ok(MemTable::try_new(schema, vec![vec![batch]])?)
}

/// What a query of `dflow sql` may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Access {
    /// Only read: no DDL (`CREATE EXTERNAL TABLE` reads any file), no DML
    /// (`COPY ... TO` and `INSERT` write files), no statements (`SET`).
    #[default]
    ReadOnly,
    /// Everything DataFusion can do, writing files included
    /// (`dflow sql --allow-write`).
    Write,
}

/// Runs a query to completion; with [`Access::ReadOnly`], a statement that
/// would write or define anything is an [`Error::ReadOnly`] that names the
/// flag allowing it.
pub async fn query(ctx: &SessionContext, sql: &str, access: Access) -> Result<Vec<RecordBatch>> {
    let plan = ctx.state().create_logical_plan(sql).await?;
    if access == Access::ReadOnly {
        let read_only = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        if let Err(e) = read_only.verify_plan(&plan) {
            return Err(Error::ReadOnly(format!(
                "`dflow sql` only reads by default, and this statement would write or \
                 define something ({}); to run COPY, INSERT, CREATE or SET, pass \
                 --allow-write",
                e.strip_backtrace()
            )));
        }
    }
    let df = ctx.execute_logical_plan(plan).await?;
    Ok(df.collect().await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(sql: &str, access: Access) -> Result<Vec<RecordBatch>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let ctx = new_session(&[], None);
        runtime.block_on(query(&ctx, sql, access))
    }

    #[test]
    fn writing_statements_are_refused_unless_allowed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("out.csv");
        let copy = format!("COPY (SELECT 1 AS x) TO '{}'", target.display());
        let source = dir.path().join("in.csv");
        std::fs::write(&source, "x\n1\n").expect("csv");
        let create = format!(
            "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '{}' OPTIONS ('format.has_header' 'true')",
            source.display()
        );
        for sql in [
            copy.as_str(),
            create.as_str(),
            "SET datafusion.execution.batch_size = 1",
        ] {
            let err = run(sql, Access::ReadOnly).expect_err(sql);
            assert_eq!(err.code(), "DF3008", "{sql}: {err}");
            assert!(err.to_string().contains("--allow-write"), "{err}");
        }
        assert!(!target.exists(), "a refused COPY wrote its file");
        // Reading stays allowed, and so does looking at the catalog.
        assert_eq!(run("SELECT 1", Access::ReadOnly).expect("select").len(), 1);
        run("SHOW TABLES", Access::ReadOnly).expect("show tables");
        run("EXPLAIN SELECT 1", Access::ReadOnly).expect("explain");

        run(&copy, Access::Write).expect("COPY with --allow-write");
        assert!(target.exists());
        run(&create, Access::Write).expect("CREATE with --allow-write");
    }
}
