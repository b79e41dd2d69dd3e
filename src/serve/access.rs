//! Who may ask what: the bearer tokens `lakeflow serve` takes, and for a token limited to
//! some schemas, the check that a query reads nothing else.
//!
//! The check reads DuckDB's own parse of the query (`json_serialize_sql`): every relation it
//! names must be a table or view of an allowed schema in the replica (or a CTE of the
//! query), and the only table functions are the ones that make rows from their arguments.
//! Files, other catalogs, metadata functions and `SHOW` are refused, so a limited token can
//! neither read another schema's data nor list it. Views of an allowed schema read what
//! they are defined over, as their owner meant them to.

use crate::error::{Error, Result};
use duckdb::Connection;
use std::collections::HashSet;

/// A bearer token: its name (the only part ever logged), its secret, and the schemas it
/// may read (None: all of them).
pub struct Token {
    pub name: String,
    secret: String,
    pub schemas: Option<Vec<String>>,
}

fn token_error(message: impl Into<String>) -> Error {
    Error::new("LF606", message)
}

/// The tokens from `LAKEFLOW_SERVE_TOKENS` (entries separated by commas) and from a file
/// (an entry per line, `#` comments): `name:token`, or `name:token:schema+schema` for a
/// token that reads only those schemas. None is an error, as the server would be open.
pub fn tokens(env: Option<&str>, file: Option<&std::path::Path>) -> Result<Vec<Token>> {
    let mut text = env.unwrap_or_default().replace(',', "\n");
    if let Some(file) = file {
        let read =
            std::fs::read_to_string(file).map_err(|e| Error::io("LF606", "read", file, e))?;
        text.push('\n');
        text.push_str(&read);
    }
    let mut out: Vec<Token> = Vec::new();
    for (i, line) in text.lines().map(str::trim).enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.splitn(3, ':').map(str::trim);
        let (name, secret, schemas) = (parts.next(), parts.next(), parts.next());
        let (Some(name), Some(secret)) = (name, secret) else {
            return Err(entry_error(i));
        };
        if name.is_empty() || secret.len() < 16 {
            return Err(entry_error(i));
        }
        let schemas = match schemas {
            None => None,
            Some(list) => {
                let names: Vec<String> = list
                    .split(|c: char| c == '+' || c.is_whitespace())
                    .filter(|s| !s.is_empty())
                    .map(str::to_lowercase)
                    .collect();
                if names.is_empty() {
                    return Err(entry_error(i));
                }
                Some(names)
            }
        };
        if out.iter().any(|t| t.name == name) {
            return Err(token_error(format!(
                "token entry {}: the name '{name}' is used twice",
                i + 1
            ))
            .hint("give each token its own name; the name is what the audit log shows"));
        }
        out.push(Token {
            name: name.to_string(),
            secret: secret.to_string(),
            schemas,
        });
    }
    if out.is_empty() {
        return Err(token_error("lakeflow serve needs at least one bearer token")
            .hint("set LAKEFLOW_SERVE_TOKENS='name:token' or pass --tokens-file with `name:token` lines"));
    }
    Ok(out)
}

fn entry_error(i: usize) -> Error {
    token_error(format!(
        "token entry {} is not `name:token` or `name:token:schema+schema`, with a token of 16 characters or more (and no `:`)",
        i + 1
    ))
    .hint("write each token as `name:token`, e.g. `bi:$(openssl rand -hex 24)`, or `bi:<token>:gold` to let it read only gold")
}

