//! What `run_query` and `load_result(...)['table']` give a template: a result table shaped
//! like the agate table dbt hands Jinja (`.columns[0].values()`, `.rows[0][0]`,
//! `row['name']`, `.column_names`, `print_table()`), and dbt's `Column` as
//! `adapter.get_columns_in_relation` returns it; and the [`Database`] they are read from.

use super::pycompat::index;
use minijinja::value::{Enumerator, Object, ObjectRepr, Value, from_args};
use minijinja::{Error as JError, ErrorKind, State};
use std::sync::Arc;

/// A result set: column names and DuckDB types, rows of JSON-like cells.
#[derive(Debug, Clone, Default)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub types: Vec<String>,
    pub rows: Vec<Vec<serde_json::Value>>,
}

/// A live connection to the catalog, as rendering sees it.
pub trait Database: Send + Sync {
    /// Runs one SQL statement (or several, when nothing is fetched) and returns what it
    /// selected.
    fn query(&self, sql: &str) -> Result<QueryResult, String>;
}

impl std::fmt::Debug for dyn Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Database")
    }
}

fn cell(v: &serde_json::Value) -> Value {
    Value::from(minijinja::value::Serde(v))
}

/// The agate-like table.
#[derive(Debug)]
pub struct Table {
    result: Arc<QueryResult>,
}

impl Table {
    pub fn value(result: QueryResult) -> Value {
        Value::from_object(Table {
            result: Arc::new(result),
        })
    }

    fn rows(&self) -> Value {
        Value::from_object(Rows(self.result.clone()))
    }

    fn columns(&self) -> Value {
        Value::from_object(Columns(self.result.clone()))
    }
}

/// `load_result(name)['data']`: the rows as lists of cells.
pub fn data(result: &QueryResult) -> Value {
    Value::from(
        result
            .rows
            .iter()
            .map(|r| Value::from(r.iter().map(cell).collect::<Vec<_>>()))
            .collect::<Vec<_>>(),
    )
}

impl Object for Table {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        if let Some(i) = key.as_i64() {
            return Arc::new(Rows(self.result.clone())).get_value(&Value::from(i));
        }
        match key.as_str()? {
            "rows" => Some(self.rows()),
            "columns" => Some(self.columns()),
            "column_names" => Some(Value::from(self.result.columns.clone())),
            "column_types" => Some(Value::from(self.result.types.clone())),
            _ => None,
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.result.rows.len())
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        _args: &[Value],
    ) -> Result<Value, JError> {
        match method {
            "print_table" | "print_csv" | "print_json" => Ok(Value::from("")),
            "rows" => Ok(self.rows()),
            "columns" => Ok(self.columns()),
            _ => Err(unknown("result tables", method)),
        }
    }
}

fn unknown(what: &str, method: &str) -> JError {
    JError::new(
        ErrorKind::UnknownMethod,
        format!("{what} have no method `{method}` in lakeflow"),
    )
}

/// `table.rows`: indexable, iterable.
#[derive(Debug)]
struct Rows(Arc<QueryResult>);

impl Object for Rows {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let i = index(key.as_i64(), self.0.rows.len())?;
        Some(Value::from_object(Row {
            result: self.0.clone(),
            index: i,
        }))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.0.rows.len())
    }
}

/// One row: `row[0]`, `row['name']`, iteration over its cells.
#[derive(Debug)]
struct Row {
    result: Arc<QueryResult>,
    index: usize,
}

impl Row {
    fn cells(&self) -> &[serde_json::Value] {
        &self.result.rows[self.index]
    }
}

