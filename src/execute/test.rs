//! Running one data test: count the rows its query returns and judge them by the test's
//! `severity`, `warn_if`, `error_if`, `fail_calc` and `limit`, as dbt does; with
//! `store_failures` the rows are kept in a table (or view) of the audit schema first.

use super::Status;
use super::materialize::{Ctx, Materialize, Outcome, failed, replacing, sql_error};
use crate::error::Result;
use crate::model::relation::quote_ident;
use crate::model::templates;
use crate::project::config as cfg;
use crate::render::Node;
use duckdb::Connection;

/// `materialized: test`: a data test, judged; its failing rows kept only with `store_failures`.
pub struct Test;

impl Materialize for Test {
    fn run(&self, c: &Ctx) -> Result<Outcome> {
        let verdict = run(c.conn, c.node, c.sql())?;
        Ok(Outcome {
            verdict: Some(verdict),
            ..Outcome::rows(None)
        })
    }
}

/// What a test found.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// Pass, Warn or Fail.
    pub status: Status,
    pub failures: u64,
    pub message: Option<String>,
}

pub fn run(conn: &Connection, node: &Node, sql: &str) -> Result<Verdict> {
    let c = &node.config;
    let text = |key: &str, default: &str| {
        cfg::get_str(c, key)
            .map(str::to_string)
            .or_else(|| c.get(key).filter(|v| v.is_number()).map(|v| v.to_string()))
            .unwrap_or_else(|| default.to_string())
    };
    let severity = text("severity", "error").to_ascii_lowercase();
    if severity != "error" && severity != "warn" {
        return Err(failed(format!(
            "severity '{severity}' is not one of error, warn; fix the test's config"
        )));
    }
    let limit = match c.get("limit") {
        Some(v) if v.is_u64() => format!("limit {v}"),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => return Err(failed(format!("limit {other} is not a whole number"))),
    };
    let store = cfg::get_bool(c, "store_failures").unwrap_or(false)
        || c.get("store_failures_as").is_some_and(|v| v.is_string());
    let store_as = text("store_failures_as", "table").to_ascii_lowercase();
    let mut stored = None;
    let mut query = sql.to_string();
    if store && store_as != "ephemeral" {
        if store_as != "table" && store_as != "view" {
            return Err(failed(format!(
                "store_failures_as '{store_as}' is not one of table, view, ephemeral"
            )));
        }
        let relation = node.relation.to_string();
        conn.execute_batch(&format!(
            "create schema if not exists {}",
            quote_ident(&node.relation.schema)
        ))
        .map_err(sql_error)?;
        let create = templates::render(
            &store_as,
            &[("relation", relation.clone()), ("sql", sql.to_string())],
        );
        replacing(conn, &node.relation, &store_as, || {
            conn.execute_batch(&create).map_err(sql_error)
        })?;
        query = format!("select * from {relation}");
        stored = Some(relation);
    }
    let fail_calc = text("fail_calc", "count(*)");
    let warn_if = text("warn_if", "!= 0");
    let error_if = text("error_if", "!= 0");
    let stmt = templates::render(
        "test",
        &[
            ("fail_calc", fail_calc),
            ("warn_if", warn_if.clone()),
            ("error_if", error_if.clone()),
            ("sql", query),
            ("limit", limit),
        ],
    );
    let (failures, should_warn, should_error): (i64, bool, bool) = conn
        .query_row(&stmt, [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(sql_error)?;
    let failures = failures.max(0) as u64;
    let (status, rule) = if severity == "error" && should_error {
        (Status::Fail, error_if)
    } else if should_warn {
        (Status::Warn, warn_if)
    } else {
        (Status::Pass, String::new())
    };
    let message = (status != Status::Pass).then(|| {
        let rows = if failures == 1 { "result" } else { "results" };
        let see = match &stored {
            Some(r) => format!("the failing rows are in {r}"),
            None => "set `store_failures: true` to keep the failing rows".to_string(),
        };
        format!(
            "Got {failures} {rows}, configured to {} if {rule}; {see}",
            if status == Status::Fail {
                "fail"
            } else {
                "warn"
            }
        )
    });
    Ok(Verdict {
        status,
        failures,
        message,
    })
}
