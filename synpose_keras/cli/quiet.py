"""Quiet start-up for the ``synpose`` command line.

TensorFlow's C++ runtime writes start-up lines straight to the process's standard error before any
Python setting can reach it (``WARNING: All log messages before absl::InitializeLog() ...``,
``I0000 ... port.cc] oneDNN custom operations are on ...``, ``I0000 ... cudart_stub.cc] Could not
find cuda drivers ...``, ``E0000 ...`` lines of CUDA plug-ins). ``TF_CPP_MIN_LOG_LEVEL`` does not
hide them. By default the ``synpose`` commands therefore filter file descriptor 2: lines in the C++
log format (``I``/``W``/``E`` + ``MMDD`` + time + thread + ``file:line]``) and the absl banner are
dropped, everything else (errors, warnings, progress bars) passes through unchanged and at once.
``synpose --verbose COMMAND`` shows everything.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading

# "I0000 00:00:1796621814.416809   23924 port.cc:153] ..." and the absl banner
NOISE = re.compile(
    rb"^(?:[IWE]\d{4} \d\d:\d\d:[\d.]+ +\d+ [^\s\]]+:\d+\]"
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR)"
)
_BANNER = b"WARNING: All log messages before absl::InitializeLog()"
_MAYBE_NOISE = re.compile(rb"^(?:[IWE]\d{0,4}|[IWE]\d{4} .*)$", re.DOTALL)


def _may_become_noise(partial: bytes) -> bool:
    """Whether an incomplete line could still turn out to be a log line to drop."""
    if _BANNER.startswith(partial) or partial.startswith(_BANNER):
        return True
    return bool(_MAYBE_NOISE.match(partial))


class StderrFilter:
    """Drops TensorFlow's C++ log lines from file descriptor 2; passes the rest through.

    A pipe replaces descriptor 2 and a daemon thread copies what arrives to the original standard
    error, line by line; an incomplete line that cannot be a log line (a progress bar's ``\\r``
    update) is copied at once. :meth:`close` (also run at exit) restores descriptor 2.
    """

    def __init__(self):
        sys.stderr.flush()
        self._target = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        self._closed = False
        self._thread = threading.Thread(target=self._pump, args=(read_end,), daemon=True,
                                        name="synpose-stderr-filter")
        self._thread.start()
        atexit.register(self.close)

    def _write(self, data: bytes) -> None:
        while data:
            try:
                written = os.write(self._target, data)
            except OSError:
                return
            data = data[written:]

    def _pump(self, read_end: int) -> None:
        pending = b""  # start of a line that may still be a log line
        passing = False  # inside a line already let through
        while True:
            try:
                chunk = os.read(read_end, 65536)
            except OSError:
                break
            if not chunk:
                break
            data = chunk
            while data:
                if passing:
                    newline = data.find(b"\n")
                    if newline < 0:
                        self._write(data)
                        data = b""
                    else:
                        self._write(data[:newline + 1])
                        data = data[newline + 1:]
                        passing = False
                    continue
                pending += data
                data = b""
                newline = pending.find(b"\n")
                if newline >= 0:
                    line, data = pending[:newline + 1], pending[newline + 1:]
                    pending = b""
                    if not NOISE.match(line):
                        self._write(line)
                elif not _may_become_noise(pending):
                    self._write(pending)
                    pending = b""
                    passing = True
        if pending and not NOISE.match(pending):
            self._write(pending)
        os.close(read_end)

    def close(self) -> None:
        """Restores descriptor 2 and waits (at most 2 s) for the copy to finish."""
        if self._closed:
            return
        self._closed = True
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(self._target, 2)  # the pipe's last write end closes: the thread sees its end
        self._thread.join(timeout=2.0)
        os.close(self._target)


_FILTER: StderrFilter | None = None


def configure_logging(verbose: bool = False) -> None:
    """Sets TensorFlow's, absl's and Keras's log levels before TensorFlow is imported.

    Quiet (the default): ``TF_CPP_MIN_LOG_LEVEL=3`` and ``absl`` at ERROR, and, when standard
    error is the process's own (not a test runner's capture), a :class:`StderrFilter`. Verbose:
    ``TF_CPP_MIN_LOG_LEVEL=0`` and nothing filtered. A ``TF_CPP_MIN_LOG_LEVEL`` set by the user
    is kept either way.
    """
    global _FILTER
    import synpose_keras

    if synpose_keras._USER_TF_CPP_MIN_LOG_LEVEL is None:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0" if verbose else "3"
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.INFO if verbose else absl_logging.ERROR)
    except ImportError:  # absl comes with TensorFlow; without it there is nothing to quieten
        pass
    if verbose:
        if _FILTER is not None:
            _FILTER.close()
            _FILTER = None
        return
    if _FILTER is None and sys.stderr is sys.__stderr__ and _stderr_is_open():
        _FILTER = StderrFilter()


def _stderr_is_open() -> bool:
    try:
        os.fstat(2)
        return True
    except OSError:
        return False