impl Object for Row {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let cells = self.cells();
        if let Some(i) = key.as_i64() {
            return index(Some(i), cells.len()).map(|i| cell(&cells[i]));
        }
        let name = key.as_str()?;
        let at = self.result.columns.iter().position(|c| c == name)?;
        Some(cell(&cells[at]))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.cells().len())
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        _args: &[Value],
    ) -> Result<Value, JError> {
        let cells = self.cells();
        match method {
            "keys" => Ok(Value::from(self.result.columns.clone())),
            "values" => Ok(Value::from(cells.iter().map(cell).collect::<Vec<_>>())),
            "items" => Ok(Value::from(
                self.result
                    .columns
                    .iter()
                    .zip(cells)
                    .map(|(k, v)| Value::from(vec![Value::from(k.clone()), cell(v)]))
                    .collect::<Vec<_>>(),
            )),
            "dict" => Ok(Value::from_iter(
                self.result
                    .columns
                    .iter()
                    .zip(cells)
                    .map(|(k, v)| (k.clone(), cell(v))),
            )),
            _ => Err(unknown("result rows", method)),
        }
    }
}

/// `table.columns`: by position or by name.
#[derive(Debug)]
struct Columns(Arc<QueryResult>);

impl Object for Columns {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let at = match key.as_i64() {
            Some(i) => index(Some(i), self.0.columns.len())?,
            None => {
                let name = key.as_str()?;
                self.0.columns.iter().position(|c| c == name)?
            }
        };
        Some(Value::from_object(ResultColumn {
            result: self.0.clone(),
            at,
        }))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.0.columns.len())
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        _args: &[Value],
    ) -> Result<Value, JError> {
        let column = |at: usize| {
            Value::from_object(ResultColumn {
                result: self.0.clone(),
                at,
            })
        };
        let n = self.0.columns.len();
        match method {
            "keys" => Ok(Value::from(self.0.columns.clone())),
            "values" => Ok(Value::from((0..n).map(column).collect::<Vec<_>>())),
            "items" => Ok(Value::from(
                (0..n)
                    .map(|i| Value::from(vec![Value::from(self.0.columns[i].clone()), column(i)]))
                    .collect::<Vec<_>>(),
            )),
            _ => Err(unknown("result columns", method)),
        }
    }
}

/// One column of a result: `.name`, `.data_type`, `.values()`.
#[derive(Debug)]
struct ResultColumn {
    result: Arc<QueryResult>,
    at: usize,
}

impl ResultColumn {
    fn values(&self) -> Vec<Value> {
        self.result.rows.iter().map(|r| cell(&r[self.at])).collect()
    }
}

impl Object for ResultColumn {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "name" => Some(Value::from(self.result.columns[self.at].clone())),
            "data_type" => Some(Value::from(self.result.types[self.at].clone())),
            _ => None,
        }
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        _args: &[Value],
    ) -> Result<Value, JError> {
        match method {
            "values" => Ok(Value::from(self.values())),
            "values_distinct" => {
                let mut seen: Vec<Value> = Vec::new();
                for v in self.values() {
                    if !seen.contains(&v) {
                        seen.push(v);
                    }
                }
                Ok(Value::from(seen))
            }
            "values_without_nulls" => Ok(Value::from(
                self.values()
                    .into_iter()
                    .filter(|v| !v.is_none())
                    .collect::<Vec<_>>(),
            )),
            _ => Err(unknown("result columns", method)),
        }
    }
}

/// dbt's `Column`, as `adapter.get_columns_in_relation` returns it for DuckDB.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    /// DuckDB's type, as `DESCRIBE` spells it (`INTEGER`, `DECIMAL(18,3)`, `VARCHAR`).
    pub dtype: String,
}

impl Column {
    fn base(&self) -> String {
        let t = self.dtype.to_ascii_lowercase();
        t.split('(').next().unwrap_or("").trim().to_string()
    }

    fn is_string(&self) -> bool {
        matches!(
            self.base().as_str(),
            "varchar" | "text" | "string" | "character varying" | "char" | "bpchar"
        )
    }

    fn is_integer(&self) -> bool {
        matches!(
            self.base().as_str(),
            "tinyint"
                | "smallint"
                | "integer"
                | "int"
                | "bigint"
                | "hugeint"
                | "utinyint"
                | "usmallint"
                | "uinteger"
                | "ubigint"
                | "uhugeint"
                | "int1"
                | "int2"
                | "int4"
                | "int8"
        )
    }

    fn is_float(&self) -> bool {
        matches!(
            self.base().as_str(),
            "real" | "float" | "float4" | "float8" | "double" | "double precision"
        )
    }

