#!/usr/bin/env python3
"""End-to-end comparison of lakeflow with dbt-duckdb and raw DuckDB (see benches/e2e.sh).

Every measurement is a separate process; wall time is the median of --runs runs after one
warm-up, peak RSS is the child's ru_maxrss as reported by wait4.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUIET_DBT = {"DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1", "DBT_VERSION_CHECK": "false"}


def measure(cmd, cwd, env=None):
    """Runs cmd once; returns (seconds, peak RSS in MiB)."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **(env or {})},
                                stdout=err, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = status
        if status != 0:
            err.seek(0)
            sys.exit(f"failed ({status}): {' '.join(map(str, cmd))}\n{err.read().decode()[-4000:]}")
    return seconds, usage.ru_maxrss / 1024


def bench(name, cmd, cwd, runs, env=None):
    measure(cmd, cwd, env)  # warm-up: caches, partial parsing, first-run directories
    samples = [measure(cmd, cwd, env) for _ in range(runs)]
    secs = statistics.median(s for s, _ in samples)
    rss = max(r for _, r in samples)
    print(f"  {name:<34} {secs:8.2f} s  {rss:8.0f} MiB", flush=True)
    return secs, rss


def bench_inner(name, cmd, cwd, runs):
    """Like bench, timed by the command itself (its last `elapsed=` line)."""
    def once():
        out = subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True).stdout
        return float(out.strip().splitlines()[-1].split("=", 1)[1])
    once()
    secs = statistics.median(once() for _ in range(runs))
    print(f"  {name:<34} {secs:8.2f} s  (in-process)", flush=True)
    return secs, 0.0


def dbt_copy(src: Path, dest: Path):
    """The example project as dbt sees it: the same files, lakeflow.yml as dbt_project.yml."""
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("lake", "catalog", "target", "landing", ".duckdb_spill"))
    text = (dest / "lakeflow.yml").read_text()
    (dest / "lakeflow.yml").unlink()
    (dest / "dbt_project.yml").write_text("version: '1.0'\nconfig-version: 2\n" + text)
    # dbt-duckdb refuses to rebuild a partitioned model into a non-empty folder without it.
    schema = dest / "models" / "schema.yml"
    schema.write_text(schema.read_text().replace(
        "partition_by: event_date", "partition_by: event_date\n        overwrite: true"))
    # dbt-duckdb has no incremental external models: its copy rebuilds bronze in full, as
    # lakeflow does in this benchmark (--full-refresh).
    raw = dest / "models" / "bronze" / "raw_events.sql"
    raw.write_text(raw.read_text().replace("materialized='incremental'", "materialized='external'"))
    # dbt-duckdb creates neither the folder of its database nor external_root.
    (dest / "catalog").mkdir()
    (dest / "lake").mkdir()


