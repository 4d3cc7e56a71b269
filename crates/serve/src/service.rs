//! The Flight SQL RPCs kql answers. Every call is authorised first; a statement is planned
//! (and checked read-only) at GetFlightInfo, planned and checked again and run at DoGet, so
//! a ticket carries only SQL text, never a plan. Prepared statements keep their SQL and
//! bound parameters here until closed; parameters are coerced to the types the plan needs.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, CommandGetCatalogs, CommandGetDbSchemas, CommandGetSqlInfo,
    CommandGetTableTypes, CommandGetTables, CommandGetXdbcTypeInfo, CommandPreparedStatementQuery,
    CommandStatementQuery, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage,
    SchemaAsIpc, Ticket,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{ParamValues, ScalarValue};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
use kql_engine::Engine;
use kql_tables::declared::Declarations;
use kql_tables::target::Target;
use prost::Message;
use tokio::sync::Semaphore;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use crate::log::{LogFormat, StatementLog};
use crate::metadata::{self, BASE_TABLE, CATALOG, SCHEMA, VIEW};
use crate::statement::{self, Limits, Shared};
use crate::{Options, auth};

/// Most prepared statements kept open at once (clients that never close them).
const MAX_PREPARED: usize = 4096;

type DoGetStream = <KqlFlightSql as FlightService>::DoGetStream;

/// A prepared statement: its SQL, the types its parameters need, its result schema, and
/// the parameter values bound last.
struct Prepared {
    sql: String,
    parameter_types: Vec<Option<DataType>>,
    params: Vec<ScalarValue>,
}

/// kql's Flight SQL service over one target.
pub struct KqlFlightSql {
    shared: Shared,
    token: Option<String>,
    limits: Limits,
    log_format: LogFormat,
    running: Arc<Semaphore>,
    prepared: Mutex<HashMap<Vec<u8>, Prepared>>,
    next_handle: AtomicU64,
}

impl KqlFlightSql {
    /// The service over `target`; the engine every request starts from is built here.
    pub fn new(
        target: Arc<Target>,
        declarations: Declarations,
        token: Option<String>,
        options: &Options,
    ) -> Result<Self, String> {
        let engine = kql_tables::engine_with(&target, &declarations).map_err(|e| e.to_string())?;
        Ok(KqlFlightSql {
            shared: Shared { target, declarations, engine: Arc::new(engine) },
            token,
            limits: options.limits,
            log_format: options.log_format,
            running: Arc::new(Semaphore::new(options.limits.concurrent)),
            prepared: Mutex::default(),
            next_handle: AtomicU64::new(1),
        })
    }

    /// Lets `request` through if it is authorised; returns who sent it, for the log.
    async fn authorize<T>(&self, request: &Request<T>) -> Result<String, Status> {
        let client = request.remote_addr().map_or_else(|| "unknown".to_string(), |addr| addr.to_string());
        auth::check(self.token.as_deref(), request.metadata(), &client, self.log_format).await?;
        Ok(client)
    }

    fn engine(&self) -> &Engine {
        &self.shared.engine
    }

    fn prepared(&self) -> MutexGuard<'_, HashMap<Vec<u8>, Prepared>> {
        self.prepared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Plans `sql` for GetFlightInfo: its result schema, refusals logged.
    async fn schema_of(&self, sql: &str, client: &str) -> Result<(SchemaRef, Vec<Option<DataType>>), Status> {
        let log = StatementLog::start(self.log_format, client, sql);
        let planned = statement::plan(&self.shared, sql, &self.limits)
            .await
            .and_then(|planned| Ok((parameter_types(&planned.plan)?, planned)));
        match planned {
            Ok((types, planned)) => Ok((Arc::new(planned.plan.schema().as_arrow().clone()), types)),
            Err(status) => {
                log.finish(0, Some(&status));
                Err(status)
            }
        }
    }

    /// Plans `sql` again (checking it again), and starts it with `params` for DoGet within
    /// the limits; its rows stream as they are made.
    async fn execute(
        &self,
        sql: &str,
        params: Vec<ScalarValue>,
        client: &str,
    ) -> Result<Response<DoGetStream>, Status> {
        let log = StatementLog::start(self.log_format, client, sql);
        let started = async {
            let permit = Arc::clone(&self.running)
                .try_acquire_owned()
                .map_err(|_| self.limits.too_many_statements())?;
            let planned = statement::plan(&self.shared, sql, &self.limits).await?;
            Ok((planned, permit))
        };
        match started.await {
            Ok((planned, permit)) => {
                let running = statement::start(planned, ParamValues::from(params), self.limits, permit, log)?;
                Ok(batch_stream(running.schema, running.batches))
            }
            Err(status) => {
                log.finish(0, Some(&status));
                Err(status)
            }
        }
    }

