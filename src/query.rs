//! `lakeflow query`: read-only SQL against the catalog, printed as a table, CSV or JSON.

use crate::cli::{QueryFormat, QuerySource};
use crate::error::{Error, Result};
use crate::project::Target;
use crate::storage::Storage;
use duckdb::types::Value;
use std::path::{Path, PathBuf};

pub fn run(
    target: &Target,
    project_root: &Path,
    storage: &Storage,
    sql: &str,
    format: QueryFormat,
    from: Option<QuerySource>,
) -> Result<()> {
    let use_replica = match from {
        Some(QuerySource::Replica) => true,
        Some(QuerySource::Catalog) => false,
        None => target.publish.is_some(),
    };
    let mut pulled = None;
    let file: PathBuf = if use_replica {
        let publish = target.publish.as_ref().ok_or_else(|| {
            Error::new(
                "LF603",
                format!("target '{}' publishes no replica", target.name),
            )
            .hint("add `publish: {to: ...}` to the target in profiles.yml, or use --from catalog")
        })?;
        if crate::location::is_remote(&publish.to) {
            let tmp =
                std::env::temp_dir().join(format!("lakeflow-query-{}.duckdb", std::process::id()));
            crate::publish::pull(storage, &publish.to, &tmp)?;
            pulled = Some(tmp.clone());
            tmp
        } else {
            PathBuf::from(&publish.to)
        }
    } else {
        PathBuf::from(&target.catalog)
    };
    let result = print_query(target, project_root, &file, sql, format);
    if let Some(tmp) = pulled {
        let _ = std::fs::remove_file(tmp);
    }
    result
}

fn print_query(
    target: &Target,
    project_root: &Path,
    file: &Path,
    sql: &str,
    format: QueryFormat,
) -> Result<()> {
    let conn = crate::execute::session::open_reader(target, project_root, file)?;
    let mut stmt = conn
        .prepare(sql)
        .map_err(|e| Error::new("LF602", format!("query failed: {e}")))?;
    let mut rows = stmt
        .query([])
        .map_err(|e| Error::new("LF602", format!("query failed: {e}")))?;
    let names: Vec<String> = rows.as_ref().map(|s| s.column_names()).unwrap_or_default();
    let mut table: Vec<Vec<String>> = Vec::new();
    let mut json_rows = Vec::new();
    while let Some(row) = rows
        .next()
        .map_err(|e| Error::new("LF602", format!("query failed: {e}")))?
    {
        let mut cells = Vec::with_capacity(names.len());
        let mut obj = serde_json::Map::new();
        for (i, name) in names.iter().enumerate() {
            let v: Value = row.get(i).unwrap_or(Value::Null);
            obj.insert(name.clone(), to_json(&v));
            cells.push(to_text(&v));
        }
        table.push(cells);
        json_rows.push(serde_json::Value::Object(obj));
    }
    match format {
        QueryFormat::Json => println!("{}", serde_json::Value::Array(json_rows)),
        QueryFormat::Csv => {
            println!(
                "{}",
                names
                    .iter()
                    .map(|n| csv_cell(n))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            for r in &table {
                println!(
                    "{}",
                    r.iter().map(|c| csv_cell(c)).collect::<Vec<_>>().join(",")
                );
            }
        }
        QueryFormat::Table => print_table(&names, &table),
    }
    Ok(())
}

fn to_text(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Text(s) => s.clone(),
        Value::Boolean(b) => b.to_string(),
        Value::TinyInt(n) => n.to_string(),
        Value::SmallInt(n) => n.to_string(),
        Value::Int(n) => n.to_string(),
        Value::BigInt(n) => n.to_string(),
        Value::HugeInt(n) => n.to_string(),
        Value::UTinyInt(n) => n.to_string(),
        Value::USmallInt(n) => n.to_string(),
        Value::UInt(n) => n.to_string(),
        Value::UBigInt(n) => n.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Double(f) => f.to_string(),
        Value::Decimal(d) => d.to_string(),
        Value::Date32(days) => crate::report::rfc3339(i64::from(*days) * 86_400)[..10].to_string(),
        Value::Timestamp(unit, v) => {
            let micros = unit.to_micros(*v);
            let text = crate::report::rfc3339(micros.div_euclid(1_000_000));
            let frac = micros.rem_euclid(1_000_000);
            let base = text.trim_end_matches('Z').replace('T', " ");
            if frac == 0 {
                base
            } else {
                format!("{base}.{frac:06}")
            }
        }
        other => format!("{other:?}"),
    }
}

fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Boolean(b) => (*b).into(),
        Value::TinyInt(_)
        | Value::SmallInt(_)
        | Value::Int(_)
        | Value::BigInt(_)
        | Value::UTinyInt(_)
        | Value::USmallInt(_)
        | Value::UInt(_)
        | Value::UBigInt(_) => to_text(v)
            .parse::<i64>()
            .map(Into::into)
            .unwrap_or_else(|_| to_text(v).into()),
        Value::Float(_) | Value::Double(_) | Value::Decimal(_) => to_text(v)
            .parse::<f64>()
            .map(Into::into)
            .unwrap_or_else(|_| to_text(v).into()),
        _ => to_text(v).into(),
    }
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn print_table(names: &[String], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = names.iter().map(|n| n.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    println!("{}", line(names));
    println!(
        "{}",
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-+-")
    );
    for r in rows {
        println!("{}", line(r));
    }
    println!("({} rows)", rows.len());
}
