//! Phase 2, render: Jinja to SQL. A parse pass records each model's `ref`/`source`/`config`
//! calls; configs, relations and locations are then fixed; a compile pass renders the SQL that
//! runs, with ephemeral models inlined as CTEs.

mod agate;
pub mod checks;
mod data_tests;
pub mod deferred;
mod environment;
mod ephemeral;
mod errors;
pub mod functions;
mod globals;
mod graph;
pub mod hooks;
pub mod live;
pub mod macros;
mod naming;
pub use environment::DBT_VERSION;
pub use naming::catalog_name;
pub use sources::source_sql;
mod node;
mod node_configs;
mod operation;
pub use operation::run_operation;
mod packages;
mod pyarith;
mod pycompat;
mod pysource;
mod python_inputs;
mod refs;
mod renderer;
mod scope;
mod seeds;
mod sources;
mod test_args;
mod test_ids;
mod unit_tests;

pub use data_tests::TestInfo;
pub use ephemeral::strip_statement_end;

use crate::error::{Error, Result};
use crate::model::materialization::Materialization;
use crate::model::relation::Relation;
use crate::project::sources::SourceReader;
use crate::project::{Config, FileKind, Project, ProjectKind, SqlFile, config as cfg};
use errors::{check_refs, located};
use functions::{Pass, RefTarget, Scope, Shared};
use macros::MacroSet;
use minijinja::Environment;
pub use node::Node;
use node_configs::{
    base_config, enabled_names, folder_config, project_override, relation_for, unique_id,
    versions_of,
};
pub use python_inputs::PythonInputs;
use python_inputs::python_inputs;
use rayon::prelude::*;
use renderer::Renderer;
use std::collections::HashMap;
use std::sync::Arc;

/// What rendering gives the later phases: the nodes, and the project's `on-run-start`
/// (`pre`) and `on-run-end` (`post`) hooks.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub nodes: Vec<Node>,
    pub hooks: hooks::Hooks,
    /// What renders the deferred nodes when they run; none if no node is deferred.
    pub deferred: Option<Arc<deferred::Deferred>>,
}

/// The project's and packages' macros (with the built-ins they may call) and the Jinja
/// environment they render in, with the import every template starts with.
fn macro_environment(project: &Project) -> Result<(Environment<'static>, MacroSet, String)> {
    let mut macros = MacroSet::build(&project.macros, &project.packages)?;
    if !project.schema.tests.is_empty() {
        macros.add_builtin_tests();
    }
    if naming::overridden(&macros) {
        macros.add_naming_builtins();
    }
    let env = environment::environment(project, &macros)?;
    let prefix = macros.import_prefix();
    Ok((env, macros, prefix))
}

