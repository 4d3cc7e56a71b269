//! `kql serve`: one target's kernel tables over Arrow Flight SQL, so that ADBC, JDBC
//! (DBeaver) and Grafana query them with no kql-specific code.
//!
//! - [`service`]: the Flight SQL RPCs (handshake, statements, prepared statements, catalog);
//! - [`statement`]: one request's own session, its plan under the read-only policy, and
//!   its run under the limits;
//! - [`metadata`]: what GetSqlInfo, GetXdbcTypeInfo and GetTables answer;
//! - [`auth`]: the bearer token, compared in constant time;
//! - [`log`]: one stderr line per statement.
//!
//! Safe to leave running: loopback by default, a non-loopback address only with TLS and a
//! token, read-only by construction, every statement bounded in time, rows, bytes and memory.

mod auth;
mod log;
mod metadata;
mod service;
mod statement;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use kql_tables::declared::Declarations;
use kql_tables::target::Target;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

pub use crate::log::LogFormat;
pub use crate::statement::Limits;

/// How to serve, from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen.
    pub listen: SocketAddr,
    /// PEM certificate chain and key of the server: TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// PEM CA whose client certificates are required (mutual TLS).
    pub client_ca: Option<PathBuf>,
    /// File holding the bearer token clients must present.
    pub token_file: Option<PathBuf>,
    /// What each statement may use.
    pub limits: Limits,
    /// Shape of the log lines.
    pub log_format: LogFormat,
}

/// Serves `target` with its `declarations` until Ctrl-C or SIGTERM; the error is one line.
pub fn run(options: Options, target: Arc<Target>, declarations: Declarations) -> Result<(), String> {
    let token = match &options.token_file {
        Some(path) => Some(auth::read_token(path)?),
        None => None,
    };
    if !options.listen.ip().is_loopback() && (options.tls.is_none() || token.is_none()) {
        return Err(format!(
            "refusing to listen on {} without TLS and a token: give --tls-cert, --tls-key and --token-file, \
             or listen on loopback",
            options.listen
        ));
    }
    if options.client_ca.is_some() && options.tls.is_none() {
        return Err("--client-ca needs --tls-cert and --tls-key".into());
    }
    let tls = tls_config(&options)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the server runtime: {e}"))?;
    runtime.block_on(async move {
        let service = service::KqlFlightSql::new(target, declarations, token.clone(), &options)?;
        let incoming = TcpIncoming::bind(options.listen)
            .map_err(|e| format!("cannot listen on {}: {e}", options.listen))?;
        let bound = incoming.local_addr().map_err(|e| format!("cannot listen on {}: {e}", options.listen))?;
        let mut server = Server::builder().timeout(options.limits.timeout + Duration::from_secs(5));
        if let Some(tls) = tls {
            server = server.tls_config(tls).map_err(|e| format!("bad TLS setup: {e}"))?;
        }
        eprintln!(
            "kql serve: listening on {bound} ({}, {})",
            if options.tls.is_some() { "TLS" } else { "plain TCP" },
            if token.is_some() { "token required" } else { "no token" }
        );
        server
            .add_service(FlightServiceServer::new(service))
            .serve_with_incoming_shutdown(incoming, shutdown())
            .await
            .map_err(|e| format!("server failed: {e}"))
    })
}

/// The TLS configuration the options ask for, its files read.
fn tls_config(options: &Options) -> Result<Option<ServerTlsConfig>, String> {
    let Some((cert, key)) = &options.tls else { return Ok(None) };
    let read =
        |path: &PathBuf| std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()));
    let mut config = ServerTlsConfig::new().identity(Identity::from_pem(read(cert)?, read(key)?));
    if let Some(ca) = &options.client_ca {
        config = config.client_ca_root(Certificate::from_pem(read(ca)?));
    }
    Ok(Some(config))
}

/// Resolves at Ctrl-C or SIGTERM.
async fn shutdown() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
