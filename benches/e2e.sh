#!/usr/bin/env bash
# End-to-end benchmark: lakeflow vs dbt-duckdb vs raw DuckDB on this machine, in one run.
# Installs its peers in a throwaway virtualenv (same DuckDB 1.5.5 on every side), then prints
# one table of medians and ratios and writes benches/RESULTS.md.
#   ROWS=20000000 RUNS=3 benches/e2e.sh      (defaults shown)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lakeflow-target}"
VENV="${LAKEFLOW_BENCH_VENV:-$HOME/.cache/lakeflow-bench-venv}"
cargo build --release
if ! "$VENV/bin/python" -c "import duckdb, deltalake, pyarrow, dbt.version" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet 'duckdb==1.5.5' 'dbt-core<1.12' dbt-duckdb deltalake pyarrow
fi
exec "$VENV/bin/python" benches/e2e.py --lakeflow "$CARGO_TARGET_DIR/release/lakeflow" --venv "$VENV" \
  --rows "${ROWS:-20000000}" --runs "${RUNS:-3}" --results benches/RESULTS.md "$@"
