"""The benchmarks' shared modules; the entry points are bench/run.py and bench/sync.py.

common    paths, the address everything listens on, log(), BenchError, HTTP GET helpers
procfs    CPU time and memory of process trees, from /proc (and getrusage)
tools     nginx, wrk and proxpi found or installed; the `pullthrough` command checked
servers   starting and stopping nginx, pullthrough and proxpi (process groups, ports, readiness)
upstream  the generated wheels and the static PEP 503 pages the upstream nginx serves
load      load generation (wrk or a Python loop), rounds of measurements, pip download timing
s3        (d)'s SeaweedFS (the tests' launcher, tests/support/seaweed.py), pullthrough's [storage]
sync_api  pullthrough's REST API as the sync benchmark drives it (remotes, repositories, tasks)
results   the records both benchmarks fill
report    the tables, ratios, goal lines and notes both benchmarks print
"""