    /// The SQL and bound parameters of the prepared statement `handle`.
    fn prepared_statement(&self, handle: &[u8]) -> Result<(String, Vec<ScalarValue>), Status> {
        let prepared = self.prepared();
        let statement =
            prepared.get(handle).ok_or_else(|| Status::not_found("no such prepared statement"))?;
        if statement.params.len() != statement.parameter_types.len() {
            return Err(Status::invalid_argument(format!(
                "the prepared statement takes {} parameters and {} are bound",
                statement.parameter_types.len(),
                statement.params.len()
            )));
        }
        Ok((statement.sql.clone(), statement.params.clone()))
    }
}

#[tonic::async_trait]
impl FlightSqlService for KqlFlightSql {
    type FlightService = KqlFlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>, Status> {
        self.authorize(&request).await?;
        let token = self.token.clone().unwrap_or_default();
        let answer = HandshakeResponse { protocol_version: 0, payload: token.clone().into() };
        let mut response: Response<Pin<Box<dyn Stream<Item = _> + Send>>> =
            Response::new(Box::pin(futures::stream::iter([Ok(answer)])));
        if !token.is_empty() {
            let bearer = MetadataValue::try_from(format!("Bearer {token}"))
                .map_err(|_| Status::internal("the token is not a valid header value"))?;
            response.metadata_mut().insert("authorization", bearer);
        }
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let client = self.authorize(&request).await?;
        let (schema, _) = self.schema_of(&query.query, &client).await?;
        let ticket = TicketStatementQuery { statement_handle: query.query.into_bytes().into() };
        flight_info(&schema, ticket.as_any().encode_to_vec(), request.into_inner())
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let client = self.authorize(&request).await?;
        let sql = String::from_utf8(ticket.statement_handle.to_vec())
            .map_err(|_| Status::invalid_argument("the ticket is not SQL text"))?;
        self.execute(&sql, Vec::new(), &client).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let client = self.authorize(&request).await?;
        let (schema, parameter_types) = self.schema_of(&query.query, &client).await?;
        let parameters = Schema::new(
            parameter_types
                .iter()
                .enumerate()
                .map(|(i, ty)| Field::new(format!("${}", i + 1), ty.clone().unwrap_or(DataType::Null), true))
                .collect::<Vec<_>>(),
        );
        let handle =
            format!("kql-prepared-{}", self.next_handle.fetch_add(1, Ordering::Relaxed)).into_bytes();
        let mut prepared = self.prepared();
        if prepared.len() >= MAX_PREPARED {
            return Err(Status::resource_exhausted(format!(
                "{MAX_PREPARED} prepared statements are open: close some first"
            )));
        }
        prepared.insert(handle.clone(), Prepared { sql: query.query, parameter_types, params: Vec::new() });
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into(),
            dataset_schema: ipc_schema(&schema)?.into(),
            parameter_schema: ipc_schema(&parameters)?.into(),
        })
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        self.authorize(&request).await?;
        let data = request.into_inner().map_err(|e| FlightError::Tonic(Box::new(e)));
        let batches: Vec<RecordBatch> =
            FlightRecordBatchStream::new_from_flight_data(data).try_collect().await.map_err(Status::from)?;
        let handle = query.prepared_statement_handle.to_vec();
        let mut prepared = self.prepared();
        let statement =
            prepared.get_mut(&handle).ok_or_else(|| Status::not_found("no such prepared statement"))?;
        statement.params = coerce(&batches, &statement.parameter_types)?;
        Ok(DoPutPreparedStatementResult { prepared_statement_handle: Some(handle.into()) })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        command: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let client = self.authorize(&request).await?;
        let (sql, _) = self.prepared_statement(&command.prepared_statement_handle)?;
        let (schema, _) = self.schema_of(&sql, &client).await?;
        flight_info(&schema, command.as_any().encode_to_vec(), request.into_inner())
    }

    async fn do_get_prepared_statement(
        &self,
        command: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let client = self.authorize(&request).await?;
        let (sql, params) = self.prepared_statement(&command.prepared_statement_handle)?;
        self.execute(&sql, params, &client).await
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        self.authorize(&request).await?;
        self.prepared().remove(query.prepared_statement_handle.as_ref());
        Ok(())
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&request).await?;
        let schema = query.into_builder().schema();
        flight_info(&schema, query.as_any().encode_to_vec(), request.into_inner())
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.authorize(&request).await?;
        let mut catalogs = query.into_builder();
        catalogs.append(CATALOG);
        one_batch(catalogs.build())
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&request).await?;
        let schema = query.clone().into_builder().schema();
        flight_info(&schema, query.as_any().encode_to_vec(), request.into_inner())
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.authorize(&request).await?;
        let mut schemas = query.into_builder();
        schemas.append(CATALOG, SCHEMA);
        one_batch(schemas.build())
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&request).await?;
        let schema = query.clone().into_builder().schema();
        flight_info(&schema, query.as_any().encode_to_vec(), request.into_inner())
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.authorize(&request).await?;
        let mut tables = query.into_builder();
        for table in metadata::tables(self.engine()).await.map_err(|e| statement::status(&e))? {
            tables
                .append(CATALOG, SCHEMA, &table.name, table.kind, &table.schema)
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        one_batch(tables.build())
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&request).await?;
        let schema = query.into_builder().schema();
        flight_info(&schema, query.as_any().encode_to_vec(), request.into_inner())
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.authorize(&request).await?;
        let mut types = query.into_builder();
        types.append(BASE_TABLE);
        types.append(VIEW);
        one_batch(types.build())
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&request).await?;
        let schema = query.clone().into_builder(&metadata::SQL_INFO).schema();
        flight_info(&schema, query.as_any().encode_to_vec(), request.into_inner())
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.authorize(&request).await?;
        one_batch(query.into_builder(&metadata::SQL_INFO).build())
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&request).await?;
        let schema = query.into_builder(&metadata::XDBC_TYPES).schema();
        flight_info(&schema, query.as_any().encode_to_vec(), request.into_inner())
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.authorize(&request).await?;
        one_batch(query.into_builder(&metadata::XDBC_TYPES).build())
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// A FlightInfo of `schema` whose one endpoint's ticket is `ticket`, on this connection.
fn flight_info(
    schema: &Schema,
    ticket: Vec<u8>,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(format!("cannot encode the schema: {e}")))?
        .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
        .with_descriptor(descriptor);
    Ok(Response::new(info))
}

