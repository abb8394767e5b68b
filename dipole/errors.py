"""Errors the library raises for bad input it detected itself. The command line prints their message as one
`error:` line; any other exception is a bug (or an environment problem) and keeps its traceback.

Each class also derives from the built-in exception a Python caller would expect (ValueError, FileNotFoundError,
RuntimeError, OSError, FloatingPointError), so `except ValueError` keeps working.
"""

from __future__ import annotations


class DipoleError(Exception):
    """Bad input detected by the library; the message names the file or field and the fix."""


class UsageError(DipoleError, ValueError):
    """A bad argument, option or config value."""


class MissingFileError(DipoleError, FileNotFoundError):
    """A file the command needs does not exist; the message says how to make it."""


class RunFolderError(DipoleError, RuntimeError):
    """A run folder that cannot be used as asked: in use by another process, holding another run, or mismatched."""


class MissingDependencyError(DipoleError, ImportError):
    """An optional package a feature needs is not installed; the message gives the pip command."""


class DivergedError(DipoleError, FloatingPointError):
    """Training produced non-finite metrics; the message names the step and the columns, and what to lower. The last
    checkpoint before it is intact."""


class NoSpaceError(DipoleError, OSError):
    """The disk filled up while writing; what was written before is intact."""

    def __str__(self) -> str:  # the message alone, without OSError's "[Errno 28]" prefix
        return str(self.strerror)
