//! `op: sql` — a DataFusion query over the node's inputs, each input port a
//! table named after the port.

use crate::ports::OUT;
use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::operator::{Input, InputPorts, Operator, Partitioning, PlanContext, PortType, Task};
use crate::registry::{BuildError, Registry};
use crate::sql::{new_session, register_parts};

/// Params of `op: sql`.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlParams {
    /// The query. Each input port is a table of that name; dflow's row
    /// functions are available. Queries run on one partition of DataFusion
    /// so that row order is deterministic (and so are cache digests).
    pub query: String,
    /// Run the query once per partition of this input port (the others are
    /// read whole), so new source files compute only their own partitions.
    /// Default: run once over everything.
    #[serde(default)]
    pub partition_by: Option<String>,
}

/// The `sql` operator: runs one query over its input tables.
pub struct SqlOp {
    params: SqlParams,
}

/// Registers `op: sql`.
pub fn register(registry: &mut Registry) {
    registry.register(
        "sql",
        "DataFusion SQL over the input ports (each a table named after its port)",
        |p: SqlParams, _ctx| {
            let statements = Parser::parse_sql(&GenericDialect {}, &p.query).map_err(|e| {
                BuildError::invalid("/query", format!("the query does not parse: {e}"))
            })?;
            if statements.len() != 1 {
                return Err(BuildError::invalid(
                    "/query",
                    format!("expected one statement, found {}", statements.len()),
                ));
            }
            Ok(Arc::new(SqlOp { params: p }) as Arc<dyn Operator>)
        },
    );
}

fn no_ddl() -> datafusion::execution::context::SQLOptions {
    datafusion::execution::context::SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

impl SqlOp {
    async fn stream(&self, ctx: &SessionContext) -> Result<SendableRecordBatchStream> {
        let df = ctx.sql_with_options(&self.params.query, no_ddl()).await?;
        Ok(df.execute_stream().await?)
    }
}

fn session(udfs: &[ScalarUDF]) -> SessionContext {
    new_session(udfs, Some(1))
}

/// View types (`Utf8View`, `BinaryView`) that some functions still return
/// become their classic forms, so ports hold the types operators declare.
fn classic_type(t: &DataType) -> DataType {
    match t {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        other => other.clone(),
    }
}

fn classic_schema(schema: &Schema) -> Schema {
    Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| {
                f.as_ref()
                    .clone()
                    .with_data_type(classic_type(f.data_type()))
            })
            .collect::<Vec<_>>(),
    )
}

fn to_classic(batch: RecordBatch) -> Result<RecordBatch> {
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| classic_type(f.data_type()) != *f.data_type())
    {
        return Ok(batch);
    }
    let schema = Arc::new(classic_schema(&batch.schema()));
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| cast(c, f.data_type()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema, columns)?)
}

impl Operator for SqlOp {
    fn version(&self) -> u32 {
        1
    }

    fn partitioning(&self) -> Partitioning {
        match &self.params.partition_by {
            Some(port) => Partitioning::PerPartition { port: port.clone() },
            None => Partitioning::Global,
        }
    }

    fn input_ports(&self) -> InputPorts {
        InputPorts::AnyTables
    }

    fn output_ports(
        &self,
        ctx: &PlanContext,
        inputs: &BTreeMap<String, PortType>,
    ) -> Result<BTreeMap<String, PortType>> {
        if let Some(p) = &self.params.partition_by
            && !inputs.contains_key(p)
        {
            return Err(Error::config(format!(
                "`partition_by: {p}` names no input port; the inputs are: {}",
                inputs.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        let session = session(&ctx.udfs);
        for (port, ty) in inputs {
            if let PortType::Table(schema) = ty {
                session.register_table(
                    port.as_str(),
                    Arc::new(MemTable::try_new(schema.clone(), vec![vec![]])?),
                )?;
            }
        }
        let schema = ctx.runtime.block_on(async {
            let df = session
                .sql_with_options(&self.params.query, no_ddl())
                .await?;
            Ok::<_, Error>(classic_schema(df.schema().as_arrow()))
        })?;
        Ok(BTreeMap::from([(OUT.to_string(), PortType::table(schema))]))
    }

    fn execute(&self, task: &mut Task<'_>) -> Result<()> {
        let session = session(task.udfs);
        for (port, input) in task.inputs {
            if let Input::Table(t) = input {
                register_parts(&session, port, t.schema.clone(), &t.parts)?;
            }
        }
        let runtime = task.runtime.clone();
        runtime.block_on(async {
            use futures::StreamExt;
            let mut stream = self.stream(&session).await?;
            while let Some(batch) = stream.next().await {
                task.outputs.write(OUT, &to_classic(batch?)?)?;
            }
            Ok(())
        })
    }
}
