//! Running a unit test: each `given` becomes a CTE of typed rows (the types of the input's
//! columns in the catalog, as dbt takes them), the model's SQL runs on them, and its rows are
//! compared with the expected ones on the expected columns, as multisets. Rows missing or
//! unexpected fail the test, and its message lists them.

use super::Status;
use super::materialize::{Ctx, Materialize, Outcome, describe, failed, sql_error};
use super::test::Verdict;
use crate::error::Result;
use crate::model::relation::{quote_ident, quote_literal};
use crate::model::unit_test::{Rows, UnitTest};
use duckdb::Connection;
use serde_json::Value;

pub struct UnitTestRun<'a> {
    pub spec: &'a UnitTest,
}

impl Materialize for UnitTestRun<'_> {
    fn run(&self, c: &Ctx) -> Result<Outcome> {
        let verdict = run(c.conn, self.spec)?;
        Ok(Outcome {
            verdict: Some(verdict),
            ..Outcome::rows(None)
        })
    }
}

fn literal(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quote_literal(s),
        other => quote_literal(&other.to_string()),
    }
}

/// CSV text as rows of (column, value); an empty field is null.
fn csv_rows(text: &str) -> Vec<serde_json::Map<String, Value>> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let names = split_csv(header);
    lines
        .map(|line| {
            names
                .iter()
                .zip(split_csv(line))
                .map(|(n, v)| {
                    let v = if v.is_empty() {
                        Value::Null
                    } else {
                        Value::from(v)
                    };
                    (n.clone(), v)
                })
                .collect()
        })
        .collect()
}

/// One CSV line's fields (double quotes group, `""` is a quote).
fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '"' if quoted && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut field).trim().to_string()),
            _ => field.push(ch),
        }
    }
    out.push(field.trim().to_string());
    out
}