    fn is_numeric(&self) -> bool {
        matches!(self.base().as_str(), "decimal" | "numeric")
    }

    /// `numeric_precision`/`numeric_scale` of a `DECIMAL(p,s)`.
    fn precision_scale(&self) -> (Option<i64>, Option<i64>) {
        let inner = self
            .dtype
            .split_once('(')
            .and_then(|(_, r)| r.strip_suffix(')'));
        let mut parts = inner
            .into_iter()
            .flat_map(|s| s.split(','))
            .map(|p| p.trim().parse::<i64>().ok());
        (parts.next().flatten(), parts.next().flatten())
    }
}

impl Object for Column {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(match key.as_str()? {
            "name" | "column" => Value::from(self.name.clone()),
            "quoted" => Value::from(crate::model::relation::quote_ident(&self.name)),
            "dtype" | "data_type" => Value::from(self.dtype.clone()),
            "char_size" => Value::from(()),
            // dbt-duckdb's columns list a struct's fields; lakeflow's columns have none.
            "fields" => Value::from(Vec::<Value>::new()),
            "numeric_precision" => Value::from(self.precision_scale().0),
            "numeric_scale" => Value::from(self.precision_scale().1),
            _ => return None,
        })
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, JError> {
        Ok(Value::from(match method {
            "is_string" => self.is_string(),
            "is_integer" => self.is_integer(),
            "is_float" => self.is_float(),
            "is_numeric" => self.is_numeric(),
            "is_number" => self.is_integer() || self.is_float() || self.is_numeric(),
            "string_size" => {
                return if self.is_string() {
                    Ok(Value::from(256))
                } else {
                    Err(JError::new(
                        ErrorKind::InvalidOperation,
                        format!("column {} is not a string column", self.name),
                    ))
                };
            }
            "string_type" => {
                let (size,): (Option<i64>,) = from_args(args)?;
                return Ok(Value::from(match size {
                    Some(s) => format!("character varying({s})"),
                    None => "character varying".to_string(),
                }));
            }
            _ => return Err(unknown("columns", method)),
        }))
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<Column {} ({})>", self.name, self.dtype)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> QueryResult {
        QueryResult {
            columns: vec!["id".into(), "name".into()],
            types: vec!["INTEGER".into(), "VARCHAR".into()],
            rows: vec![
                vec![serde_json::json!(1), serde_json::json!("a")],
                vec![serde_json::json!(2), serde_json::json!("b")],
            ],
        }
    }

    fn render(template: &str) -> String {
        let mut env = minijinja::Environment::new();
        env.add_global("t", Table::value(sample()));
        env.add_global("data", data(&sample()));
        env.render_str(template, ())
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn reads_like_an_agate_table() {
        assert_eq!(render("{{ t.columns[0].values() | join(',') }}"), "1,2");
        assert_eq!(
            render("{{ t.columns['name'].values() | join(',') }}"),
            "a,b"
        );
        assert_eq!(render("{{ t.rows[1][1] }}|{{ t.rows[-1]['id'] }}"), "b|2");
        assert_eq!(
            render("{% for r in t %}{{ r[0] }}{% endfor %}{{ t | length }}"),
            "122"
        );
        assert_eq!(render("{{ t.column_names | join(',') }}"), "id,name");
        assert_eq!(
            render("{{ data | map(attribute=0) | join(',') }}"),
            "1,2",
            "load_result(...)['data'] rows index by position"
        );
    }

    #[test]
    fn columns_classify_duckdb_types() {
        let c = |t: &str| Column {
            name: "x".into(),
            dtype: t.into(),
        };
        assert!(c("VARCHAR").is_string());
        assert!(c("BIGINT").is_integer() && !c("BIGINT").is_float());
        assert!(c("DOUBLE").is_float());
        assert!(c("DECIMAL(18,3)").is_numeric());
        assert_eq!(c("DECIMAL(18,3)").precision_scale(), (Some(18), Some(3)));
        assert!(!c("DATE").is_string());
    }
}
