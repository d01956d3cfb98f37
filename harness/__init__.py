"""The helpers shared by the tests (end-to-end, Swarm, unit) and the benchmark, written once.

* :mod:`.commands`: ``ROOT`` and ``run``, a command with a time limit that fails loudly;
* :mod:`.waiting`: ``wait_for``, which retries "not yet" and never a failed assertion;
* :mod:`.addresses`: where traffic may go (loopback, or a container the run started) and free ports;
* :mod:`.docker`: ``docker inspect``, image presence, a compose service's hardening as ``docker run`` flags;
* :mod:`.compose`: the compose project driver and the settings the tests run the stack with;
* :mod:`.load`: load through nginx with ``requests``, counting statuses and who answered;
* :mod:`.penguins`: the tabular models (Pipelines fitted on the Palmer penguins DataFrame), packaged;
* :mod:`.boosted`: the gradient-boosted models (XGBoost, LightGBM) fitted with the native libraries.

Every module but :mod:`.load` (``requests``), :mod:`.penguins` (the model server's packager,
scikit-learn, palmerpenguins) and :mod:`.boosted` (numpy, pandas, :mod:`.penguins`; xgboost and
lightgbm when a maker runs) needs only the standard library, so that the benchmark's own venv (no
``requests``, no ``yaml``) imports them too. Nothing here imports from ``tests`` or ``bench``.
"""
