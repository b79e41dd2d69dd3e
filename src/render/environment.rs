//! The Jinja environment every node renders in: dbt's context functions and objects, the
//! project's and packages' macros, and the namespaces through which packages are called.

use super::functions::{self, ConfigObject};
use super::live::Adapter;
use super::macros::{self, MacroSet};
use super::{globals, live, packages, pyarith, pycompat, pysource};
use crate::error::{Error, Result};
use crate::project::Project;
use minijinja::value::{Object, Rest, Value, ValueOrKwargs};
use minijinja::{AutoEscape, Environment, State, UndefinedBehavior};
use std::sync::Arc;

pub(super) fn environment(project: &Project, macros: &MacroSet) -> Result<Environment<'static>> {
    let mut env = Environment::new();
    // dbt prints an undefined name as nothing (Jinja2's default); lakeflow's own projects
    // keep the strict check that catches a misspelt name.
    env.set_undefined_behavior(match project.kind {
        crate::project::ProjectKind::Dbt => UndefinedBehavior::Lenient,
        crate::project::ProjectKind::Lakeflow => UndefinedBehavior::Strict,
    });
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_unknown_method_callback(pycompat::unknown_method);
    env.add_function("ref", functions::ref_);
    env.add_function("source", functions::source);
    env.add_function("var", functions::var);
    env.add_function("env_var", super::functions::env_var);
    env.add_function("return", functions::return_);
    env.add_function("log", functions::log);
    // Python's print(), as dbt has it: to standard output, nothing in the template.
    env.add_function("print", |value: Value| {
        crate::outln!("{value}");
        String::new()
    });
    env.add_function("is_incremental", functions::is_incremental);
    env.add_function(pysource::MUTABLE_FN, pycompat::mutable);
    env.add_function("namespace", pycompat::namespace);
    env.add_function(pyarith::FUNCTION, pyarith::binop);
    env.add_function("tojson", globals::tojson);
    env.add_function("fromjson", globals::fromjson);
    env.add_function("toyaml", globals::toyaml);
    env.add_function("fromyaml", globals::fromyaml);
    env.add_function("zip", globals::zip);
    env.add_function("set", globals::set);
    env.add_function("set_strict", globals::set);
    env.add_function("local_md5", globals::local_md5);
    env.add_filter("as_text", globals::as_text);
    env.add_filter("as_bool", globals::as_bool);
    env.add_filter("as_number", globals::as_number);
    env.add_filter("as_native", globals::as_native);
    env.add_global("modules", globals::modules());
    env.add_global("flags", globals::flags(&project.invocation));
    env.add_global(
        "invocation_args_dict",
        globals::invocation_args(&project.invocation, &project.target.name),
    );
    env.add_global("dbt_metadata_envs", globals::metadata_envs());
    env.add_global("dbt_version", Value::from(DBT_VERSION));
    env.add_global(
        "invocation_id",
        Value::from(uuid::Uuid::new_v4().to_string()),
    );
    env.add_global(
        "run_started_at",
        Value::from_object(globals::PyDateTime::now_utc()),
    );
    env.add_global("dbt", Value::from_object(globals::DbtNamespace));
    env.add_template(globals::DBT_TEMPLATE, globals::DBT_SOURCE)
        .map_err(|e| Error::new("LF202", format!("lakeflow's dbt macros: {e}")))?;
    // dbt's macros answer to their bare names too; packages' and the project's macros, added
    // below, win.
    for name in globals::dbt_macro_names() {
        env.add_function(name, globals::dbt_macro(name));
    }
    env.add_global(
        functions::PACKAGES_VAR,
        Value::from(macros.packages.clone()),
    );
    env.add_function("run_query", live::run_query);
    env.add_function("statement", live::statement);
    env.add_function("load_result", live::load_result);
    env.add_global("api", Value::from_object(live::Api));
    env.add_global("config", Value::from_object(ConfigObject));
    let dispatcher = Arc::new(packages::Dispatcher::new(
        &project.name,
        &project.dispatch,
        macros,
    ));
    env.add_global(
        "adapter",
        Value::from_object(Adapter {
            dispatch: dispatcher.clone(),
        }),
    );
    env.add_global("validation", Value::from_object(Validation));
    env.add_global("basestring", Value::from("str"));
    env.add_global(
        "exceptions",
        minijinja::context! {
            raise_compiler_error => Value::from_function(functions::raise_compiler_error),
            warn => Value::from_function(|msg: String| { crate::warnln!("{msg}"); String::new() }),
        },
    );
    env.add_global(
        "target",
        functions::to_value(crate::project::yaml::target_json(&project.target)),
    );
    env.add_global("project_name", Value::from(project.name.clone()));
    if !macros.is_empty() {
        let source = pysource::python_source(&macros.source).into_owned();
        env.add_template_owned(macros::TEMPLATE, source)
            .map_err(|e| {
                let base = Error::new("LF202", crate::project::yaml::jinja_reason(&e))
                    .hint("fix the Jinja syntax of the macro file");
                match e.line().and_then(|l| macros.locate(l)) {
                    Some((path, line)) => {
                        let src = project
                            .macros
                            .iter()
                            .chain(project.packages.iter().flat_map(|p| &p.macros))
                            .find(|m| m.path == path)
                            .map(|m| m.source.as_str())
                            .unwrap_or("");
                        base.at(&path, line, None).with_snippet_from(src)
                    }
                    None => base,
                }
            })?;
        // A package's own macros, called without its namespace from inside the package.
        let mut package_local: std::collections::BTreeMap<&str, Vec<(String, String)>> =
            Default::default();
        for (package, name, internal) in macros.all() {
            if let Some(p) = package
                && !macros.has(name)
            {
                package_local
                    .entry(name)
                    .or_default()
                    .push((p.to_string(), internal.to_string()));
            }
        }
        // Names lakeflow's own context already gives (`ref`, `log`, dbt's cross-database
        // macros, ...) keep their meaning outside the package.
        let taken: std::collections::HashSet<String> = env
            .globals()
            .map(|(n, _)| n.to_string())
            .filter(|n| !globals::dbt_macro_names().contains(&n.as_str()))
            .collect();
        for (name, candidates) in package_local {
            if taken.contains(name) {
                continue;
            }
            let owned = name.to_string();
            env.add_function(
                name.to_string(),
                move |state: &mut State, args: Rest<ValueOrKwargs>| {
                    functions::call_package_local(state, &owned, &candidates, &args.into_values())
                },
            );
        }
        for (name, internal) in macros.names() {
            let internal = internal.to_string();
            // Keyword arguments pass through: `cents_to_dollars('amount', scale=4)`.
            env.add_function(
                name.to_string(),
                move |state: &mut State, args: Rest<ValueOrKwargs>| {
                    functions::call_macro(state, &internal, &args.into_values())
                },
            );
        }
        for package in &macros.packages {
            env.add_global(
                package.clone(),
                Value::from_object(packages::Namespace {
                    package: Some(package.clone()),
                    dispatcher: dispatcher.clone(),
                }),
            );
        }
        // The project's own macros answer to its name too (`my_project.my_macro()`).
        const TAKEN: [&str; 12] = [
            "dbt",
            "target",
            "model",
            "this",
            "config",
            "adapter",
            "modules",
            "exceptions",
            "api",
            "flags",
            "graph",
            "execute",
        ];
        if !macros.packages.contains(&project.name) && !TAKEN.contains(&project.name.as_str()) {
            env.add_global(
                project.name.clone(),
                Value::from_object(packages::Namespace {
                    package: None,
                    dispatcher: dispatcher.clone(),
                }),
            );
        }
    }
    Ok(env)
}

/// The dbt version lakeflow behaves as, for `dbt_version` in Jinja.
/// The dbt version lakeflow answers to (`dbt_version`, artifacts' metadata).
pub const DBT_VERSION: &str = "1.11.0";

/// `validation.any[...]` as dbt-duckdb macros write it in `config.get(..., validator=...)`.
#[derive(Debug)]
struct Validation;

impl Object for Validation {
    fn get_value(self: &Arc<Self>, _key: &Value) -> Option<Value> {
        Some(Value::from_object(Validation))
    }
}
