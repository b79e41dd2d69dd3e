//! What a Python model reads, handed to the execute phase that runs it.

use super::functions::{RefTarget, Shared};
use crate::model::materialization::Materialization;
use crate::model::relation::Relation;

/// What a Python model reads: each `dbt.ref(name)` and `dbt.source(source, table)` with the SQL
/// that reads it (a relation, or a source's expression).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PythonInputs {
    pub refs: Vec<(String, Relation)>,
    pub sources: Vec<(String, String)>,
}

/// A Python model's inputs; why it cannot run, if an input is an ephemeral model (as in dbt)
/// or its materialization is one Python cannot give.
pub(super) fn python_inputs(
    refs: &[String],
    sources: &[(String, String)],
    shared: &Shared,
    materialization: &Materialization,
) -> std::result::Result<PythonInputs, String> {
    if matches!(
        materialization,
        Materialization::View | Materialization::Ephemeral
    ) {
        return Err(format!(
            "a Python model is materialized as table, incremental or external, not {}",
            materialization.name()
        ));
    }
    let mut inputs = PythonInputs::default();
    for name in refs {
        let Some(&i) = shared.models.get(name) else {
            continue;
        };
        match &shared.ref_targets[i] {
            RefTarget::Relation(r) => inputs.refs.push((name.clone(), r.clone())),
            RefTarget::Ephemeral(_) => {
                return Err(format!(
                    "a Python model cannot read the ephemeral model '{name}' (as in dbt)"
                ));
            }
        }
    }
    for (s, t) in sources {
        if let Some(sql) = shared.sources.get(&(s.clone(), t.clone())) {
            inputs.sources.push((format!("{s}.{t}"), sql.clone()));
        }
    }
    Ok(inputs)
}
