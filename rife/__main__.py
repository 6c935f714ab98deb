"""``python -m rife``: the command line (see :mod:`rife.cli`)."""

from rife.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