/// `rows` as a query over `cols` (name, type): every column in every row, null where a row
/// does not say, each value cast to its column's type.
fn rows_sql(rows: &Rows, cols: &[(String, String)]) -> Result<String> {
    let dicts = match rows {
        Rows::Sql(sql) => return Ok(sql.clone()),
        Rows::Dicts(d) => d.clone(),
        Rows::Csv(text) => csv_rows(text),
    };
    for row in &dicts {
        if let Some(unknown) = row
            .keys()
            .find(|k| !cols.iter().any(|(c, _)| c.eq_ignore_ascii_case(k)))
        {
            return Err(failed(format!(
                "the fixture names the column '{unknown}', which its input does not have (columns: {})",
                cols.iter()
                    .map(|(c, _)| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let select = |row: Option<&serde_json::Map<String, Value>>| {
        let items: Vec<String> = cols
            .iter()
            .map(|(name, ty)| {
                let v = row
                    .and_then(|r| {
                        r.iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case(name))
                            .map(|(_, v)| v)
                    })
                    .unwrap_or(&Value::Null);
                format!("cast({} as {ty}) as {}", literal(v), quote_ident(name))
            })
            .collect();
        format!("select {}", items.join(", "))
    };
    Ok(if cols.is_empty() {
        // Nothing says what columns there are: rows only count.
        format!(
            "select null as lf_row from range({}) where {}",
            dicts.len(),
            dicts.is_empty()
        )
    } else if dicts.is_empty() {
        format!("{} where false", select(None))
    } else {
        dicts
            .iter()
            .map(|r| select(Some(r)))
            .collect::<Vec<_>>()
            .join("\nunion all\n")
    })
}

/// The columns a set of expected rows names, in the order first named.
fn named_columns(rows: &Rows) -> Vec<String> {
    let dicts = match rows {
        Rows::Dicts(d) => d.clone(),
        Rows::Csv(text) => {
            return text
                .lines()
                .find(|l| !l.trim().is_empty())
                .map(split_csv)
                .unwrap_or_default();
        }
        Rows::Sql(_) => return Vec::new(),
    };
    let mut out: Vec<String> = Vec::new();
    for k in dicts.iter().flat_map(|r| r.keys()) {
        if !out.iter().any(|o| o.eq_ignore_ascii_case(k)) {
            out.push(k.clone());
        }
    }
    out
}

fn run(conn: &Connection, spec: &UnitTest) -> Result<Verdict> {
    let mut ctes = Vec::new();
    for g in &spec.given {
        let cols = match &g.relation {
            Some(sql) => describe(conn, sql).map_err(|e| {
                failed(format!(
                    "the fixture {} takes the columns of its input, which cannot be read ({}); build the input first",
                    g.cte,
                    super::materialize::failure_text(&e)
                ))
            })?,
            None => Vec::new(),
        };
        ctes.push(format!("{} as (\n{}\n)", g.cte, rows_sql(&g.rows, &cols)?));
    }
    let with = if ctes.is_empty() {
        String::new()
    } else {
        format!("with {}\n", ctes.join(",\n"))
    };
    let actual = format!("{with}select * from (\n{}\n) as lf_actual", spec.sql);
    let actual_cols = describe(conn, &format!("({actual})"))?;
    let (expected, cols) = match &spec.expect {
        Rows::Sql(sql) => {
            let cols: Vec<String> = describe(conn, &format!("({sql})"))?
                .into_iter()
                .map(|(c, _)| c)
                .collect();
            (sql.clone(), cols)
        }
        rows => {
            let names = named_columns(rows);
            let typed: Vec<(String, String)> = names
                .iter()
                .map(|n| {
                    actual_cols
                        .iter()
                        .find(|(c, _)| c.eq_ignore_ascii_case(n))
                        .cloned()
                        .ok_or_else(|| {
                            failed(format!(
                                "the expected rows name the column '{n}', which the model does not give (it gives: {})",
                                actual_cols.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>().join(", ")
                            ))
                        })
                })
                .collect::<Result<_>>()?;
            (rows_sql(rows, &typed)?, names)
        }
    };
    // No expected columns (`rows: []`): the model must give no rows.
    if cols.is_empty() {
        let n: i64 = conn
            .query_row(&format!("select count(*) from ({actual}) as a"), [], |r| {
                r.get(0)
            })
            .map_err(sql_error)?;
        let expected_rows: i64 = conn
            .query_row(
                &format!("select count(*) from ({expected}) as e"),
                [],
                |r| r.get(0),
            )
            .map_err(sql_error)?;
        return Ok(verdict(
            n.abs_diff(expected_rows),
            format!("actual differs from expected: {n} rows, {expected_rows} expected"),
        ));
    }
    let list = cols
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    let diff = format!(
        "with lf_actual as ({actual}), lf_expected as ({expected})
         select 'missing' as lf_diff, * from (select {list} from lf_expected except all select {list} from lf_actual)
         union all
         select 'unexpected' as lf_diff, * from (select {list} from lf_actual except all select {list} from lf_expected)"
    );
    let shown = cols
        .iter()
        .map(|c| format!("coalesce(cast({} as varchar), 'null')", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(", ");
    let diff = format!("select lf_diff, {shown} from ({diff}) as d");
    let mut stmt = conn.prepare(&diff).map_err(sql_error)?;
    let mut rows = stmt.query([]).map_err(sql_error)?;
    let mut lines = Vec::new();
    let mut count = 0u64;
    while let Some(row) = rows.next().map_err(sql_error)? {
        count += 1;
        if lines.len() < 20 {
            let cells: Vec<String> = (0..=cols.len())
                .map(|i| row.get::<_, String>(i).unwrap_or_default())
                .collect();
            lines.push(cells.join(" | "));
        }
    }
    Ok(verdict(
        count,
        format!(
            "actual differs from expected ({count} rows):\nlf_diff | {}\n{}",
            cols.join(" | "),
            lines.join("\n")
        ),
    ))
}

/// Pass without differences, else fail with `message`.
fn verdict(differences: u64, message: String) -> Verdict {
    if differences == 0 {
        Verdict {
            status: Status::Pass,
            failures: 0,
            message: None,
        }
    } else {
        Verdict {
            status: Status::Fail,
            failures: differences,
            message: Some(message),
        }
    }
}
