#!/usr/bin/env bash
# Criterion benchmarks of the pure phases (load, render, DAG, select) on synthetic projects of
# 100, 1,000 and 5,000 models. Built with the release profile, the one tests and runs use, so
# DuckDB is not compiled a second time for cargo's bench profile.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lakeflow-target}"
cargo build --release --bench phases
bin="$(ls -t "$CARGO_TARGET_DIR"/release/deps/phases-* | grep -v '\.d$' | head -n 1)"
exec "$bin" --bench "$@"
