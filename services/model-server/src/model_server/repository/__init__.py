"""The model repository: one folder of models and their versions (TensorFlow Serving / Triton layout).

Three pure pieces, each testable alone and none of them loading a model:

* :mod:`.layout`: discovery, what the folder holds (models, versions, their config files);
* :mod:`.model_config`: a model's ``config.json`` (its version policy), validated;
* :mod:`.policy`: the decision, which versions to load and unload given what exists and what
  is loaded (availability preserving).

The live registry (what is loaded, and the swap) builds on them.
"""
