//! Seeds: CSV files under `seed-paths`, loaded by DuckDB's CSV reader into catalog tables.

use crate::error::{Error, Result};
use crate::model::relation::quote_literal;
use crate::project::{Config, Project, SqlFile, config as cfg};
use serde_json::Value;

/// `select * from read_csv(...)` for a seed: header row, every row sampled for types, dbt's
/// `delimiter` and `column_types` configs. CRLF line ends and quoted fields (with commas or
/// line breaks inside) are the CSV reader's own business. Whole numbers become INTEGER (BIGINT
/// when they do not fit) and decimals DOUBLE, the types dbt-duckdb's seeds get.
pub fn seed_sql(project: &Project, file: &SqlFile, config: &Config) -> Result<String> {
    let path = project.root.join(&file.path);
    let mut args = vec![
        quote_literal(&path.to_string_lossy()),
        "header = true".to_string(),
        "auto_detect = true".to_string(),
        "sample_size = -1".to_string(),
        "auto_type_candidates = ['BOOLEAN', 'INTEGER', 'BIGINT', 'DOUBLE', 'TIME', 'DATE', 'TIMESTAMP', 'VARCHAR']".to_string(),
    ];
    if let Some(d) = cfg::get_str(config, "delimiter") {
        args.push(format!("delim = {}", quote_literal(d)));
    }
    match config.get("column_types") {
        None | Some(Value::Null) => {}
        Some(Value::Object(types)) => {
            let mut fields = Vec::new();
            for (column, ty) in types {
                let Some(ty) = ty.as_str() else {
                    return Err(bad_config(
                        file,
                        format!("column_types.{column} is not a type name"),
                    ));
                };
                fields.push(format!("{}: {}", quote_literal(column), quote_literal(ty)));
            }
            args.push(format!("types = {{{}}}", fields.join(", ")));
        }
        Some(other) => {
            return Err(bad_config(
                file,
                format!("column_types must map column names to types, not {other}"),
            ));
        }
    }
    Ok(format!("select * from read_csv({})", args.join(", ")))
}

fn bad_config(file: &SqlFile, msg: String) -> Error {
    Error::new("LF207", format!("seed {}: {msg}", file.name))
        .in_file(&file.path)
        .hint("set it under `seeds:` in the project file, e.g. `+column_types: {id: varchar}`")
}
