"""The error kinds of imgconv and the exit-code policy, written in one place.

The library raises these; the command line maps them to exit codes and
prints them as one line.  Nothing else in the package decides an exit code.

    0    every requested file was written
    1    a runtime failure: an input could not be read or an output written
    2    a usage error: a bad option, kernel spec, registry or format
    130  interrupted (Ctrl-C or SIGTERM)
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class ImgconvError(Exception):
    """A failure with a message meant for the user: ``<subject>: <cause>``.

    >>> str(ImgconvError("cause", subject="in.png"))
    'in.png: cause'
    """

    exit_code = EXIT_FAILURE

    def __init__(self, cause: str, *, subject: str | None = None) -> None:
        self.cause = cause
        self.subject = subject
        super().__init__(f"{subject}: {cause}" if subject else cause)


class UsageFailure(ImgconvError):
    """The request itself is wrong (option, kernel, registry, format): exit 2."""

    exit_code = EXIT_USAGE


class KernelError(UsageFailure):
    """A kernel spec, kernel file or registry entry is invalid."""


class RegistryError(KernelError):
    """A registry file cannot be used (syntax, tags, duplicates, fields)."""


class InputError(ImgconvError):
    """An input cannot be read or decoded: exit 1."""


class OutputError(ImgconvError):
    """An output cannot be written: exit 1."""
