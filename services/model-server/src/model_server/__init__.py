"""A production server for scikit-learn models: /predict, Open Inference Protocol V2, metrics."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("model-server")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
