"""The model repository: the folder on disk that holds models and their versions (TensorFlow Serving / Triton layout).

What the server reads from it, and how: three pure pieces, each testable alone, and the safe
loading of one version's files:

* :mod:`.layout`: discovery, what the folder holds (models, versions, their config files);
* :mod:`.model_config`: a model's ``config.json`` (its version policy), validated;
* :mod:`.policy`: the decision, which versions to load and unload given what exists and what
  is loaded (availability preserving);
* :mod:`.artifact`: one version's files, hashed and type-checked as they are loaded.

The repository poller (:mod:`..serving.repository_poller`) acts on them: it loads and unloads,
and publishes what serves in the live models (:mod:`..serving.live_models`).
"""
