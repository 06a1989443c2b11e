"""``python -m mammosearch``: the same command line as the ``mammosearch`` console script."""

from __future__ import annotations

from mammosearch.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    main()
