"""Subprocess driver of the kill tests: ``python worker.py FAULT -- <mpcl or runner arguments>``.

``FAULT`` says where the process kills itself with SIGKILL (no clean-up, no ``finally``):

* ``none``: run normally;
* ``batch:N``: before the N-th training batch of this process (mid-epoch);
* ``epoch:N``: at the start of the N-th training epoch (between epochs, after the checkpoints of
  the previous one);
* ``write:N``: inside the N-th checkpoint write, after half of the bytes (a torn temporary file);
* ``rename:N``: in the N-th checkpoint write, after the temporary file is complete, before the
  rename;
* ``enospc:N``: the N-th checkpoint write fails half-way with ``OSError(ENOSPC)``, as on a full
  disk (the process is not killed: the error must end the run with a non-zero status).

The first argument after ``--`` picks the program: ``mpcl`` (the LightningCLI) or ``runner``
(``mpcl-protocol``).
"""

from __future__ import annotations

import os
import signal
import sys


def _die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def install(fault: str) -> None:
    """Arm the fault."""
    if fault == "none":
        return
    kind, _, count = fault.partition(":")
    target = int(count)
    seen = {"n": 0}

    def tick() -> bool:
        seen["n"] += 1
        return seen["n"] == target

    if kind in ("batch", "epoch"):
        from mpcl.models.base import EmotionDistributionModule

        hook = "on_train_batch_start" if kind == "batch" else "on_train_epoch_start"
        original = getattr(EmotionDistributionModule, hook)

        def wrapped(self, *args, **kwargs):
            if tick():
                _die()
            return original(self, *args, **kwargs)

        setattr(EmotionDistributionModule, hook, wrapped)
    elif kind in ("write", "rename", "enospc"):
        import mpcl.checkpoints as checkpoints

        original_save = checkpoints.torch.save

        def save(obj, handle, *args, **kwargs):
            if kind in ("write", "enospc") and tick():
                import errno
                import io

                buffer = io.BytesIO()
                original_save(obj, buffer)
                data = buffer.getvalue()
                handle.write(data[: len(data) // 2])
                handle.flush()
                if kind == "enospc":
                    raise OSError(errno.ENOSPC, "No space left on device")
                _die()
            original_save(obj, handle, *args, **kwargs)
            if kind == "rename" and tick():
                handle.flush()
                _die()

        checkpoints.torch.save = save
    else:
        raise SystemExit(f"unknown fault {fault!r}")


def main() -> None:
    """Arm the fault, then run the program."""
    fault, sep, program, *args = sys.argv[1:]
    assert sep == "--", "usage: worker.py FAULT -- mpcl|runner ARGS"
    install(fault)
    if program == "mpcl":
        from mpcl.cli import main as mpcl_main

        mpcl_main(args)
    else:
        from mpcl.runner.cli import main as runner_main

        sys.exit(runner_main(args))


if __name__ == "__main__":
    main()
