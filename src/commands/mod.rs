//! One module per command; each runs the phases it needs, in the order of the pipeline:
//! load (`project`) -> render -> graph -> select -> execute -> publish -> report.

mod build;
mod catalog;
mod clean;
mod compile;
mod debug;
mod delta;
mod deps;
mod docs;
mod freshness;
mod operation;
mod retry;

use crate::cli::{Cli, Command, Global, Selection};
use crate::error::Result;
use crate::project::{LoadOptions, Project};
use crate::render::Node;
use crate::{graph, project, render, select};

/// Returns Ok(false) when the command ran but something in it failed.
pub fn dispatch(cli: Cli) -> Result<bool> {
    let g = cli.global;
    crate::redact::set_json_events(g.log_format == crate::report::LogFormat::Json);
    match cli.command {
        Command::Init { name } => crate::example_data::init(&name).map(|_| true),
        Command::Deps => deps::deps(&g),
        Command::Compile(sel) => compile::compile(&g, &sel),
        Command::Parse => compile::parse(&g),
        Command::Show {
            selection,
            inline,
            limit,
            format,
        } => compile::show(&g, &selection, inline.as_deref(), limit, format),
        Command::RunOperation { name, args } => {
            operation::run_operation(&g, &name, args.as_deref())
        }
        Command::Ls { selection, output } => compile::ls(&g, &selection, output),
        Command::Run(args) => build::run(&g, &args, "run"),
        Command::Retry => retry::retry(&g),
        Command::Build(args) => build::run(&g, &args, "build"),
        Command::Seed(args) => build::run(&g, &args, "seed"),
        Command::Snapshot(args) => build::run(&g, &args, "snapshot"),
        Command::Test(args) => build::run(&g, &args, "test"),
        Command::Clean => clean::clean(&g),
        Command::Debug => debug::debug(&g),
        Command::Query { sql, format, from } => {
            let project = load(&g)?;
            let storage = crate::storage::Storage::for_target(&project.target)?;
            crate::query::run(&project, &storage, &sql, format, from).map(|_| true)
        }
        Command::Source {
            action: crate::cli::SourceCommand::Freshness { select, output },
        } => freshness::freshness(&g, &select, output.as_deref()),
        Command::Docs { action } => match action {
            crate::cli::DocsCommand::Generate { selection } => docs::generate(&g, &selection),
            crate::cli::DocsCommand::Serve { host, port } => docs::serve(&g, &host, port),
        },
        Command::Catalog { action } => catalog::catalog_command(&g, action),
        Command::Serve {
            bind,
            tokens_file,
            max_rows,
            timeout,
            max_concurrent,
            memory_limit,
            allow_read,
            tls_cert,
            tls_key,
        } => {
            let tokens = crate::serve::tokens(
                std::env::var("LAKEFLOW_SERVE_TOKENS").ok().as_deref(),
                tokens_file.as_deref(),
            )?;
            let project = load(&g)?;
            crate::serve::run(
                project,
                crate::serve::Options {
                    bind,
                    tokens,
                    max_rows,
                    timeout: std::time::Duration::from_secs(timeout),
                    max_concurrent,
                    session: crate::query::SessionLimits {
                        memory_limit: Some(memory_limit),
                        read_dirs: allow_read,
                    },
                    tls: tls_cert.zip(tls_key),
                },
            )
            .map(|_| true)
        }
        Command::Delta { action } => delta::delta_command(&g, action),
        Command::ExampleData {
            out,
            rows,
            models,
            batch,
        } => {
            let dir = out.or(g.project_dir.clone()).unwrap_or_else(|| ".".into());
            match (models, batch) {
                (Some(n), _) => crate::example_data::synthetic_project(&dir, n).map(|_| true),
                (None, Some(b)) => crate::example_data::land_batch(&dir, b, rows).map(|_| true),
                (None, None) => crate::example_data::generate(&dir, rows).map(|_| true),
            }
        }
    }
}

pub(crate) fn load(g: &Global) -> Result<Project> {
    // dbt's environment variables stand in for the flags (after lakeflow's own).
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    project::load(&LoadOptions {
        project_dir: g
            .project_dir
            .clone()
            .or_else(|| env("DBT_PROJECT_DIR").map(Into::into)),
        profiles_dir: g.profiles_dir.clone(),
        target: g
            .target
            .clone()
            .or_else(|| env("DBT_TARGET").and_then(|v| v.into_string().ok())),
        vars: g.vars.clone(),
    })
}

/// load -> render -> graph -> select.
pub(crate) struct Planned {
    pub project: Project,
    pub nodes: Vec<Node>,
    /// on-run-start / on-run-end, rendered with the nodes.
    pub hooks: render::hooks::Hooks,
    /// Renders the nodes whose Jinja reads the database, when they run.
    pub deferred: Option<std::sync::Arc<render::deferred::Deferred>>,
    pub dag: graph::Dag,
    pub plan: Vec<usize>,
}

