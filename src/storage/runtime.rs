//! The one async runtime of the process: every object-store request (S3 listings, uploads,
//! deletes, the Delta log) runs on it. It is started the first time something needs it, so a
//! run that touches only local files never starts it.

use crate::error::{Error, Result};
use std::sync::OnceLock;

/// The shared runtime, started on first use.
pub fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RT: OnceLock<Result<tokio::runtime::Runtime>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("lakeflow-io")
            .enable_all()
            .build()
            .map_err(|e| Error::new("LF520", format!("cannot start the storage client: {e}")))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Runs `f` to completion on the shared runtime (from synchronous code only).
pub fn block_on<F: std::future::Future>(f: F) -> Result<F::Output> {
    Ok(runtime()?.block_on(f))
}
