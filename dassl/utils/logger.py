"""Tee stdout and stderr into the run's log file, so log.txt holds what the console showed (progress
bars aside)."""
import os
import os.path as osp
import sys
import time

from .tools import mkdir_if_missing

__all__ = ["Logger", "setup_logger"]


class Logger:
    """Write to the console and to a log file at once (a stand-in for ``sys.stdout`` or ``sys.stderr``).

    Anything else a caller asks of the stream (``isatty``, ``encoding``, ``fileno``, ...) is answered
    by the console stream, so libraries that inspect it keep working. `file`: share an open log file
    (stdout's and stderr's loggers write into one log); `skip_redraws`: keep progress-bar redraws
    (chunks with a carriage return, or only whitespace) out of the file.
    """

    def __init__(self, fpath=None, console=None, file=None, skip_redraws=False):
        self.console = console if console is not None else sys.stdout
        self.file = file
        self.owns_file = False
        self.skip_redraws = skip_redraws
        self._line_open = False
        if fpath is not None:
            mkdir_if_missing(osp.dirname(fpath))
            self.file = open(fpath, "w")
            self.owns_file = True

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
        if self.file is None or self.file.closed:
            return
        if self.skip_redraws:
            if "\r" in msg:
                return
            if not msg.strip():  # a bare newline ends a written line (print), never makes a blank one
                if self._line_open:
                    self.file.write("\n")
                    self._line_open = False
                return
            self._line_open = not msg.endswith("\n")
            self.file.write(msg)
            self.file.flush()  # stderr is unbuffered: the fatal error reaches the log even if the run dies
            return
        self.file.write(msg)

    def flush(self):
        self.console.flush()
        if self.file is not None and not self.file.closed:
            self.file.flush()
            os.fsync(self.file.fileno())

    def close(self):
        # Never close the real console: other code (and pytest) still writes to it.
        file = getattr(self, "file", None)
        if getattr(self, "owns_file", False) and file is not None and not file.closed:
            file.close()


def setup_logger(output=None):
    """Start teeing stdout and stderr (warnings, the fatal error, a traceback; not progress bars)
    to `output` (a .txt/.log file, or a folder that gets log.txt).

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
    for name in ("stderr", "stdout"):
        previous = getattr(sys, name)
        if isinstance(previous, Logger):
            setattr(sys, name, previous.console)
            previous.close()
    sys.stdout = Logger(fpath)
    sys.stderr = Logger(console=sys.stderr, file=sys.stdout.file, skip_redraws=True)