/// Plans the command `which` (`build`, `run`, `compile`, ...) over the selection.
pub(crate) fn plan(
    g: &Global,
    sel: &Selection,
    which: &str,
    full_refresh: bool,
) -> Result<Planned> {
    plan_with(g, sel, which, full_refresh, false)
}

/// [`plan`], with `--empty` (refs and sources read no rows).
pub(crate) fn plan_with(
    g: &Global,
    sel: &Selection,
    which: &str,
    full_refresh: bool,
    empty: bool,
) -> Result<Planned> {
    let mut project = load(g)?;
    project.invocation.which = which.to_string();
    project.invocation.full_refresh = full_refresh;
    project.invocation.empty = empty;
    plan_loaded(project, sel)
}

/// Renders, graphs and selects a loaded project.
pub(crate) fn plan_loaded(mut project: Project, sel: &Selection) -> Result<Planned> {
    // `--selector NAME`: the selection selectors.yml names.
    let named;
    let sel = match &sel.selector {
        None => sel,
        Some(name) => {
            let found = project
                .selectors
                .iter()
                .find(|s| &s.name == name)
                .ok_or_else(|| {
                    crate::error::Error::new(
                        "LF306",
                        format!("there is no selector '{name}' in selectors.yml"),
                    )
                    .hint("define it under `selectors:` in selectors.yml at the project root")
                })?;
            named = Selection {
                select: found.select.clone(),
                exclude: found.exclude.clone(),
                ..sel.clone()
            };
            &named
        }
    };
    project.invocation.select = sel.select.clone();
    project.invocation.exclude = sel.exclude.clone();
    for w in &project.warnings {
        crate::warnln!("{w}");
    }
    let render::Rendered {
        nodes,
        hooks,
        deferred,
    } = render_project(&project)?;
    // Nodes rendered when they run see dbt's `graph` of the whole project.
    if let Some(d) = &deferred {
        d.set_graph(&crate::report::artifacts::graph(&project, &nodes));
    }
    let dag = graph::build(&nodes)?;
    let state = match &sel.state {
        Some(dir) => {
            let mut state = select::State::load(dir)?;
            state.set_current(&crate::report::artifacts::manifest(&project, &nodes, ""));
            Some(state)
        }
        None => None,
    };
    let selection = select::select_with(
        &nodes,
        &dag,
        &sel.select,
        &sel.exclude,
        &select::Cx {
            state: state.as_ref(),
            exposures: &project.schema.exposures,
        },
    )?;
    for s in &selection.unmatched {
        crate::warnln!("the selector '{s}' matches no model");
    }
    if sel.defer {
        let Some(state) = &state else {
            return Err(
                crate::error::Error::new("LF304", "--defer needs --state DIR").hint(
                    "pass --state DIR, the target/ folder of the run whose relations to read",
                ),
            );
        };
        let defer = deferrals(&project, &nodes, &selection.nodes, state, sel.favor_state);
        if !defer.is_empty() {
            // Render again with those refs reading the state's relations.
            project.invocation.defer = defer;
            let rendered = render_project(&project)?;
            if let Some(d) = &rendered.deferred {
                d.set_graph(&crate::report::artifacts::graph(&project, &rendered.nodes));
            }
            let dag = graph::build(&rendered.nodes)?;
            return Ok(Planned {
                project,
                nodes: rendered.nodes,
                hooks: rendered.hooks,
                deferred: rendered.deferred,
                dag,
                plan: selection.nodes,
            });
        }
    }
    Ok(Planned {
        project,
        nodes,
        hooks,
        deferred,
        dag,
        plan: selection.nodes,
    })
}

/// `--defer`: the models that are not selected, not built in this target's catalog (any, with
/// `--favor-state`) and in the state's manifest, with where the state's run built them.
fn deferrals(
    project: &Project,
    nodes: &[crate::render::Node],
    selected: &[usize],
    state: &select::State,
    favor_state: bool,
) -> std::collections::HashMap<String, (String, String, String)> {
    let selected: std::collections::HashSet<usize> = selected.iter().copied().collect();
    let built = if favor_state {
        Default::default()
    } else {
        crate::catalog::existing_relations_read_only(&project.target)
    };
    let here = render::catalog_name(&project.target.catalog);
    nodes
        .iter()
        .enumerate()
        .filter(|(i, n)| !selected.contains(i) && !n.is_test() && !n.is_ephemeral())
        .filter(|(_, n)| {
            !built.contains(&(n.relation.schema.clone(), n.relation.identifier.clone()))
        })
        .filter_map(|(_, n)| {
            let (database, schema, identifier) = state.relation_of(&n.unique_id)?;
            let database = if database.eq_ignore_ascii_case(&here) {
                String::new()
            } else {
                database
            };
            Some((n.name.clone(), (database, schema, identifier)))
        })
        .collect()
}

/// Render, with the Delta sources the models use read from their logs (the one piece of
/// storage I/O rendering needs, handed to it by the delta module).
pub(crate) fn render_project(project: &Project) -> Result<render::Rendered> {
    render::render(
        project,
        &crate::delta::sources::Reader::new(&project.target),
    )
}
