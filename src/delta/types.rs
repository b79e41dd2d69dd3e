//! Column types between DuckDB and Delta: DuckDB's type names (as `DESCRIBE` prints them) to
//! Delta schema JSON for writing, Delta schema JSON back to DuckDB types for reading, and the
//! per-file statistics of `COPY ... RETURN_STATS` in the form the Delta log expects.

use super::delta_error;
use crate::error::Result;
use serde_json::{Map, Value, json};

/// A DuckDB type, parsed far enough to map it.
#[derive(Debug, Clone, PartialEq)]
pub enum DuckType {
    Named(String),
    Decimal(u32, u32),
    List(Box<DuckType>),
    Struct(Vec<(String, DuckType)>),
    Map(Box<DuckType>, Box<DuckType>),
}

/// Parses a DuckDB type name: `BIGINT`, `DECIMAL(10,2)`, `VARCHAR[]`, `STRUCT(a INTEGER)`, ...
pub fn parse(text: &str) -> Result<DuckType> {
    let t = text.trim();
    if let Some(inner) = t.strip_suffix(']') {
        // `T[]` is a list, `T[3]` a fixed-size array; both are lists in Delta.
        if let Some(open) = inner.rfind('[') {
            let size = &inner[open + 1..];
            if size.chars().all(|c| c.is_ascii_digit()) {
                return Ok(DuckType::List(Box::new(parse(&inner[..open])?)));
            }
        }
    }
    let upper = t.to_ascii_uppercase();
    if let Some(args) = call_args(t, "STRUCT") {
        let mut fields = Vec::new();
        for part in split_top_level(args) {
            let (name, rest) = split_field(part.trim())?;
            fields.push((name, parse(rest)?));
        }
        return Ok(DuckType::Struct(fields));
    }
    if let Some(args) = call_args(t, "MAP") {
        let parts = split_top_level(args);
        if parts.len() != 2 {
            return Err(delta_error(format!("cannot read map type {t}")));
        }
        return Ok(DuckType::Map(
            Box::new(parse(parts[0])?),
            Box::new(parse(parts[1])?),
        ));
    }
    if let Some(args) = call_args(t, "DECIMAL").or_else(|| call_args(t, "NUMERIC")) {
        let parts = split_top_level(args);
        let num = |i: usize| -> Result<u32> {
            parts
                .get(i)
                .and_then(|p| p.trim().parse().ok())
                .ok_or_else(|| delta_error(format!("cannot read decimal type {t}")))
        };
        return Ok(DuckType::Decimal(num(0)?, num(1)?));
    }
    if upper.starts_with("ENUM(") {
        return Ok(DuckType::Named("VARCHAR".into()));
    }
    if upper.starts_with("UNION(") {
        return Err(delta_error(format!(
            "a column of type {t} cannot be stored in Delta; cast it to a struct or a string in the model"
        )));
    }
    Ok(DuckType::Named(upper))
}

fn call_args<'a>(t: &'a str, name: &str) -> Option<&'a str> {
    let head = t.get(..name.len() + 1)?;
    if head.eq_ignore_ascii_case(&format!("{name}(")) && t.ends_with(')') {
        Some(&t[name.len() + 1..t.len() - 1])
    } else {
        None
    }
}

/// Splits at commas outside parentheses, brackets and quotes.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0);
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '(' | '[' if !quoted => depth += 1,
            ')' | ']' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if !s[start..].trim().is_empty() {
        parts.push(&s[start..]);
    }
    parts
}

/// `name TYPE` or `"quoted name" TYPE`.
fn split_field(s: &str) -> Result<(String, &str)> {
    if let Some(rest) = s.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = rest.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if matches!(chars.peek(), Some((_, '"'))) {
                    chars.next();
                    name.push('"');
                } else {
                    return Ok((name, &rest[i + 1..]));
                }
            } else {
                name.push(c);
            }
        }
        return Err(delta_error(format!("cannot read struct field {s}")));
    }
    s.split_once(' ')
        .map(|(n, t)| (n.to_string(), t))
        .ok_or_else(|| delta_error(format!("cannot read struct field {s}")))
}