/// `schema` as an IPC schema message.
fn ipc_schema(schema: &Schema) -> Result<Vec<u8>, Status> {
    let message: Result<IpcMessage, _> = SchemaAsIpc::new(schema, &IpcWriteOptions::default()).try_into();
    message
        .map(|IpcMessage(bytes)| bytes.to_vec())
        .map_err(|e| Status::internal(format!("cannot encode the schema: {e}")))
}

/// The rows of a catalog answer as a DoGet stream.
fn one_batch<E: std::fmt::Display>(batch: Result<RecordBatch, E>) -> Result<Response<DoGetStream>, Status> {
    let batch = batch.map_err(|e| Status::internal(e.to_string()))?;
    Ok(batch_stream(batch.schema(), futures::stream::iter([Ok(batch)]).boxed()))
}

/// `batches` (rows of `schema`) as a DoGet stream, encoded as they come.
fn batch_stream(
    schema: SchemaRef,
    batches: BoxStream<'static, Result<RecordBatch, Status>>,
) -> Response<DoGetStream> {
    let data = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(batches.map_err(|status| FlightError::Tonic(Box::new(status))))
        .map_err(Status::from);
    Response::new(data.boxed())
}

/// The types the placeholders `$1`, `$2`, … of `plan` need, in order.
fn parameter_types(plan: &datafusion::logical_expr::LogicalPlan) -> Result<Vec<Option<DataType>>, Status> {
    let types = plan.get_parameter_types().map_err(|e| statement::status(&e))?;
    (1..=types.len())
        .map(|i| {
            types.get(&format!("${i}")).cloned().ok_or_else(|| {
                Status::invalid_argument(
                    "name placeholders $1, $2, … in order (named ones cannot be bound here)",
                )
            })
        })
        .collect()
}

/// The one row of parameters in `batches`, each value cast to what the plan needs (a
/// client binds a Python int as Int64 against a UInt16 column).
fn coerce(batches: &[RecordBatch], types: &[Option<DataType>]) -> Result<Vec<ScalarValue>, Status> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let Some(batch) = batches.iter().find(|batch| batch.num_rows() > 0) else {
        return Err(Status::invalid_argument("no parameter row was bound"));
    };
    if rows != 1 {
        return Err(Status::invalid_argument(format!(
            "bind one row of parameters per execution, not {rows}"
        )));
    }
    if batch.num_columns() != types.len() {
        return Err(Status::invalid_argument(format!(
            "the statement takes {} parameters, {} were bound",
            types.len(),
            batch.num_columns()
        )));
    }
    batch
        .columns()
        .iter()
        .zip(types)
        .enumerate()
        .map(|(i, (column, wanted))| {
            let value = ScalarValue::try_from_array(column, 0).map_err(|e| statement::status(&e))?;
            match wanted {
                Some(wanted) if value.data_type() != *wanted => value.cast_to(wanted).map_err(|e| {
                    Status::invalid_argument(format!("parameter ${} cannot be {wanted}: {e}", i + 1))
                }),
                _ => Ok(value),
            }
        })
        .collect()
}
