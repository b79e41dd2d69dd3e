"""Runs one dbt Python model for lakeflow: `python runner.py inputs.json`.

inputs.json holds the model's source and path, its config, its relation (`this`), a Parquet
file for each dbt.ref() / dbt.source() it reads (written by lakeflow), and the statements that
make the relations it reads (and its own, when it runs incrementally) views of the same
names in its session. The model's
`model(dbt, session)` gets a `dbt` object and a DuckDB session; what it returns (a DuckDB
relation, or a pandas / polars / pyarrow frame) is written to the `output` Parquet file,
which lakeflow then builds the model from.
"""
import json
import sys

import duckdb


class _Config:
    def __init__(self, values):
        self._values = values

    def __call__(self, *args, **kwargs):
        return None

    def get(self, key, default=None):
        return self._values.get(key, default)


class _Dbt:
    def __init__(self, inputs, session):
        self._inputs = inputs
        self._session = session
        self.config = _Config(inputs["config"])
        self.this = inputs["this"]

    def ref(self, *names, **kwargs):
        name = names[-1]
        if name not in self._inputs["refs"]:
            raise KeyError(f"dbt.ref('{name}') is not an input of this model")
        return self._session.read_parquet(self._inputs["refs"][name])

    def source(self, source_name, table_name):
        key = f"{source_name}.{table_name}"
        if key not in self._inputs["sources"]:
            raise KeyError(f"dbt.source('{source_name}', '{table_name}') is not an input of this model")
        return self._session.read_parquet(self._inputs["sources"][key])

    def is_incremental(self):
        return self._inputs["is_incremental"]


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        inputs = json.load(f)
    session = duckdb.connect()
    for statements in inputs["views"]:
        session.execute(statements)
    scope = {"__name__": "__lakeflow_model__"}
    exec(compile(inputs["source"], inputs["path"], "exec"), scope)
    if "model" not in scope:
        raise SystemExit(f"{inputs['path']} defines no model(dbt, session) function")
    result = scope["model"](_Dbt(inputs, session), session)
    output = inputs["output"]
    if isinstance(result, duckdb.DuckDBPyRelation):
        result.write_parquet(output)
    else:
        session.register("__lakeflow_result", result)
        escaped = output.replace("'", "''")
        session.execute(f"copy __lakeflow_result to '{escaped}' (format parquet)")


if __name__ == "__main__":
    main()
