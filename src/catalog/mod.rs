//! The catalog .duckdb file, owned here: one writer at a time (`lock`), the session that
//! opens it (`session`), the views over external models (`views`) and lakeflow's state tables
//! (`state`). Commands that write the catalog go through [`Catalog::open`] and
//! [`Catalog::finish`].

pub mod lock;
pub mod session;
pub mod state;
pub mod views;

use crate::error::{Error, Result};
use crate::model::relation::quote_ident;
use crate::project::Target;
use duckdb::Connection;
use std::collections::HashSet;

pub use lock::CatalogLock;
pub use views::{external_view_sql, folder_view_sql, reader_sql};

/// The catalog open for writing: its lock held, its session open, its state tables there.
pub struct Catalog {
    pub conn: Connection,
    _lock: Option<CatalogLock>,
}

impl Catalog {
    /// Takes the lock (refused while another lakeflow writes this catalog), opens the session
    /// the profile describes, and creates the state tables if missing.
    pub fn open(target: &Target, command: &str) -> Result<Catalog> {
        let lock = CatalogLock::acquire(&target.catalog, command)?;
        let conn = session::open(target)?;
        state::ensure(&conn)?;
        Ok(Catalog { conn, _lock: lock })
    }

    /// Folds the write-ahead log into the catalog file, so readers of the file see what this
    /// run did; then releases the session and the lock.
    pub fn finish(self) -> Result<()> {
        self.conn
            .execute_batch("checkpoint")
            .map_err(|e| Error::new("LF505", format!("cannot checkpoint the catalog: {e}")))
    }
}

pub fn ensure_schemas<'a>(
    conn: &Connection,
    schemas: impl IntoIterator<Item = &'a str>,
) -> Result<()> {
    let mut seen = HashSet::new();
    for s in schemas {
        if seen.insert(s) {
            conn.execute_batch(&format!("create schema if not exists {}", quote_ident(s)))
                .map_err(|e| {
                    Error::new(
                        "LF503",
                        format!("cannot create schema {s} in the catalog: {e}"),
                    )
                })?;
        }
    }
    Ok(())
}

/// The relations of the target's catalog file, read without taking the write lock (none when
/// there is no catalog yet or it cannot be read now).
pub fn existing_relations_read_only(target: &crate::project::Target) -> HashSet<(String, String)> {
    let path = std::path::Path::new(&target.catalog);
    if target.catalog == ":memory:" || !path.exists() {
        return HashSet::new();
    }
    let config = duckdb::Config::default().access_mode(duckdb::AccessMode::ReadOnly);
    config
        .ok()
        .and_then(|c| Connection::open_with_flags(path, c).ok())
        .and_then(|conn| existing_relations(&conn).ok())
        .unwrap_or_default()
}

/// Relations that exist in the catalog now, as (schema, name).
pub fn existing_relations(conn: &Connection) -> Result<HashSet<(String, String)>> {
    let mut stmt = conn
        .prepare("select table_schema, table_name from information_schema.tables")
        .map_err(|e| Error::new("LF504", format!("cannot read the catalog: {e}")))?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .map_err(|e| Error::new("LF504", format!("cannot read the catalog: {e}")))?;
    Ok(rows.filter_map(|r| r.ok()).collect())
}
