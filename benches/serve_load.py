#!/usr/bin/env python3
"""Load benchmark of `lakeflow serve`: concurrent clients query gold while builds publish.

    python3 benches/serve_load.py --lakeflow target/release/lakeflow [--clients 50] [--seconds 60] [--builds 3]

A project with two gold models that carry the build's marker (a var) and a 50,000-row gold
table is built and published; `lakeflow serve` starts; CLIENTS threads query for SECONDS
while BUILDS build+publish cycles run. Every response must be 200 and name one build: the
two marker tables must agree (a response mixing two builds would show two markers). Prints
requests, errors, mixed responses, p50/p99 latency, and the same aggregate read directly with
DuckDB (Python) for comparison. Only the standard library and the `duckdb` module are used.
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, threading, time, urllib.request

TOKEN = "bench:" + "0123456789abcdef" * 2


def request(addr, sql):
    body = json.dumps({"sql": sql}).encode()
    req = urllib.request.Request(f"http://{addr}/v1/query", data=body, method="POST",
                                 headers={"Authorization": "Bearer " + TOKEN.split(":", 1)[1]})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, json.loads(r.read())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lakeflow", required=True)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--builds", type=int, default=3)
    args = ap.parse_args()
    lf = os.path.abspath(args.lakeflow)
    work = tempfile.mkdtemp(prefix="lakeflow-serve-bench-")
    os.makedirs(f"{work}/models/gold")
    open(f"{work}/lakeflow.yml", "w").write("name: sb\nprofile: sb\n")
    open(f"{work}/profiles.yml", "w").write(
        "sb:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: catalog.duckdb\n"
        "      external_root: lake\n      threads: 2\n      publish: {to: replica.duckdb, keep: 3}\n")
    marker = "{{ var('m', 0) }}"
    open(f"{work}/models/gold/a.sql", "w").write(f"{{{{ config(materialized='external') }}}} select {marker} as m, range as i from range(10)")
    open(f"{work}/models/gold/b.sql", "w").write(f"{{{{ config(materialized='external') }}}} select {marker} as m, range as i from range(10)")
    open(f"{work}/models/gold/big.sql", "w").write(
        "{{ config(materialized='external') }} select range as id, range % 97 as k, hash(range) % 1000 / 10.0 as amount from range(50000)")
    subprocess.run([lf, "build", "--vars", "{m: 0}"], cwd=work, check=True, stdout=subprocess.DEVNULL)
    env = dict(os.environ, LAKEFLOW_SERVE_TOKENS=TOKEN)
    server = subprocess.Popen([lf, "serve", "--bind", "127.0.0.1:0", "--max-concurrent", str(args.clients)] + os.environ.get("SERVE_ARGS", "").split(),
                              cwd=work, env=env, stdout=subprocess.PIPE, text=True,
                              stderr=open(os.environ["SERVE_LOG"], "w") if os.environ.get("SERVE_LOG") else subprocess.DEVNULL)
    addr = server.stdout.readline().split("http://")[1].split()[0]
    mix_sql = "select count(distinct m) as builds, min(m) as m from (select m from gold.a union all select m from gold.b)"
    big_sql = "select k, count(*) as n, sum(amount) as total from gold.big group by k order by k"
    latencies, errors, mixed, seen = [], [], [0], set()
    lock = threading.Lock()
    stop = time.monotonic() + args.seconds

    def client(i):
        while time.monotonic() < stop:
            sql = mix_sql if i % 2 else big_sql
            t0 = time.perf_counter()
            try:
                status, body = request(addr, sql)
                took = time.perf_counter() - t0
                with lock:
                    latencies.append((sql is big_sql, took))
                    if sql is mix_sql:
                        row = body["rows"][0]
                        seen.add(row["m"])
                        if row["builds"] != 1:
                            mixed[0] += 1
            except Exception as e:  # noqa: BLE001 - every failure counts
                with lock:
                    errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    for t in threads:
        t.start()
    gap = args.seconds / (args.builds + 1)
    for b in range(1, args.builds + 1):
        time.sleep(gap)
        subprocess.run([lf, "build", "--vars", f"{{m: {b}}}"], cwd=work, check=True, stdout=subprocess.DEVNULL)
    for t in threads:
        t.join()
    alone = []
    for _ in range(50):
        t0 = time.perf_counter()
        request(addr, big_sql)
        alone.append(time.perf_counter() - t0)
    alone.sort()
    server.kill()
    big = sorted(t for is_big, t in latencies if is_big)
    small = sorted(t for is_big, t in latencies if not is_big)
    q = lambda xs, p: xs[min(len(xs) - 1, int(len(xs) * p))] * 1000 if xs else float("nan")
    import duckdb  # the same aggregate, read directly
    con = duckdb.connect(f"{work}/replica.duckdb", read_only=True)
    direct = []
    for _ in range(50):
        t0 = time.perf_counter()
        con.execute(big_sql).fetchall()
        direct.append(time.perf_counter() - t0)
    direct.sort()
    print(f"clients {args.clients}, {args.seconds:.0f} s, {args.builds} build+publish cycles; builds seen by clients: {sorted(seen)}")
    print(f"requests {len(latencies)}, errors {len(errors)}, responses mixing builds {mixed[0]}")
    print(f"gold.big aggregate (50,000 rows): p50 {q(big, .5):.1f} ms, p99 {q(big, .99):.1f} ms over HTTP under load; "
          f"one client over HTTP: p50 {q(alone, .5):.1f} ms, p99 {q(alone, .99):.1f} ms; "
          f"direct DuckDB read (Python), one client: p50 {q(direct, .5):.1f} ms")
    print(f"marker query: p50 {q(small, .5):.1f} ms, p99 {q(small, .99):.1f} ms")
    if errors:
        print("first errors:", errors[:3])
    return 1 if errors or mixed[0] else 0


if __name__ == "__main__":
    sys.exit(main())