/// The Delta type for a DuckDB type, and the DuckDB type the column must be cast to first
/// when Delta has no exact equivalent (unsigned and huge integers, odd timestamp units, ...).
pub fn to_delta(t: &DuckType) -> Result<(Value, DuckType)> {
    Ok(match t {
        DuckType::Decimal(p, s) if *p <= 38 => (json!(format!("decimal({p},{s})")), t.clone()),
        DuckType::Decimal(..) => (json!("decimal(38,0)"), DuckType::Decimal(38, 0)),
        DuckType::List(inner) => {
            let (d, cast) = to_delta(inner)?;
            (
                json!({"type": "array", "elementType": d, "containsNull": true}),
                DuckType::List(Box::new(cast)),
            )
        }
        DuckType::Struct(fields) => {
            let mut out = Vec::new();
            let mut casts = Vec::new();
            for (name, ft) in fields {
                let (d, cast) = to_delta(ft)?;
                out.push(json!({"name": name, "type": d, "nullable": true, "metadata": {}}));
                casts.push((name.clone(), cast));
            }
            (
                json!({"type": "struct", "fields": out}),
                DuckType::Struct(casts),
            )
        }
        DuckType::Map(k, v) => {
            let (dk, ck) = to_delta(k)?;
            let (dv, cv) = to_delta(v)?;
            (
                json!({"type": "map", "keyType": dk, "valueType": dv, "valueContainsNull": true}),
                DuckType::Map(Box::new(ck), Box::new(cv)),
            )
        }
        DuckType::Named(name) => {
            let same = |d: &str| (json!(d), t.clone());
            let cast = |d: &str, to: DuckType| (json!(d), to);
            let named = |n: &str| DuckType::Named(n.to_string());
            match name.as_str() {
                "BOOLEAN" => same("boolean"),
                "TINYINT" => same("byte"),
                "SMALLINT" => same("short"),
                "INTEGER" => same("integer"),
                "BIGINT" => same("long"),
                "UTINYINT" => cast("short", named("SMALLINT")),
                "USMALLINT" => cast("integer", named("INTEGER")),
                "UINTEGER" => cast("long", named("BIGINT")),
                "UBIGINT" => cast("decimal(20,0)", DuckType::Decimal(20, 0)),
                "HUGEINT" | "UHUGEINT" | "BIGNUM" | "VARINT" => {
                    cast("decimal(38,0)", DuckType::Decimal(38, 0))
                }
                "FLOAT" => same("float"),
                "DOUBLE" => same("double"),
                "VARCHAR" => same("string"),
                "BLOB" => same("binary"),
                "DATE" => same("date"),
                "TIMESTAMP" => same("timestamp_ntz"),
                "TIMESTAMP_S" | "TIMESTAMP_MS" | "TIMESTAMP_NS" => {
                    cast("timestamp_ntz", named("TIMESTAMP"))
                }
                "TIMESTAMP WITH TIME ZONE" | "TIMESTAMPTZ" => same("timestamp"),
                "UUID"
                | "JSON"
                | "TIME"
                | "TIME WITH TIME ZONE"
                | "TIMETZ"
                | "INTERVAL"
                | "BIT"
                | "\"NULL\""
                | "NULL" => cast("string", named("VARCHAR")),
                other => {
                    return Err(delta_error(format!(
                        "a column of type {other} cannot be stored in Delta; cast it in the model"
                    )));
                }
            }
        }
    })
}

