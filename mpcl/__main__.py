"""``python -m mpcl``: the same command line as the ``mpcl`` console script."""

from mpcl.cli import main

if __name__ == "__main__":
    main()
