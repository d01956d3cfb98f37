"""The side-by-side benchmark (bench/README.md): bench/run provisions wrk and the venvs, then runs
``python -m bench.benchmark`` (the measurements, run.py) and ``python -m bench.benchmark.report`` (report.py)."""