def raw_duckdb(manifest_path: str, lake_root: str, lakeflow_root: str, catalog: str, mode: str = "autocommit"):
    """The floor: lakeflow's compiled statements run one by one on one DuckDB connection, each
    committed on its own (`autocommit`) or all in one transaction (`one-transaction`). Prints
    the seconds from connecting to closing, which leave out Python's start and import."""
    import duckdb

    manifest = json.loads(Path(manifest_path).read_text())
    nodes = manifest["nodes"]
    # lakeflow's own keys sit under each node's `config.lakeflow`.
    by_id = {k: {**v, **v.get("config", {}).get("lakeflow", {})} for k, v in nodes.items()}
    order, seen = [], set()

    def visit(uid):
        if uid in seen:
            return
        seen.add(uid)
        for dep in by_id[uid]["depends_on"].get("nodes", []):
            if dep in by_id:
                visit(dep)
        order.append(uid)

    for uid in sorted(nodes):
        visit(uid)
    # Tests after the models they read.
    order.sort(key=lambda uid: by_id[uid]["materialization"]["kind"] == "test")
    start = time.perf_counter()
    # The scale section runs both sides with the same DuckDB settings (memory_limit, threads).
    con = duckdb.connect(catalog, config=json.loads(os.environ.get("LAKEFLOW_BENCH_SETTINGS", "{}")))
    if mode == "one-transaction":
        con.execute("begin")
    for uid in order:
        n = by_id[uid]
        kind = n["materialization"]["kind"]
        if kind == "ephemeral":
            continue
        if kind == "test":
            # Data tests run as the count of their failing rows, as lakeflow and dbt run them.
            con.execute(f"select count(*) from (\n{n['compiled_code'].strip().rstrip(';')}\n)").fetchone()
            continue
        if kind == "incremental":
            # An incremental model's full build, written as its files (one per build).
            kind = "external"
            ext = n["materialization"]["external"]
            n = {**n, "materialization": {**ext, "kind": "external"}}
            loc = n["location"].replace(lakeflow_root, lake_root)
            os.makedirs(loc, exist_ok=True)
            sql = n["compiled_code"].strip().rstrip(";")
            con.execute(f'create schema if not exists "{n["schema"]}"')
            con.execute(f"copy (\n{sql}\n) to '{loc}/data.parquet' (format parquet)")
            con.execute(f"create or replace view {n['relation_name']} as select * from read_parquet('{loc}/*.parquet')")
            continue
        schema = n["schema"]
        con.execute(f'create schema if not exists "{schema}"')
        rel, sql = n["relation_name"], n["compiled_code"].strip().rstrip(";")
        if kind == "view":
            con.execute(f"create or replace view {rel} as (\n{sql}\n)")
        elif kind == "table":
            con.execute(f"create or replace table {rel} as (\n{sql}\n)")
        else:
            loc = n["location"].replace(lakeflow_root, lake_root)
            os.makedirs(os.path.dirname(loc), exist_ok=True)
            parts = n["materialization"]["partition_by"]
            if parts:
                shutil.rmtree(loc, ignore_errors=True)
                cols = ", ".join(f'"{c}"' for c in parts)
                con.execute(f"copy (\n{sql}\n) to '{loc}' (format parquet, partition_by ({cols}))")
                reader = f"read_parquet('{loc}/**/*.parquet', hive_partitioning = true)"
            else:
                con.execute(f"copy (\n{sql}\n) to '{loc}' (format parquet)")
                reader = f"read_parquet('{loc}')"
            con.execute(f"create or replace view {rel} as select * from {reader}")
    if mode == "one-transaction":
        con.execute("commit")
    con.close()
    print(f"elapsed={time.perf_counter() - start:.6f}")


def machine():
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM"


# The Delta write benchmark's data: written once as a Parquet file (a bronze table), then
# rewritten by each contender, so what is measured is writing the table.
DELTA_SOURCE = ("select range as id, range % 1000 as k, md5(range::varchar) as s, "
                "(range % 100000 * 0.01)::decimal(12,2) as amount, "
                "timestamp '2024-01-01' + to_seconds(range) as ts from range({n})")


