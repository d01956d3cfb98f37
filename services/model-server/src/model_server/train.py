"""``python -m model_server.train``: the command; the recipe is :mod:`model_server.tools.train`."""

from .tools.train import main

if __name__ == "__main__":
    main()