/// DuckDB's spelling of a type, for casts.
pub fn duck_sql(t: &DuckType) -> String {
    match t {
        DuckType::Named(n) => n.clone(),
        DuckType::Decimal(p, s) => format!("DECIMAL({p},{s})"),
        DuckType::List(inner) => format!("{}[]", duck_sql(inner)),
        DuckType::Struct(fields) => format!(
            "STRUCT({})",
            fields
                .iter()
                .map(|(n, t)| format!("{} {}", crate::model::relation::quote_ident(n), duck_sql(t)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        DuckType::Map(k, v) => format!("MAP({}, {})", duck_sql(k), duck_sql(v)),
    }
}

/// The DuckDB type that reads a Delta type (from a table's schema JSON).
pub fn from_delta(t: &Value) -> Result<String> {
    match t {
        Value::String(s) => {
            let s = s.as_str();
            Ok(match s {
                "string" => "VARCHAR".into(),
                "long" => "BIGINT".into(),
                "integer" => "INTEGER".into(),
                "short" => "SMALLINT".into(),
                "byte" => "TINYINT".into(),
                "float" => "FLOAT".into(),
                "double" => "DOUBLE".into(),
                "boolean" => "BOOLEAN".into(),
                "binary" => "BLOB".into(),
                "date" => "DATE".into(),
                "timestamp" => "TIMESTAMP WITH TIME ZONE".into(),
                "timestamp_ntz" => "TIMESTAMP".into(),
                d if d.starts_with("decimal(") => d.to_ascii_uppercase(),
                other => {
                    return Err(delta_error(format!(
                        "Delta type '{other}' is not supported"
                    )));
                }
            })
        }
        Value::Object(o) => match o.get("type").and_then(Value::as_str) {
            Some("array") => Ok(format!(
                "{}[]",
                from_delta(o.get("elementType").unwrap_or(&Value::Null))?
            )),
            Some("map") => Ok(format!(
                "MAP({}, {})",
                from_delta(o.get("keyType").unwrap_or(&Value::Null))?,
                from_delta(o.get("valueType").unwrap_or(&Value::Null))?
            )),
            Some("struct") => {
                let mut parts = Vec::new();
                for f in o
                    .get("fields")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let name = f.get("name").and_then(Value::as_str).unwrap_or_default();
                    let ty = from_delta(f.get("type").unwrap_or(&Value::Null))?;
                    parts.push(format!(
                        "{} {ty}",
                        crate::model::relation::quote_ident(name)
                    ));
                }
                Ok(format!("STRUCT({})", parts.join(", ")))
            }
            _ => Err(delta_error(format!("Delta type {t} is not supported"))),
        },
        _ => Err(delta_error(format!("Delta type {t} is not supported"))),
    }
}

/// The `stats` JSON of an Add action from DuckDB's per-file statistics (`column_statistics` of
/// `COPY ... RETURN_STATS`). Only top-level columns of simple types get min/max; a bound that
/// cannot be written exactly is left out (readers then simply do not skip on it).
pub fn add_stats(
    rows: u64,
    columns: &[(String, Value)],
    file_stats: &std::collections::HashMap<String, std::collections::HashMap<String, String>>,
) -> String {
    let mut min = Map::new();
    let mut max = Map::new();
    let mut nulls = Map::new();
    for (name, delta_type) in columns {
        let key = format!("\"{}\"", name.replace('"', "\"\""));
        let Some(stats) = file_stats.get(&key) else {
            continue;
        };
        if let Some(n) = stats.get("null_count").and_then(|v| v.parse::<u64>().ok()) {
            nulls.insert(name.clone(), json!(n));
        }
        let Some(type_name) = delta_type.as_str() else {
            continue;
        };
        if stats.get("has_nan").map(String::as_str) == Some("true") {
            continue;
        }
        if let Some(v) = stats.get("min").and_then(|v| bound(type_name, v, false)) {
            min.insert(name.clone(), v);
        }
        if let Some(v) = stats.get("max").and_then(|v| bound(type_name, v, true)) {
            max.insert(name.clone(), v);
        }
    }
    json!({"numRecords": rows, "minValues": min, "maxValues": max, "nullCount": nulls}).to_string()
}

fn bound(delta_type: &str, text: &str, upper: bool) -> Option<Value> {
    match delta_type {
        "byte" | "short" | "integer" | "long" => text.parse::<i64>().ok().map(Value::from),
        "float" | "double" => text
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Value::from),
        d if d.starts_with("decimal(") => text
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && text.len() <= 15)
            .map(|_| serde_json::from_str::<Value>(text).ok())?,
        "string" => (text.chars().count() <= 32).then(|| Value::from(text)),
        "date" => (text.len() == 10).then(|| Value::from(text)),
        "timestamp" | "timestamp_ntz" => timestamp_bound(text, delta_type == "timestamp", upper),
        _ => None,
    }
}

