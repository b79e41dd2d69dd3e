//! `lakeflow run-operation MACRO --args '{...}'`: one macro run against the catalog, as
//! `dbt run-operation` runs it (what it renders is printed; its queries change the catalog).

use super::load;
use crate::catalog::Catalog;
use crate::cli::Global;
use crate::error::{Error, Result};

pub fn run_operation(g: &Global, name: &str, args: Option<&str>) -> Result<bool> {
    let mut project = load(g)?;
    for w in &project.warnings {
        crate::warnln!("{w}");
    }
    project.invocation.which = "run-operation".into();
    let args = match args.map(str::trim).filter(|a| !a.is_empty()) {
        None => serde_json::Map::new(),
        Some(text) => {
            let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| {
                Error::new("LF219", format!("--args is not valid YAML: {e}"))
                    .hint("pass a mapping, e.g. --args '{table: orders, days: 7}'")
            })?;
            match crate::project::yaml::to_json(&value) {
                serde_json::Value::Object(m) => m,
                _ => {
                    return Err(
                        Error::new("LF219", "--args must be a mapping of names to values")
                            .hint("pass a mapping, e.g. --args '{table: orders}'"),
                    );
                }
            }
        }
    };
    let catalog = Catalog::open(&project.target, "lakeflow run-operation")?;
    let conn = catalog
        .conn
        .try_clone()
        .map_err(|e| Error::new("LF402", format!("cannot open a DuckDB connection: {e}")))?;
    // dbt's `graph`: the project's nodes, rendered as a compile would.
    let nodes = super::render_project(&project)?.nodes;
    let graph = crate::report::artifacts::graph(&project, &nodes);
    let out = crate::render::run_operation(
        &project,
        name,
        &args,
        crate::execute::live::database(conn),
        Some(&graph),
    )?;
    if !out.is_empty() {
        crate::outln!("{out}");
    }
    catalog.finish()?;
    Ok(true)
}
