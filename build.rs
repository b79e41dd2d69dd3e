//! With `--no-default-features`, lakeflow links a prebuilt libduckdb.so found in DUCKDB_LIB_DIR
//! (libduckdb-sys's own variable). That folder becomes the binaries' rpath, so they (and the
//! test binaries) run without LD_LIBRARY_PATH. The default, bundled build needs nothing here.
fn main() {
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    if std::env::var_os("CARGO_FEATURE_BUNDLED").is_some() {
        return;
    }
    if let Ok(dir) = std::env::var("DUCKDB_LIB_DIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