/// Delta keeps timestamp bounds at millisecond precision: a lower bound is truncated, an upper
/// bound with sub-millisecond digits is left out rather than rounded the wrong way.
fn timestamp_bound(text: &str, utc: bool, upper: bool) -> Option<Value> {
    let text = if utc { text.strip_suffix("+00")? } else { text };
    let (date, time) = text.split_once(' ')?;
    if date.len() != 10 || time.len() < 8 {
        return None;
    }
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    if !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut millis: String = frac.chars().take(3).collect();
    while millis.len() < 3 {
        millis.push('0');
    }
    if upper && frac.chars().skip(3).any(|c| c != '0') {
        return None;
    }
    Some(Value::from(format!(
        "{date}T{hms}.{millis}{}",
        if utc { "Z" } else { "" }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_types() {
        let t =
            parse(r#"STRUCT(a BIGINT, "b c" DECIMAL(10,2)[], m MAP(VARCHAR, INTEGER))"#).unwrap();
        assert_eq!(
            t,
            DuckType::Struct(vec![
                ("a".into(), DuckType::Named("BIGINT".into())),
                (
                    "b c".into(),
                    DuckType::List(Box::new(DuckType::Decimal(10, 2)))
                ),
                (
                    "m".into(),
                    DuckType::Map(
                        Box::new(DuckType::Named("VARCHAR".into())),
                        Box::new(DuckType::Named("INTEGER".into()))
                    )
                ),
            ])
        );
        assert!(parse("UNION(a INTEGER, b VARCHAR)").is_err());
    }

    #[test]
    fn maps_types_both_ways() {
        for (duck, delta) in [
            ("BIGINT", "long"),
            ("TIMESTAMP", "timestamp_ntz"),
            ("TIMESTAMP WITH TIME ZONE", "timestamp"),
            ("DECIMAL(18,3)", "decimal(18,3)"),
            ("VARCHAR", "string"),
            ("DATE", "date"),
        ] {
            let (d, cast) = to_delta(&parse(duck).unwrap()).unwrap();
            assert_eq!(d, json!(delta));
            assert_eq!(cast, parse(duck).unwrap(), "{duck} needs no cast");
            assert_eq!(from_delta(&d).unwrap(), duck);
        }
        let (d, cast) = to_delta(&parse("UBIGINT[]").unwrap()).unwrap();
        assert_eq!(d["elementType"], json!("decimal(20,0)"));
        assert_eq!(duck_sql(&cast), "DECIMAL(20,0)[]");
    }

    #[test]
    fn stats_bounds_stay_safe() {
        assert_eq!(
            timestamp_bound("2024-01-01 10:00:00.123456", false, false),
            Some(json!("2024-01-01T10:00:00.123"))
        );
        assert_eq!(
            timestamp_bound("2024-01-01 10:00:00.123456", false, true),
            None
        );
        assert_eq!(
            timestamp_bound("2024-01-01 10:00:09+00", true, true),
            Some(json!("2024-01-01T10:00:09.000Z"))
        );
        assert_eq!(bound("double", "inf", true), None);
        assert_eq!(bound("decimal(10,2)", "13.50", true), Some(json!(13.5)));
        assert_eq!(bound("string", &"x".repeat(40), true), None);
    }
}
