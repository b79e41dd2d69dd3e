//! A dbt unit test (`unit_tests:` in a schema file), compiled: the model's SQL reading
//! fixtures instead of its inputs, the fixtures' rows, and the rows expected back.

/// Rows given as a list of mappings, a CSV text, or a SQL query.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rows {
    Dicts(Vec<serde_json::Map<String, serde_json::Value>>),
    Csv(String),
    Sql(String),
}

/// One `given` input: the CTE name the model reads it by, and the relation whose columns and
/// types the rows take (none for a SQL fixture, whose query says it all).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Given {
    pub cte: String,
    pub relation: Option<String>,
    pub rows: Rows,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct UnitTest {
    /// The name of the model under test (it waits for this test in a build).
    pub model: String,
    /// The model's SQL, reading the givens by their CTE names.
    pub sql: String,
    pub given: Vec<Given>,
    pub expect: Rows,
}