def python_delta(source: str, path: str):
    """The peer: the same table read by DuckDB, written by Python deltalake."""
    import duckdb
    from deltalake import write_deltalake
    table = duckdb.sql(f"select * from read_parquet('{source}')").fetch_record_batch()
    write_deltalake(path, table, mode="overwrite")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "raw":
        raw_duckdb(*sys.argv[2:7])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "pydelta":
        python_delta(*sys.argv[2:4])
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--lakeflow", required=True)
    ap.add_argument("--venv", required=True)
    ap.add_argument("--rows", type=int, default=20_000_000)
    ap.add_argument("--models", type=int, default=300)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--results")
    ap.add_argument("--delta-rows", type=int, default=20_000_000)
    ap.add_argument("--memory-limit-mb", type=int, default=0,
                    help="DuckDB memory_limit of the scale section (default: a quarter of RAM)")
    ap.add_argument("--scale-rows", type=int, default=0,
                    help="events of the scale section (default: about three times the memory limit)")
    ap.add_argument("--only", choices=["overhead", "parse", "data", "scale", "delta", "incremental"], action="append",
                    help="run only these sections (default: all)")
    args = ap.parse_args()
    lf, dbt, py = args.lakeflow, f"{args.venv}/bin/dbt", f"{args.venv}/bin/python"
    work = Path(tempfile.mkdtemp(prefix="lakeflow-bench-"))
    rows = []
    delta_rows = []
    inc_rows = []
    print(f"machine: {machine()}\nwork dir: {work}\n", flush=True)
    want = lambda section: not args.only or section in args.only
    try:
        if want("overhead"):
            print(f"Overhead: {args.models} small models (views, tables, external Parquet)")
            lf_proj, dbt_proj = work / "synth_lakeflow", work / "synth_dbt"
            subprocess.run([lf, "example-data", "--models", str(args.models), "--out", lf_proj], check=True, stdout=subprocess.DEVNULL)
            shutil.copytree(lf_proj, dbt_proj)
            (dbt_proj / "lake").mkdir()
            o_lf = bench("lakeflow build", [lf, "build", "--project-dir", lf_proj], lf_proj, args.runs)
            o_dbt = bench("dbt build (dbt-duckdb)", [dbt, "build", "--project-dir", dbt_proj, "--profiles-dir", dbt_proj], dbt_proj, args.runs, QUIET_DBT)
            # The floor: the same statements lakeflow ran, on one DuckDB connection.
            raw_proj = work / "synth_raw"
            (raw_proj / "lake").mkdir(parents=True)
            raw_cmd = [py, __file__, "raw", lf_proj / "target" / "manifest.json", str(raw_proj / "lake"), str(lf_proj / "lake"), str(raw_proj / "raw.duckdb")]
            o_auto = bench_inner("raw DuckDB, autocommit", raw_cmd + ["autocommit"], lf_proj, args.runs)
            o_raw = bench_inner("raw DuckDB, one transaction", raw_cmd + ["one-transaction"], lf_proj, args.runs)
            rows.append(("overhead", f"{args.models} models", o_lf, o_dbt, o_raw))
            rows.append(("overhead (raw autocommit)", f"{args.models} models", o_lf, o_dbt, o_auto))

        if want("parse"):
            print("\nParse + render + DAG of 5,000 models (lakeflow ls)")
            big = work / "synth_5000"
            subprocess.run([lf, "example-data", "--models", "5000", "--out", big], check=True, stdout=subprocess.DEVNULL)
            p_lf = bench("lakeflow ls", [lf, "ls", "--project-dir", big], big, args.runs)
            rows.append(("parse", "5,000 models", p_lf, None, None))

        if want("data"):
            print(f"\nData: the example project at {args.rows:,} raw events")
            data_lf, data_dbt, data_raw = work / "shop_lakeflow", work / "shop_dbt", work / "shop_raw"
            shutil.copytree(ROOT / "example_project", data_lf, ignore=shutil.ignore_patterns("lake", "catalog", "target", "landing", ".duckdb_spill"))
            subprocess.run([lf, "example-data", "--rows", str(args.rows), "--out", data_lf], check=True, stdout=subprocess.DEVNULL)
            dbt_copy(ROOT / "example_project", data_dbt)
            (data_dbt / "landing").symlink_to(data_lf / "landing")
            data_raw.mkdir()
            d_lf = bench("lakeflow build --full-refresh", [lf, "build", "--full-refresh", "--project-dir", data_lf], data_lf, args.runs)
            d_dbt = bench("dbt build (dbt-duckdb, external)", [dbt, "build", "--project-dir", data_dbt, "--profiles-dir", data_dbt], data_dbt, args.runs, QUIET_DBT)
            manifest = data_lf / "target" / "manifest.json"
            lakeflow_root = str(data_lf / "lake")
            d_raw = bench("raw DuckDB (same statements)", [py, __file__, "raw", manifest, str(data_raw / "lake"), lakeflow_root, str(data_raw / "raw.duckdb")], data_lf, args.runs)
            rows.append(("data", f"{args.rows:,} events", d_lf, d_dbt, d_raw))

        if want("scale"):
            # The data benchmark with every core and a memory limit well below the data: both
            # sides spill, and each must stay under the limit (plus what is not DuckDB's).
            cores = os.cpu_count()
            ram_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
            limit = args.memory_limit_mb or max(1024, ram_mb // 4)
            # About 60 bytes per event once in DuckDB's memory.
            n = args.scale_rows or limit * 2**20 * 3 // 60
            print(f"\nScale: the example project at {n:,} events, DuckDB threads {cores}, memory_limit {limit} MiB")
            sc_lf, sc_raw = work / "scale_lakeflow", work / "scale_raw"
            shutil.copytree(ROOT / "example_project", sc_lf, ignore=shutil.ignore_patterns("lake", "catalog", "target", "landing", ".duckdb_spill"))
            subprocess.run([lf, "example-data", "--rows", str(n), "--out", sc_lf], check=True, stdout=subprocess.DEVNULL)
            settings = {"memory_limit": f"{limit}MB", "threads": str(cores), "temp_directory": str(work / "spill")}
            prof = sc_lf / "profiles.yml"
            # (The example's profile has its own temp_directory, in the project.)
            prof.write_text(prof.read_text().replace(
                "      settings:\n", "      settings:\n" + "".join(f"        {k}: '{v}'\n" for k, v in settings.items() if k != "temp_directory"), 1))
            sc_raw.mkdir()
            s_lf = bench("lakeflow build --full-refresh", [lf, "build", "--full-refresh", "--project-dir", sc_lf], sc_lf, args.runs)
            s_raw = bench("raw DuckDB (same statements)", [py, __file__, "raw", sc_lf / "target" / "manifest.json", str(sc_raw / "lake"), str(sc_lf / "lake"), str(sc_raw / "raw.duckdb")],
                          sc_lf, args.runs, {"LAKEFLOW_BENCH_SETTINGS": json.dumps(settings)})
            cap = limit + 200
            for who, m in (("lakeflow", s_lf), ("raw DuckDB", s_raw)):
                print(f"  {who}: peak RSS {m[1]:.0f} MiB, {'within' if m[1] <= cap else 'OVER'} memory_limit + 200 MiB ({cap} MiB)")
            rows.append(("scale", f"{n:,} events, {cores} cores, memory_limit {limit} MiB", s_lf, None, s_raw))

        if want("delta"):
            n = args.delta_rows
            print(f"\nDelta: one model of {n:,} rows written as Parquet, as Delta, and by Python deltalake")
            proj = work / "delta_write"
            (proj / "models" / "silver").mkdir(parents=True)
            (proj / "lakeflow.yml").write_text("name: dw\nprofile: dw\n")
            (proj / "profiles.yml").write_text(
                "dw:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: catalog.duckdb\n"
                "      external_root: lake\n      threads: 2\n")
            source = work / "delta_source.parquet"
            subprocess.run([py, "-c", f"import duckdb; duckdb.sql(\"copy ({DELTA_SOURCE.format(n=n)}) to '{source}' (format parquet)\")"], check=True)
            body = f"select * from read_parquet('{source}')"
            variants = [("parquet_v1", "parquet", "v1"), ("delta_v1", "delta", "v1"),
                        ("parquet_v2", "parquet", "v2"), ("delta_v2", "delta", "v2")]
            for name, fmt, pages in variants:
                (proj / "models" / "silver" / f"{name}.sql").write_text(
                    f"{{{{ config(materialized='external', format='{fmt}', options={{'parquet_version': '{pages}'}}) }}}}\n{body}\n")
            timed = {name: bench(f"lakeflow run ({fmt}, {pages} pages)", [lf, "run", "-s", name, "--project-dir", proj], proj, args.runs)
                     for name, fmt, pages in variants}
            w_py = bench("Python write_deltalake", [py, __file__, "pydelta", str(source), str(work / "py_delta")], proj, args.runs)
            for pages in ["v1", "v2"]:
                delta_rows.append((f"{n:,} rows", pages, timed[f"parquet_{pages}"], timed[f"delta_{pages}"], w_py))
        if want("incremental"):
            n = args.delta_rows
            print(f"\nIncremental: merge 1% of the keys of a {n:,}-row Delta table")
            proj = work / "incremental"
            (proj / "models" / "silver").mkdir(parents=True)
            (proj / "lakeflow.yml").write_text("name: inc\nprofile: inc\n")
            (proj / "profiles.yml").write_text(
                "inc:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: catalog.duckdb\n"
                "      external_root: lake\n      threads: 2\n")
            source, clustered, scattered = work / "inc_source.parquet", work / "inc_clustered.parquet", work / "inc_scattered.parquet"
            changed = "select id, k, s, amount + 1 as amount, ts from read_parquet('{src}') where {cond}"
            subprocess.run([py, "-c", (
                "import duckdb; "
                f"duckdb.sql(\"copy ({DELTA_SOURCE.format(n=n)}) to '{source}' (format parquet)\"); "
                f"duckdb.sql(\"copy ({changed.format(src=source, cond=f'id >= {n // 2} and id < {n // 2 + n // 100}')}) to '{clustered}' (format parquet)\"); "
                f"duckdb.sql(\"copy ({changed.format(src=source, cond='hash(id) % 100 = 0')}) to '{scattered}' (format parquet)\")")], check=True)
            # The same merge twice: copy-on-write (the default) and merge-on-read (deletion
            # vectors, the table property), each against its own full build.
            modes = [("copy-on-write", "big", ""),
                     ("deletion vectors", "big_dv", ", table_properties={'delta.enableDeletionVectors': 'true'}")]
            for _, model, props in modes:
                (proj / "models" / "silver" / f"{model}.sql").write_text(
                    "{{ config(materialized='incremental', format='delta', unique_key='id', incremental_strategy='merge', target_file_size='8MB'" + props + ") }}\n"
                    "{% if is_incremental() %}\nselect * from read_parquet('{{ var(\"changes\") }}')\n"
                    f"{{% else %}}\nselect * from read_parquet('{source}')\n{{% endif %}}\n")
            full = bench("full rebuild (--full-refresh)", [lf, "run", "-s", "big", "--full-refresh", "--project-dir", proj], proj, args.runs)
            for mode, model, _ in modes:
                for label, changes in [("1% of keys, clustered", clustered), ("1% of keys, scattered", scattered)]:
                    # Every measured merge starts from the table as a full build leaves it.
                    samples = []
                    for _ in range(args.runs):
                        subprocess.run([lf, "run", "-s", model, "--full-refresh", "--project-dir", proj], check=True, stdout=subprocess.DEVNULL)
                        samples.append(measure([lf, "run", "-s", model, "--vars", f"{{changes: '{changes}'}}", "--project-dir", proj], proj))
                    timed = (statistics.median(t for t, _ in samples), max(r for _, r in samples))
                    print(f"  {'merge ' + label + ', ' + mode:<52} {timed[0]:8.2f} s  {timed[1]:8.0f} MiB  ({timed[0] / full[0] * 100:.1f}% of full)", flush=True)
                    last = json.loads(subprocess.run([lf, "delta", "history", model, "--json", "--limit", "1", "--project-dir", proj],
                                                     capture_output=True, text=True, check=True).stdout.splitlines()[0])
                    inc_rows.append((f"{n:,} rows", f"{label}, {mode}", full, timed, last["files_removed"], last["files_added"],
                                     last.get("rows_added"), last.get("files_marked", 0)))
                    print(f"    rewrote {last['files_removed']} files (wrote {last['files_added']}, {last.get('rows_added')} rows; "
                          f"{last.get('files_marked', 0)} files got deletion vectors)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    kept_main, kept_delta = previous_rows(args.results, args.only)
    kept_inc = previous_inc_rows(args.results, args.only)
    table = render(rows, delta_rows, kept_main, kept_delta, inc_rows, kept_inc)
    print("\n" + table)
    if args.results:
        write_results(args.results, table, args)


def previous_rows(path, only):
    """With --only, the rows of the sections not run now, from the previous results file."""
    if not only or not path or not Path(path).exists():
        return [], []
    prefixes = {"overhead": "| overhead", "parse": "| parse |", "data": "| data |", "scale": "| scale |", "delta": "| one model |"}
    lines = Path(path).read_text().splitlines()
    keep = lambda section: [l for l in lines if section not in only and l.startswith(prefixes[section])]
    return keep("overhead") + keep("parse") + keep("data") + keep("scale"), keep("delta")


def previous_inc_rows(path, only):
    if not only or "incremental" in only or not path or not Path(path).exists():
        return []
    return [l for l in Path(path).read_text().splitlines() if l.startswith("| incremental |")]


def render(rows, delta_rows, kept_main=(), kept_delta=(), inc_rows=(), kept_inc=()):
    lines = [
        "| benchmark | size | lakeflow | dbt-duckdb | raw DuckDB | dbt / lakeflow | lakeflow / raw | peak RSS lakeflow / dbt / raw |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    lines += list(kept_main)
    for name, size, lf, dbt, raw in rows:
        fmt = lambda m: f"{m[0]:.2f} s" if m else "-"
        r_dbt = f"{dbt[0] / lf[0]:.1f}x" if dbt else "-"
        r_raw = f"{lf[0] / raw[0]:.2f}x" if raw else "-"
        rss = " / ".join(f"{m[1]:.0f} MiB" if m else "-" for m in (lf, dbt, raw))
        lines.append(f"| {name} | {size} | {fmt(lf)} | {fmt(dbt)} | {fmt(raw)} | {r_dbt} | {r_raw} | {rss} |")
    if delta_rows or kept_delta:
        lines += [
            "",
            "| Delta write | size | Parquet pages | lakeflow Parquet | lakeflow Delta | Python write_deltalake | Delta / Parquet | Python / lakeflow Delta | peak RSS Parquet / Delta / Python |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        lines += list(kept_delta)
        for size, pages, pq, dl, py in delta_rows:
            rss = " / ".join(f"{m[1]:.0f} MiB" for m in (pq, dl, py))
            default = " (Delta default)" if pages == "v2" else ""
            lines.append(f"| one model | {size} | {pages}{default} | {pq[0]:.2f} s | {dl[0]:.2f} s | {py[0]:.2f} s | "
                         f"{dl[0] / pq[0]:.2f}x | {py[0] / dl[0]:.1f}x | {rss} |")
    if inc_rows or kept_inc:
        lines += [
            "",
            "| Incremental (Delta merge) | table | change | full rebuild | incremental run | incremental / full | files rewritten | rows written | files with deletion vectors |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        lines += list(kept_inc)
        for size, label, full, inc, removed, added, written, marked in inc_rows:
            lines.append(f"| incremental | {size} | {label} | {full[0]:.2f} s | {inc[0]:.2f} s | {inc[0] / full[0] * 100:.1f}% | "
                         f"{removed} replaced by {added} | {written:,} | {marked} |")
    return "\n".join(lines)


def write_results(path, table, args):
    probe = "import importlib.metadata as m; print(', '.join(f'{p} {m.version(p)}' for p in ['duckdb', 'dbt-core', 'dbt-duckdb', 'deltalake']))"
    versions = subprocess.run([f"{args.venv}/bin/python", "-c", probe], capture_output=True, text=True).stdout.strip()
    # The criterion section comes from benches/phases.sh and is kept as it is.
    previous = Path(path).read_text() if Path(path).exists() else ""
    kept = previous[previous.index("\n## Phases (criterion)"):] if "\n## Phases (criterion)" in previous else ""
    Path(path).write_text(
        "# Benchmark results\n\n"
        f"Written by `benches/e2e.sh` on {time.strftime('%Y-%m-%d')}, machine: {machine()}.\n"
        f"Medians of {args.runs} runs after one warm-up; DuckDB 1.5.5 on every side ({versions}).\n"
        + (f"Only {', '.join(args.only)} ran this time; the other rows are kept from earlier runs, "
           "which may have been on another machine.\n" if args.only else "") + "\n"
        + table + "\n\n"
        "- overhead: the synthetic project of `lakeflow example-data --models N` (an unmodified\n"
        "  dbt_project.yml both tools read) rebuilt in full.\n"
        "- data: `example_project` on generated raw events, rebuilt in full (`--full-refresh`:\n"
        "  bronze.raw_events is incremental); raw DuckDB runs lakeflow's compiled\n"
        "  statements one after another on one connection (`benches/e2e.py raw`). dbt's copy of\n"
        "  the project adds `overwrite: true` to the partitioned model, without which dbt-duckdb\n"
        "  cannot rebuild it.\n"
        "- scale: the data benchmark with DuckDB's `threads` at every core and `memory_limit` well\n"
        "  below the data (`--memory-limit-mb`, default a quarter of RAM; `--scale-rows`), the\n"
        "  same settings on both sides; the run prints whether each peak RSS stayed within\n"
        "  memory_limit + 200 MiB. Runs unchanged on a bigger machine.\n"
        "- Delta write: one table (id, key, md5 text, decimal, timestamp) read from a Parquet file\n"
        "  (a bronze table written once before) and written by `lakeflow run` as Parquet and as\n"
        "  Delta (data files by DuckDB, log by the deltalake crate), with the same Parquet page\n"
        "  version on both sides, against Python reading it with DuckDB and writing it with\n"
        "  `deltalake.write_deltalake` (its defaults). Delta models write v2 pages unless\n"
        "  `options: {parquet_version: v1}`; plain Parquet models keep DuckDB's default (v1).\n"
        "  Each run overwrites the table as a new version.\n"
        "- Incremental: a Delta model of the Delta-write table (sorted by id, 8MB files) merged\n"
        "  (`unique_key: id`) with 1% of its keys changed, once as one contiguous id range\n"
        "  (`clustered`, e.g. recent rows) and once spread over all ids (`scattered`). Copy-on-\n"
        "  write at file level: only files holding a changed key are rewritten, so clustered\n"
        "  changes rewrite a few files and scattered ones most of them. The same merges on a\n"
        "  table with `delta.enableDeletionVectors` (merge-on-read): the changed rows are marked\n"
        "  deleted in deletion vectors and no file is rewritten; both against the copy-on-write\n"
        "  table's full rebuild.\n"
        "- `benches/phases.sh` measures load, render, DAG and select alone (below).\n"
        + kept
    )


if __name__ == "__main__":
    main()
