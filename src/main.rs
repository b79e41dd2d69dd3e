//! The `lakeflow` command: parse the command line, run the command, map the outcome to an
//! exit code (0 ok, 1 a model failed, 2 the project could not be loaded or compiled).

use clap::Parser;
use std::process::ExitCode;

// Loading and rendering a project allocates many small strings and values; mimalloc serves
// them at a fraction of the system allocator's cost (DuckDB keeps its own).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc v3's `mi_option_purge_delay` (the position in its `mi_option_e`).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    // Memory freed goes back to the system after 5 ms instead of mimalloc's 10: compiling a
    // large project frees as much as it allocates, and a longer delay only raises the peak
    // (a shorter one makes the kernel zero the same pages again).
    // SAFETY: sets an allocator option; called before any other thread exists.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 5);
    }
    // Like other command-line tools, stop quietly when the reader of stdout goes away
    // (`lakeflow delta history t | head`) instead of failing on the next print.
    // SAFETY: called once at start-up, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    lakeflow::redact::register_env();
    // clap's messages quote the arguments, which may hold a secret: they are printed like
    // every other line.
    let cli = match lakeflow::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let text = e.render().to_string();
            if e.use_stderr() {
                lakeflow::errln!("{}", text.trim_end());
            } else {
                lakeflow::outln!("{}", text.trim_end());
            }
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    match lakeflow::commands::dispatch(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            lakeflow::errln!("{err}");
            ExitCode::from(2)
        }
    }
}
