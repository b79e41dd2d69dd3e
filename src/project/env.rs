//! `env_var()`, as dbt defines it: for the project's YAML files, profiles.yml and the models'
//! Jinja alike, so the loader owns it and render borrows it.

use minijinja::value::Value;
use minijinja::{Error as JError, ErrorKind};

/// `env_var()` everywhere but in profiles.yml: as in dbt, `DBT_ENV_SECRET*` variables are
/// refused, so their values never land in compiled SQL, the manifest or the catalog.
pub fn env_var(name: String, default: Option<Value>) -> Result<Value, JError> {
    if name.starts_with(crate::redact::SECRET_ENV_PREFIX) {
        return Err(JError::new(
            ErrorKind::InvalidOperation,
            format!(
                "secret env vars are allowed only in profiles.yml, but '{name}' is read here; read it in profiles.yml, or rename the variable if its value is no secret"
            ),
        ));
    }
    secret_env_var(name, default)
}

/// `env_var()` of profiles.yml, where secrets belong; their values are masked in all output.
pub fn secret_env_var(name: String, default: Option<Value>) -> Result<Value, JError> {
    match std::env::var(&name) {
        Ok(v) => Ok(Value::from(v)),
        Err(_) => default.ok_or_else(|| {
            JError::new(
                ErrorKind::UndefinedError,
                format!("environment variable '{name}' is not set and no default was given; set it or use env_var('{name}', 'default')"),
            )
        }),
    }
}
