//! The `lakeflow` command: parse the command line, run the command, map the outcome to an
//! exit code (0 ok, 1 a model failed, 2 the project could not be loaded or compiled).

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Like other command-line tools, stop quietly when the reader of stdout goes away
    // (`lakeflow delta history t | head`) instead of failing on the next print.
    // SAFETY: called once at start-up, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
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
