"""The side-by-side benchmark (bench/run provisions its tools and venvs, then runs ``python -m bench.benchmark``).

One system at a time: start it, check its answers against the model, drive it with wrk at each
concurrency (a warm-up, then a measured run of fixed duration), record throughput, latency
percentiles, errors, CPU and memory, stop it. The decisive comparisons (the full stack against
MLServer, each performance-guard row against its baseline) are then measured again in paired,
interleaved rounds, their systems up together. Then write ``latest.json``; ``bench/report.py``
renders ``latest.md`` and ``latest.png`` from it.

Systems (same fitted model, same load generator, same row per request):

* ``tutorial``: the tutorial's app (``bench/tutorial_app.py``): Flask dev server, pickled model;
* ``mlserver``: MLServer 1.7.1 with its scikit-learn runtime, V2 REST ``/infer``;
* ``direct``: one model-server replica (the built image), ``docker run``;
* ``direct-nobatch``: the same with batching turned off by env, when the server has batching;
* ``stack``: the compose stack's ``model`` (3 replicas) + ``nginx``, through nginx.

Load goes only to 127.0.0.1 (the host processes) or to the bridge address of a container this run
started (``direct``'s replica, the stack's nginx), read with ``docker inspect``
(:mod:`tests.support.addresses`); nothing is published, so no docker-proxy relays it.

Modules, each one concern: :mod:`.settings` (``BENCH_*``), :mod:`.context` (image, compose
configuration, model files), :mod:`.model`, :mod:`.hosts` and :mod:`.containers` (the systems),
:mod:`.client` (HTTP checks), :mod:`.resources` (reading CPU and memory) and :mod:`.usage` (its
arithmetic), :mod:`.wrk` (command and report), :mod:`.measure` (one system), :mod:`.rounds` and
:mod:`.interleaved` (the paired rounds: their arithmetic, running them), :mod:`.freeze` (the
systems not measured, frozen meanwhile), :mod:`.features` and :mod:`.guarded` (the performance
guard), :mod:`.results` and :mod:`.run` (the run and its JSON), ``report_*`` (bench/report.py's
Markdown and PNG).

Everything started here is recorded (process groups in ``pgid-*`` files, containers labelled
``bench.run=<id>``, compose project ``bench-<id>``) so that bench/run's trap can remove it even if
this process dies; normally it is stopped here, in ``finally`` blocks.
"""
