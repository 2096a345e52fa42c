"""The error kinds of imgconv and the exit-code policy, written in one place.

The library raises these; the command line turns them into exit codes and
one-line messages with ``exit_status``, for a single file and for each file
of a batch alike.  Nothing else in the package decides an exit code.

    0    every requested file was written
    1    a runtime failure: an input could not be read or an output written
    2    a usage error: a bad option, kernel spec, registry or format
    130  interrupted by Ctrl-C (SIGINT)
    143  stopped by SIGTERM

130 and 143 are 128 plus the signal's number, what a shell reports for a
process the signal killed, so a script or supervisor tells a stop request
from a Ctrl-C the usual way, while imgconv still cleans up before it exits.

>>> exit_status(InputError("no such file", subject="a.png"))
(1, 'a.png: no such file')
>>> exit_status(ParameterError("must be positive, got 0x0", parameter="size"))
(2, 'size: must be positive, got 0x0')
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class ImgconvError(Exception):
    """A failure with a message meant for the user: ``<subject>: <cause>``.

    >>> str(ImgconvError("cause", subject="in.png"))
    'in.png: cause'
    """

    exit_code = EXIT_FAILURE

    def __init__(self, cause: str, *, subject: str | None = None) -> None:
        from imgconv.limits import bounded_message

        self.cause = cause
        self.subject = subject
        if subject == "":  # an empty path the user gave: name it as such, not as nothing
            subject = "''"
        super().__init__(bounded_message(f"{subject}: {cause}" if subject is not None else cause))


class UsageFailure(ImgconvError, ValueError):
    """The request itself is wrong (option, kernel, registry, format): exit 2.

    A ``ValueError`` too, so library callers can catch bad arguments the
    usual Python way.
    """

    exit_code = EXIT_USAGE


class ParameterError(UsageFailure):
    """A bad value for one keyword argument, named as the Python parameter
    (``value_range``); the command line names its option (``--range``).

    ``suggestion`` is a value of the same parameter that would work.

    >>> str(ParameterError("cannot do this", parameter="backend", suggestion="scipy"))
    "backend: cannot do this; use backend='scipy'"
    """

    def __init__(self, cause: str, *, parameter: str, suggestion: str | None = None) -> None:
        self.parameter = parameter
        self.suggestion = suggestion
        super().__init__(cause, subject=parameter)
        if suggestion is not None:
            self.args = (f"{self.args[0]}; use {parameter}={suggestion!r}",)

    def worded(self, option: str) -> str:
        """The message with ``option`` (a command-line flag) in place of the parameter."""
        hint = f"; use {option} {self.suggestion}" if self.suggestion is not None else ""
        return f"{option}: {self.cause}{hint}"


class KernelError(UsageFailure):
    """A kernel spec, kernel file or registry entry is invalid."""


class RegistryError(KernelError):
    """A registry file cannot be used (syntax, tags, duplicates, fields)."""


class InputError(ImgconvError):
    """An input cannot be read or decoded: exit 1."""


class OutputError(ImgconvError):
    """An output cannot be written: exit 1."""


class Terminated(KeyboardInterrupt):
    """SIGTERM asked the run to stop: it unwinds as Ctrl-C does, and exits 143."""


def exit_status(exc: BaseException) -> tuple[int, str]:
    """The exit code and the one-line message a run ends with after ``exc``.

    Library errors carry their own; running out of memory is a runtime
    failure; anything else is a bug, reported as an internal error.
    """
    from imgconv.limits import bounded_message

    if isinstance(exc, ImgconvError):
        return exc.exit_code, str(exc)
    if isinstance(exc, Terminated):
        return EXIT_TERMINATED, "terminated"
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted"
    if isinstance(exc, MemoryError):
        return EXIT_FAILURE, "out of memory"
    return EXIT_FAILURE, bounded_message(f"internal error: {type(exc).__name__}: {exc}")
