//! What the catalog RPCs answer: the server's SqlInfo (read-only, kql's name and version),
//! the SQL types of kql's columns for GetXdbcTypeInfo, and the tables — kernel tables as
//! `BASE TABLE`, saved queries as `VIEW`, all in catalog `datafusion`, schema `public`.

use std::sync::LazyLock;

use arrow_flight::sql::metadata::{
    SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder,
};
use arrow_flight::sql::{Nullable, Searchable, SqlInfo, XdbcDataType};
use datafusion::arrow::datatypes::SchemaRef;
use kql_engine::Engine;

/// The catalog every table is in.
pub const CATALOG: &str = "datafusion";
/// The schema every table is in.
pub const SCHEMA: &str = "public";
/// Table type of a kernel table.
pub const BASE_TABLE: &str = "BASE TABLE";
/// Table type of a saved query.
pub const VIEW: &str = "VIEW";

/// The answers to GetSqlInfo.
pub static SQL_INFO: LazyLock<SqlInfoData> = LazyLock::new(|| {
    let mut info = SqlInfoDataBuilder::new();
    info.append(SqlInfo::FlightSqlServerName, "kql");
    info.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    info.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
    info.append(SqlInfo::FlightSqlServerReadOnly, true);
    info.append(SqlInfo::FlightSqlServerSql, true);
    info.append(SqlInfo::FlightSqlServerSubstrait, false);
    info.append(SqlInfo::FlightSqlServerTransaction, 0i32);
    info.append(SqlInfo::FlightSqlServerCancel, false);
    info.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    info.build().expect("the SqlInfo values have their documented types")
});

/// The answers to GetXdbcTypeInfo: the SQL types kql's columns use.
pub static XDBC_TYPES: LazyLock<XdbcTypeInfoData> = LazyLock::new(|| {
    let mut types = XdbcTypeInfoDataBuilder::new();
    let kinds = [
        ("BOOLEAN", XdbcDataType::XdbcBit, None),
        ("TINYINT", XdbcDataType::XdbcTinyint, Some(8)),
        ("SMALLINT", XdbcDataType::XdbcSmallint, Some(16)),
        ("INTEGER", XdbcDataType::XdbcInteger, Some(32)),
        ("BIGINT", XdbcDataType::XdbcBigint, Some(64)),
        ("DOUBLE", XdbcDataType::XdbcDouble, Some(53)),
        ("VARCHAR", XdbcDataType::XdbcVarchar, None),
        ("TIMESTAMP", XdbcDataType::XdbcTimestamp, None),
    ];
    for (name, data_type, bits) in kinds {
        types.append(XdbcTypeInfo {
            type_name: name.into(),
            data_type,
            column_size: bits,
            literal_prefix: (name == "VARCHAR").then(|| "'".into()),
            literal_suffix: (name == "VARCHAR").then(|| "'".into()),
            create_params: None,
            nullable: Nullable::NullabilityNullable,
            case_sensitive: name == "VARCHAR",
            searchable: Searchable::Full,
            unsigned_attribute: bits.map(|_| false),
            fixed_prec_scale: false,
            auto_increment: Some(false),
            local_type_name: Some(name.into()),
            minimum_scale: None,
            maximum_scale: None,
            sql_data_type: data_type,
            datetime_subcode: None,
            num_prec_radix: bits.map(|_| 2),
            interval_precision: None,
        });
    }
    types.build().expect("the type rows are well formed")
});

/// One table as GetTables lists it.
pub struct Listed {
    pub name: String,
    pub kind: &'static str,
    pub schema: SchemaRef,
}

/// Every kernel table and saved-query view of `engine`, with its schema.
pub async fn tables(engine: &Engine) -> datafusion::error::Result<Vec<Listed>> {
    let mut listed = Vec::new();
    let kinds = engine
        .tables()
        .into_iter()
        .map(|table| (table.spec().name.to_string(), BASE_TABLE))
        .chain(engine.views().into_iter().map(|view| (view, VIEW)));
    for (name, kind) in kinds {
        let schema = engine.context().table_provider(name.as_str()).await?.schema();
        listed.push(Listed { name, kind, schema });
    }
    Ok(listed)
}
