"""``python -m rife`` and the ``rife`` command: the command line (see :mod:`rife.cli`).

Importing the command line loads torch, which takes a second or two; Ctrl-C meanwhile ends the program with
one line and status 130, as it does later, instead of a traceback."""

import sys


def run() -> int:
    from rife.allocator import reuse_freed_memory

    reuse_freed_memory()  # this process is ours: tune malloc for large tensors (rife/allocator.py)
    try:
        from rife.cli import main
    except KeyboardInterrupt:
        print("error: cancelled", file=sys.stderr)
        return 130
    return main()


if __name__ == "__main__":
    raise SystemExit(run())
