//! Enforced contracts (`contract: {enforced: true}`): before a model is built, the columns its
//! query gives must be those its schema file declares, with the declared types (as DuckDB
//! names them), as dbt checks them. A mismatch is the model's error, naming each column.

use super::materialize::{Ctx, describe, failed};
use crate::error::Result;
use crate::model::relation::quote_ident;

pub fn check(c: &Ctx, contract: &[(String, String)]) -> Result<()> {
    let actual = describe(
        c.conn,
        &format!("select * from (\n{}\n) as model_subq", c.sql()),
    )?;
    // The declared types as DuckDB names them (`int` is INTEGER, `text` VARCHAR).
    let typed: Vec<&(String, String)> = contract.iter().filter(|(_, t)| !t.is_empty()).collect();
    let declared: Vec<(String, String)> = if typed.is_empty() {
        Vec::new()
    } else {
        let casts: Vec<String> = typed
            .iter()
            .map(|(n, t)| format!("cast(null as {t}) as {}", quote_ident(n)))
            .collect();
        describe(c.conn, &format!("select {}", casts.join(", "))).map_err(|e| {
            failed(format!(
                "the contract's data types are not all DuckDB types: {}",
                super::materialize::failure_text(&e)
            ))
        })?
    };
    let declared_type = |name: &str| {
        declared
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, t)| t.as_str())
    };
    let mut rows: Vec<[String; 4]> = Vec::new();
    for (name, _) in contract {
        match actual.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            None => rows.push([
                name.clone(),
                String::new(),
                declared_type(name).unwrap_or_default().to_string(),
                "missing in definition".into(),
            ]),
            Some((_, ty)) => {
                if let Some(want) = declared_type(name)
                    && !want.eq_ignore_ascii_case(ty)
                {
                    rows.push([
                        name.clone(),
                        ty.clone(),
                        want.to_string(),
                        "data type mismatch".into(),
                    ]);
                }
            }
        }
    }
    for (name, ty) in &actual {
        if !contract.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            rows.push([
                name.clone(),
                ty.clone(),
                String::new(),
                "missing in contract".into(),
            ]);
        }
    }
    if rows.is_empty() {
        return Ok(());
    }
    Err(failed(format!(
        "This model has an enforced contract that failed.\nPlease ensure the name, data_type, and number of columns in your contract match the columns in your model's definition.\n\n{}",
        table(&rows)
    )))
}

/// The mismatches as dbt prints them: a Markdown table.
fn table(rows: &[[String; 4]]) -> String {
    let head = [
        "column_name",
        "definition_type",
        "contract_type",
        "mismatch_reason",
    ];
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].len())
            .chain([head[i].len()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..4).map(width).collect();
    let line = |cells: [&str; 4]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("| {} |", padded.join(" | "))
    };
    let mut out = vec![
        line(head),
        line([
            &"-".repeat(widths[0]),
            &"-".repeat(widths[1]),
            &"-".repeat(widths[2]),
            &"-".repeat(widths[3]),
        ]),
    ];
    for r in rows {
        out.push(line([&r[0], &r[1], &r[2], &r[3]]));
    }
    out.join("\n")
}
