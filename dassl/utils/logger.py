"""Tee stdout into the run's log file, so log.txt holds exactly what the console showed."""
import os
import os.path as osp
import sys
import time

from .tools import mkdir_if_missing

__all__ = ["Logger", "setup_logger"]


class Logger:
    """Write to the console and to `fpath` at once (a stand-in for ``sys.stdout``).

    Anything else a caller asks of stdout (``isatty``, ``encoding``, ``fileno``, ...) is answered by
    the console stream, so libraries that inspect stdout keep working.
    """

    def __init__(self, fpath=None):
        self.console = sys.stdout
        self.file = None
        if fpath is not None:
            mkdir_if_missing(osp.dirname(fpath))
            self.file = open(fpath, "w")

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *args):
        self.close()

    def __getattr__(self, name):
        # Only reached for attributes not defined here; `console` itself may not exist yet.
        if name == "console":
            raise AttributeError(name)
        return getattr(self.console, name)

    def write(self, msg):
        self.console.write(msg)
        if self.file is not None and not self.file.closed:
            self.file.write(msg)

    def flush(self):
        self.console.flush()
        if self.file is not None and not self.file.closed:
            self.file.flush()
            os.fsync(self.file.fileno())

    def close(self):
        # Never close the real console: other code (and pytest) still writes to it.
        file = getattr(self, "file", None)
        if file is not None and not file.closed:
            file.close()


def setup_logger(output=None):
    """Start teeing stdout to `output` (a .txt/.log file, or a folder that gets log.txt).

    An existing log is never overwritten: the new one gets a ``-YYYY-MM-DD-HH-MM-SS`` suffix.
    """
    if output is None:
        return
    if output.endswith(".txt") or output.endswith(".log"):
        fpath = output
    else:
        fpath = osp.join(output, "log.txt")
    if osp.exists(fpath):
        fpath += time.strftime("-%Y-%m-%d-%H-%M-%S")
    # Calling twice in one process must not tee into the previous log as well.
    if isinstance(sys.stdout, Logger):
        previous = sys.stdout
        sys.stdout = previous.console
        previous.close()
    sys.stdout = Logger(fpath)
