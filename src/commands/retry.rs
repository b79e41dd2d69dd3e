//! `lakeflow retry`: runs again what did not succeed in the last run, as `dbt retry`: the
//! nodes whose result in `target/run_results.json` is an error, a failing test or a skip,
//! with the same command and the same `--full-refresh` / `--empty` / `--vars`.

use crate::cli::{Global, RunArgs, Selection};
use crate::error::{Error, Result};
use serde_json::Value;

pub fn retry(g: &Global) -> Result<bool> {
    let project = super::load(g)?;
    let target = project.target_path.clone();
    let file = target.join("run_results.json");
    let text = std::fs::read_to_string(&file).map_err(|e| {
        Error::new("LF308", format!("cannot read {}: {e}", file.display()))
            .hint("lakeflow retry runs again what failed in the last run, e.g. of `lakeflow build`")
    })?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| {
        Error::new(
            "LF308",
            format!("{} is not a run results file: {e}", file.display()),
        )
    })?;
    let args = doc.get("args").cloned().unwrap_or(Value::Null);
    let which = args
        .get("which")
        .and_then(Value::as_str)
        .unwrap_or("build")
        .to_string();
    if !matches!(
        which.as_str(),
        "build" | "run" | "test" | "seed" | "snapshot"
    ) {
        return Err(Error::new(
            "LF308",
            format!("the last run was `{which}`, which lakeflow retry does not run again"),
        )
        .hint("retry follows build, run, test, seed and snapshot"));
    }
    let statuses = crate::state::statuses(&doc).ok_or_else(|| {
        Error::new(
            "LF308",
            format!(
                "{} is not a run results file: it has no `results` list",
                file.display()
            ),
        )
    })?;
    // Run hooks and exposures are listed too; they are not run again by themselves.
    let again = statuses
        .iter()
        .filter(|(id, status)| {
            matches!(status.as_str(), "error" | "fail" | "skipped")
                && !id.starts_with("operation.")
                && !id.starts_with("exposure.")
        })
        .count();
    if again == 0 {
        crate::outln!("nothing to retry: every node of the last `{which}` succeeded");
        return Ok(true);
    }
    crate::outln!("retrying {again} nodes of the last `{which}`");
    let mut g = g.clone();
    if g.vars.is_none()
        && let Some(vars) = args
            .get("vars")
            .filter(|v| v.as_object().is_some_and(|m| !m.is_empty()))
    {
        g.vars = Some(vars.to_string());
    }
    let flag = |k: &str| args.get(k).and_then(Value::as_bool).unwrap_or(false);
    let run = RunArgs {
        selection: Selection {
            select: ["result:error", "result:fail", "result:skipped"]
                .map(String::from)
                .to_vec(),
            state: Some(target),
            ..Selection::default()
        },
        full_refresh: flag("full_refresh"),
        empty: flag("empty"),
        ..RunArgs::default()
    };
    super::build::run(&g, &run, &which)
}
