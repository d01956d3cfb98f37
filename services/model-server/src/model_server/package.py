"""``python -m model_server.package``: the command; the packaging is :mod:`model_server.tools.package`."""

from .tools.package import main

if __name__ == "__main__":
    main()
