//! The `lakeflow` command: parse the command line, run the command, map the outcome to an
//! exit code (0 ok, 1 a model failed, 2 the project could not be loaded or compiled).

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = lakeflow::cli::Cli::parse();
    match lakeflow::commands::dispatch(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("{err}");
            ExitCode::from(2)
        }
    }
}