/// The token an `Authorization` header carries, if it is one of `tokens`.
pub fn token_of<'a>(authorization: Option<&str>, tokens: &'a [Token]) -> Option<&'a Token> {
    let given = authorization?.strip_prefix("Bearer ")?.trim();
    // Every token is compared, each in time independent of where it differs.
    tokens.iter().fold(None, |found, t| {
        if constant_time_eq(t.secret.as_bytes(), given.as_bytes()) {
            Some(t)
        } else {
            found
        }
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Token {
    /// Whether the token may see relations of `schema`.
    pub fn sees(&self, schema: &str) -> bool {
        self.schemas
            .as_ref()
            .is_none_or(|s| s.iter().any(|x| x.eq_ignore_ascii_case(schema)))
    }

    /// Refuses SQL that reads anything outside the token's schemas (Ok for an unlimited
    /// token) with the status to answer: 403 for what the token may not read, 400 for SQL
    /// DuckDB cannot parse as SELECTs; the message says what was refused.
    pub fn check(&self, conn: &Connection, sql: &str) -> std::result::Result<(), (u16, String)> {
        let Some(schemas) = &self.schemas else {
            return Ok(());
        };
        let internal = |e: String| (500, format!("the query cannot be checked: {e}"));
        let tree = crate::query::parse(conn, sql).map_err(internal)?;
        if tree.get("error") != Some(&serde_json::Value::Bool(false)) {
            let why = tree
                .get("error_message")
                .and_then(|m| m.as_str())
                .unwrap_or("it is not one SELECT statement");
            return Err((
                400,
                format!("the query is not one this token may run: {why}"),
            ));
        }
        let (database, relations) = relations(conn).map_err(internal)?;
        let allowed: HashSet<(String, String)> = relations
            .into_iter()
            .filter(|(s, _)| schemas.contains(s))
            .collect();
        let mut walk = Walk {
            database,
            allowed: &allowed,
            ctes: Vec::new(),
        };
        walk.visit(&tree).map_err(|why| (403, why))
    }
}

/// The current database's name and its tables and views (schema, name), lowercased.
fn relations(conn: &Connection) -> std::result::Result<(String, Vec<(String, String)>), String> {
    let failed = |e: duckdb::Error| e.to_string();
    let database: String = conn
        .query_row("select current_database()", [], |r| r.get(0))
        .map_err(failed)?;
    let mut stmt = conn
        .prepare(
            "select lower(schema_name), lower(table_name) from duckdb_tables() where database_name = current_database() \
             union all select lower(schema_name), lower(view_name) from duckdb_views() where database_name = current_database() and not internal",
        )
        .map_err(failed)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(failed)?;
    Ok((
        database.to_lowercase(),
        rows.filter_map(|r| r.ok()).collect(),
    ))
}

/// Table functions that only make rows from their arguments.
const ROW_MAKERS: &[&str] = &["range", "generate_series", "unnest"];

/// The table references that only combine others.
const COMBINING: &[&str] = &["JOIN", "SUBQUERY", "EXPRESSION_LIST", "EMPTY"];

struct Walk<'a> {
    database: String,
    allowed: &'a HashSet<(String, String)>,
    /// The CTE names in scope where the walk is.
    ctes: Vec<String>,
}

impl Walk<'_> {
    fn visit(&mut self, v: &serde_json::Value) -> std::result::Result<(), String> {
        match v {
            serde_json::Value::Object(map) => {
                let scoped = self.ctes.len();
                if let Some(entries) = map
                    .get("cte_map")
                    .and_then(|m| m.get("map"))
                    .and_then(|m| m.as_array())
                {
                    for e in entries {
                        if let Some(k) = e.get("key").and_then(|k| k.as_str()) {
                            self.ctes.push(k.to_lowercase());
                        }
                    }
                }
                // A table reference has a type and an alias, and no expression class.
                let is_ref = !map.contains_key("class") && map.contains_key("alias");
                if is_ref && let Some(kind) = map.get("type").and_then(|t| t.as_str()) {
                    self.table_ref(kind, map)?;
                }
                for x in map.values() {
                    self.visit(x)?;
                }
                self.ctes.truncate(scoped);
                Ok(())
            }
            serde_json::Value::Array(items) => items.iter().try_for_each(|x| self.visit(x)),
            _ => Ok(()),
        }
    }

    fn table_ref(
        &self,
        kind: &str,
        map: &serde_json::Map<String, serde_json::Value>,
    ) -> std::result::Result<(), String> {
        let text = |k: &str| {
            map.get(k)
                .and_then(|x| x.as_str())
                .unwrap_or("")
                .to_lowercase()
        };
        match kind {
            "BASE_TABLE" => {
                let (catalog, schema, name) = (
                    text("catalog_name"),
                    text("schema_name"),
                    text("table_name"),
                );
                if catalog.is_empty() && schema.is_empty() && self.ctes.contains(&name) {
                    return Ok(());
                }
                let schema = if schema.is_empty() {
                    "main".to_string()
                } else {
                    schema
                };
                let shown = format!("{schema}.{name}");
                if !(catalog.is_empty() || catalog == self.database)
                    || !self.allowed.contains(&(schema, name))
                {
                    return Err(format!(
                        "this token may not read {shown}: it reads only tables and views of its schemas"
                    ));
                }
                Ok(())
            }
            "TABLE_FUNCTION" => {
                let function = map
                    .get("function")
                    .and_then(|f| f.get("function_name"))
                    .and_then(|f| f.as_str())
                    .unwrap_or("")
                    .to_lowercase();
                if ROW_MAKERS.contains(&function.as_str()) {
                    Ok(())
                } else {
                    Err(format!(
                        "this token may not call the table function {function}(): it reads only tables and views of its schemas"
                    ))
                }
            }
            // DESCRIBE and SUMMARIZE of what the query reads; SHOW of a catalog is refused.
            "SHOW_REF" if text("table_name").is_empty() => Ok(()),
            k if COMBINING.contains(&k) => Ok(()),
            other => Err(format!(
                "this token may not run queries of this kind ({other})"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limited(schemas: &[&str]) -> Token {
        Token {
            name: "t".into(),
            secret: "x".repeat(16),
            schemas: Some(schemas.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn a_limited_token_reads_only_its_schemas() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "create schema gold; create schema silver;
             create table silver.s as select 1 as a;
             create view gold.g as select a from silver.s;
             create table main.m as select 2 as b;",
        )
        .unwrap();
        let gold = limited(&["gold"]);
        for ok in [
            "select * from gold.g",
            "select * from GOLD.G",
            "with silver as (select 1) select * from silver, gold.g",
            "select * from gold.g join range(3) r on true",
            "select (select count(*) from gold.g) as n from (values (1)) v(x)",
            "describe gold.g",
            "summarize select * from gold.g",
            "select unnest([1, 2])",
            "select * from memory.gold.g",
        ] {
            assert_eq!(gold.check(&conn, ok), Ok(()), "{ok}");
        }
        for refused in [
            "select * from silver.s",
            "select * from gold.g where a in (select a from silver.s)",
            "select * from m",
            "select * from gold.missing",
            "select * from read_parquet('lake/silver/s.parquet')",
            "select * from 'lake/silver/s.parquet'",
            "select * from duckdb_tables()",
            "select * from information_schema.tables",
            "select * from other.gold.g",
            "show tables",
            "show all tables",
            "select * from query('select * from silver.s')",
            "select * from query_table('silver.s')",
            "copy gold.g to 'x.csv'",
            "select * from (with x as (select 1) select * from x), x",
        ] {
            assert!(gold.check(&conn, refused).is_err(), "{refused}");
        }
        let all = Token {
            name: "all".into(),
            secret: "x".repeat(16),
            schemas: None,
        };
        assert_eq!(all.check(&conn, "select * from silver.s"), Ok(()));
        assert_eq!(
            gold.check(&conn, "select * from silver.s").map_err(|e| e.0),
            Err(403)
        );
        assert_eq!(
            gold.check(&conn, "copy gold.g to 'x.csv'").map_err(|e| e.0),
            Err(400)
        );
        assert!(gold.sees("Gold") && !gold.sees("silver") && all.sees("silver"));
    }

    #[test]
    fn token_entries() {
        let t = tokens(
            Some("bi:0123456789abcdef0123,gold:fedcba9876543210fedc:gold+Marts"),
            None,
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].schemas, None);
        assert_eq!(
            t[1].schemas.as_deref(),
            Some(&["gold".to_string(), "marts".to_string()][..])
        );
        for bad in [
            "bi:short",
            "bi",
            ":0123456789abcdef0123",
            "bi:0123456789abcdef0123:",
            "a:0123456789abcdef0123,a:0123456789abcdef0124",
        ] {
            assert!(tokens(Some(bad), None).is_err(), "{bad}");
        }
        assert!(tokens(None, None).is_err());
    }
}