/// Renders the project. Render does no storage I/O: the Delta sources an enabled model uses
/// are read through `reader` (and only those).
pub fn render(project: &Project, reader: &dyn SourceReader) -> Result<Rendered> {
    let (env, macros, prefix) = macro_environment(project)?;
    let renderer = Renderer {
        env: &env,
        macros: &macros,
        project,
        prefix: &prefix,
    };

    let files: Vec<&SqlFile> = project.models.iter().collect();
    let base_configs: Vec<Config> = files.iter().map(|f| base_config(project, f)).collect();
    let mut shared = Shared {
        vars: project.vars.clone(),
        package_vars: Shared::package_vars_of(project),
        models: files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.clone(), i))
            .collect(),
        ref_targets: Vec::new(),
        sources: sources::source_sql(project),
        versions: versions_of(&files),
        empty: project.invocation.empty,
        event_times: Vec::new(),
        source_event_times: sources::event_times(project),
        deferred_refs: project.invocation.defer.clone(),
    };

    // Parse pass.
    let shared_parse = Arc::new(shared.clone());
    let parsed: Vec<functions::Capture> = files
        .par_iter()
        .zip(base_configs.par_iter())
        .map(|(file, base)| {
            let scope = Scope::new(shared_parse.clone(), Pass::Parse, base.clone());
            let this = Relation::new("__unresolved__", file.name.clone());
            renderer.render_model(file, &scope, this, base)?;
            Ok(scope.take_capture())
        })
        .collect::<Vec<Result<_>>>()
        .into_iter()
        .collect::<Result<_>>()?;

    // Final configs, enabled models, relations.
    for (file, capture) in files.iter().zip(&parsed) {
        if let Some((key, expected, found)) = cfg::wrong_shape(&capture.config) {
            return Err(located(
                Error::new(
                    "LF115",
                    format!("config `{key}` must be {expected}, but it is {found}"),
                ),
                &file.path,
                &file.source,
                key,
            )
            .hint(format!("give `{key}` {expected} in the config() call")));
        }
    }
    let mut finals: Vec<Config> = Vec::with_capacity(files.len());
    for ((base, capture), file) in base_configs.iter().zip(&parsed).zip(&files) {
        let mut c = base.clone();
        cfg::merge_into(&mut c, &capture.config);
        let mut path = file.folders.clone();
        path.push(file.name.clone());
        if let Some(over) = project_override(project, file.kind, file.package.as_deref(), &path) {
            cfg::merge_into(&mut c, &over);
        }
        finals.push(c);
    }
    let enabled: Vec<bool> = finals
        .iter()
        .map(|c| cfg::get_bool(c, "enabled").unwrap_or(true))
        .collect();
    shared.event_times = finals
        .iter()
        .map(|c| cfg::get_str(c, "event_time").map(str::to_string))
        .collect();
    shared.models = enabled_names(&files, &enabled)?;
    for (i, capture) in parsed.iter().enumerate() {
        if enabled[i] {
            check_refs(files[i], &capture.refs, &shared, &enabled, &files)?;
        }
    }
    // Delta sources are read (their log, at the version asked for) only when a model uses them.
    let used_sources: std::collections::HashSet<&(String, String)> = parsed
        .iter()
        .zip(&enabled)
        .filter(|(_, on)| **on)
        .flat_map(|(c, _)| &c.sources)
        .collect();
    sources::resolve_delta(project, reader, &mut shared.sources, &used_sources)?;
    let materialized: Vec<Result<Materialization>> = files
        .iter()
        .zip(&finals)
        .map(|(f, c)| {
            if f.kind == FileKind::Seed {
                return Ok(Materialization::Table);
            }
            if f.kind == FileKind::Snapshot {
                return crate::model::snapshot::Snapshot::from_config(c)
                    .map(Materialization::Snapshot)
                    .map_err(|msg| {
                        located(Error::new("LF205", msg), &f.path, &f.source, "snapshot")
                            .hint("give the snapshot `strategy` (timestamp with `updated_at`, or check with `check_cols`) and `unique_key`")
                    });
            }
            // Python models are built as tables unless they say incremental or external (a
            // `view` from a folder's config, too, as dbt-duckdb builds them).
            let defaulted;
            let c = if f.is_python()
                && c.get("materialized").is_none_or(|m| m.as_str() == Some("view"))
            {
                defaulted = {
                    let mut d = c.clone();
                    d.insert("materialized".into(), "table".into());
                    d
                };
                &defaulted
            } else {
                c
            };
            Materialization::from_config(c, project.kind == ProjectKind::Lakeflow).map_err(|msg| {
                located(Error::new("LF205", msg), &f.path, &f.source, "materialized")
                    .hint("see the model configs in the README: materialized, format, incremental_strategy, unique_key, on_schema_change")
            })
        })
        .collect();
    // A materialization lakeflow cannot build stops a lakeflow.yml project; in a dbt project
    // it is that node's error, as dbt fails only the node.
    let mut materialization_errors: Vec<Option<String>> = vec![None; files.len()];
    let mut materializations: Vec<Materialization> = Vec::with_capacity(files.len());
    for (i, m) in materialized.into_iter().enumerate() {
        match m {
            Ok(m) => materializations.push(m),
            Err(e) if project.kind == ProjectKind::Dbt && enabled[i] => {
                materialization_errors[i] = Some(e.to_string());
                materializations.push(Materialization::Table);
            }
            Err(e) if enabled[i] => return Err(e),
            Err(_) => materializations.push(Materialization::Table),
        }
    }
    let mut relations: Vec<Relation> = files
        .iter()
        .zip(&finals)
        .map(|(f, c)| relation_for(project, f, c))
        .collect();
    // The project's generate_*_name macros, where it has them, name each enabled node.
    if renderer.names_nodes() {
        for (i, relation) in relations.iter_mut().enumerate() {
            if enabled[i] {
                let scope = Scope::new(shared_parse.clone(), Pass::Parse, finals[i].clone());
                let schema = relation.schema.clone();
                *relation =
                    renderer.named_relation(files[i], &scope, &finals[i], relation.clone())?;
                // A snapshot's legacy `target_schema` is its schema, whatever
                // generate_schema_name says (dbt does not call it then).
                if files[i].kind == FileKind::Snapshot
                    && cfg::get_str(&finals[i], "target_schema").is_some()
                {
                    relation.schema = schema;
                }
            }
        }
    }
    shared.ref_targets = relations
        .iter()
        .zip(&materializations)
        .map(|(r, m)| match m {
            Materialization::Ephemeral => {
                RefTarget::Ephemeral(format!("__lf_ephemeral__{}", r.identifier))
            }
            _ => RefTarget::Relation(r.clone()),
        })
        .collect();
    let shared = Arc::new(shared);

    // Locations of external models.
    let locations: Vec<Option<String>> = (0..files.len())
        .into_par_iter()
        .map(|i| match materializations[i].external() {
            Some(ext) if enabled[i] => {
                let scope = Scope::new(shared.clone(), Pass::Compile, finals[i].clone());
                renderer
                    .location(files[i], &scope, &relations[i], &finals[i], ext)
                    .map(Some)
            }
            _ => Ok(None),
        })
        .collect::<Vec<Result<_>>>()
        .into_iter()
        .collect::<Result<_>>()?;

    // Compile pass. A node whose Jinja reads the database is deferred (rendered again when
    // it runs); one that does not compile is that node's error.
    let compiled: Vec<Compiled> = (0..files.len())
        .into_par_iter()
        .map(|i| {
            if !enabled[i] {
                return Compiled::Off;
            }
            if let Some(e) = &materialization_errors[i] {
                return Compiled::Failed(e.clone());
            }
            let scope = Scope::new(shared.clone(), Pass::Compile, finals[i].clone());
            let out = renderer
                .render_model(files[i], &scope, relations[i].clone(), &finals[i])
                .and_then(|sql| {
                    let hooks = renderer.hooks(files[i], &scope, &relations[i], &finals[i])?;
                    Ok((sql, hooks))
                });
            match out {
                _ if scope.deferred() => Compiled::Deferred,
                Ok((sql, hooks)) => Compiled::Done(sql, hooks),
                Err(e) => Compiled::Failed(e.to_string()),
            }
        })
        .collect();
    // Incremental models: the variant that selects only new rows, compiled too. An error in it
    // (a var only that branch needs, say) fails the run only if the branch is taken.
    let incremental_bodies: Vec<Option<IncrementalBody>> = (0..files.len())
        .into_par_iter()
        .map(|i| {
            if !matches!(compiled[i], Compiled::Done(..))
                || !matches!(materializations[i], Materialization::Incremental(_))
            {
                return None;
            }
            let scope = Scope::incremental(shared.clone(), finals[i].clone());
            let out = renderer
                .render_model(files[i], &scope, relations[i].clone(), &finals[i])
                .map(|sql| (sql, scope.take_capture().refs))
                .map_err(|e| e.to_string());
            Some(if scope.deferred() {
                Err(live::DEFERRED.to_string())
            } else {
                out
            })
        })
        .collect();
    let mut compiled = compiled;
    for (c, inc) in compiled.iter_mut().zip(&incremental_bodies) {
        if matches!(inc, Some(Err(e)) if e == live::DEFERRED) {
            *c = Compiled::Deferred;
        }
    }
    let bodies: Vec<Option<String>> = compiled
        .iter()
        .map(|c| match c {
            Compiled::Done(sql, _) => Some(sql.clone()),
            _ => None,
        })
        .collect();
    // What an ephemeral model that is deferred or broken does to the nodes that inline it.
    let ephemeral_states: Vec<EphemeralState> = compiled
        .iter()
        .zip(&materializations)
        .map(|(c, m)| match (c, m) {
            (Compiled::Deferred, Materialization::Ephemeral) => EphemeralState::Deferred,
            (Compiled::Failed(e), Materialization::Ephemeral) => EphemeralState::Failed(e.clone()),
            _ => EphemeralState::Fine,
        })
        .collect();
    let parsed_refs: Vec<Vec<String>> = parsed.iter().map(|c| c.refs.clone()).collect();
    let reach = |refs: &[String]| {
        ephemeral::reached_state(
            refs,
            &shared.models,
            &materializations,
            &parsed_refs,
            &ephemeral_states,
        )
    };
    let mut recipes: HashMap<String, deferred::Recipe> = HashMap::new();
    let mut deferred_ephemerals = Vec::new();

    let mut nodes = Vec::new();
    for i in 0..files.len() {
        let file = files[i];
        let unique_id = unique_id(project, file);
        let (body, hooks, mut error, mut is_deferred) = match &compiled[i] {
            Compiled::Off => continue,
            Compiled::Done(sql, hooks) => (sql.as_str(), hooks.clone(), None, false),
            Compiled::Deferred => (deferred::PLACEHOLDER, hooks::Hooks::default(), None, true),
            Compiled::Failed(e) => ("", hooks::Hooks::default(), Some(e.clone()), false),
        };
        // Refs of the incremental branch count too (it may join what the full one does not).
        let mut refs = parsed[i].refs.clone();
        if let Some(Ok((_, more))) = &incremental_bodies[i] {
            refs.extend(more.iter().cloned());
        }
        let refs = dedup(refs);
        match reach(&refs) {
            EphemeralState::Fine => {}
            EphemeralState::Deferred => is_deferred = error.is_none(),
            EphemeralState::Failed(e) => error = error.or(Some(e)),
        }
        if is_deferred {
            let recipe = deferred::Recipe {
                file: file.clone(),
                config: finals[i].clone(),
                relation: relations[i].clone(),
                refs: refs.clone(),
                incremental: matches!(materializations[i], Materialization::Incremental(_)),
                hooks: true,
            };
            if materializations[i] == Materialization::Ephemeral {
                deferred_ephemerals.push((i, recipe.clone()));
            }
            recipes.insert(unique_id.clone(), recipe);
        }
        let compiled_sql = if is_deferred {
            deferred::PLACEHOLDER.to_string()
        } else {
            ephemeral::inline_ephemerals(&refs, &shared.models, &materializations, &bodies, body)
        };
        let incremental_sql = match (&incremental_bodies[i], is_deferred) {
            (Some(r), false) => Some(
                r.as_ref()
                    .map(|(b, _)| {
                        ephemeral::inline_ephemerals(
                            &refs,
                            &shared.models,
                            &materializations,
                            &bodies,
                            b,
                        )
                    })
                    .map_err(Clone::clone),
            ),
            _ => None,
        };
        let python = file
            .is_python()
            .then(|| python_inputs(&refs, &parsed[i].sources, &shared, &materializations[i]));
        if let Some(Err(e)) = &python {
            error = error.or(Some(e.clone()));
        }
        let mut fqn = vec![file.package.clone().unwrap_or_else(|| project.name.clone())];
        fqn.extend(file.folders.iter().cloned());
        match &file.version {
            Some(v) => fqn.extend([v.model.clone(), format!("v{}", v.v)]),
            None => {
                // A snapshot block's fqn has its file's stem before its name, as dbt's.
                if file.kind == FileKind::Snapshot
                    && file.path.extension().is_some_and(|e| e == "sql")
                    && let Some(stem) = file.path.file_stem()
                {
                    fqn.push(stem.to_string_lossy().into_owned());
                }
                fqn.push(file.name.clone());
            }
        }
        nodes.push(Node {
            version: file.version.clone(),
            contract: node_configs::contract(project, file, &finals[i]),
            constraints: node_configs::constraints(project, file, &finals[i]),
            unique_id,
            kind: file.kind,
            name: file.name.clone(),
            fqn,
            path: file.path.clone(),
            layer: file.folders.first().cloned(),
            tags: cfg::as_string_list(finals[i].get("tags")),
            config: finals[i].clone(),
            materialization: materializations[i].clone(),
            relation: relations[i].clone(),
            location: locations[i].clone(),
            refs,
            sources: dedup(parsed[i].sources.clone()),
            raw_sql: file.source.clone(),
            compiled_sql,
            checksum: file.checksum.clone(),
            unrendered_config: node_configs::unrendered(project, file, &parsed[i].config),
            test: None,
            hooks,
            incremental_sql,
            error,
            deferred: is_deferred,
            python: python.and_then(|p| p.ok()),
        });
    }
    let test_recipes = std::sync::Mutex::new(HashMap::new());
    nodes.extend(data_tests::compile(
        &renderer,
        &data_tests::Models {
            shared: &shared,
            enabled: &enabled,
            files: &files,
            materializations: &materializations,
            bodies: &bodies,
            reach: &reach,
            recipes: &test_recipes,
        },
    )?);
    recipes.extend(test_recipes.into_inner().unwrap_or_else(|p| p.into_inner()));
    nodes.extend(unit_tests::compile(
        &renderer,
        &unit_tests::Models {
            shared: &shared,
            files: &files,
            finals: &finals,
            enabled: &enabled,
            refs: &parsed_refs,
        },
    ));
    checks::check_outputs(&nodes)?;
    let hooks::RunHooks {
        hooks,
        start_live,
        end_live,
    } = hooks::project_hooks(&renderer)?;
    let deferred = (!recipes.is_empty() || start_live || end_live).then(|| {
        Arc::new(deferred::Deferred {
            env,
            macros,
            prefix,
            project: project.clone(),
            shared: shared.clone(),
            materializations,
            bodies,
            recipes,
            refs_of: parsed_refs,
            ephemerals: deferred_ephemerals,
            on_run_start: start_live,
            on_run_end: end_live,
            graph: std::sync::OnceLock::new(),
        })
    });
    Ok(Rendered {
        nodes,
        hooks,
        deferred,
    })
}

/// The compile pass of one model.
enum Compiled {
    /// Disabled.
    Off,
    Done(String, hooks::Hooks),
    /// Reads the database while rendering: rendered when it runs.
    Deferred,
    /// Does not compile: the node's error.
    Failed(String),
}

/// What the ephemeral models a node inlines say about it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum EphemeralState {
    Fine,
    /// One is deferred, so the node is too.
    Deferred,
    /// One does not compile: the node cannot either.
    Failed(String),
}

/// An incremental branch compiled: its SQL and refs, or why it does not compile.
type IncrementalBody = std::result::Result<(String, Vec<String>), String>;

fn dedup<T: PartialEq>(items: Vec<T>) -> Vec<T> {
    let mut out = Vec::with_capacity(items.len());
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

#[cfg(test)]
mod tests;
