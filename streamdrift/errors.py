"""The exceptions streamdrift raises on purpose.

Errors at start (config, baseline) stop the program with one line and exit code 2.
Errors on the hot path (a bad message) are data: counted by reason, never raised past the loop.
"""


class StreamdriftError(Exception):
    """Base class: anything streamdrift reports to the user as a one-line failure.

    ``problems`` lists the problems one by one, for a log line each (the message alone
    when there is one)."""

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems or (message,)


class ConfigError(StreamdriftError):
    """The configuration file or an environment override is invalid."""


class BaselineError(StreamdriftError):
    """A baseline file is missing, malformed, or does not fit the configured features."""


class InputError(StreamdriftError):
    """A reference or replay input file cannot be read."""


class DecodeError(StreamdriftError):
    """One message could not be decoded; ``reason`` is the label it is counted under."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def join_problems(header: str, problems: list[str]) -> str:
    """One line for one problem; a header and one indented line per problem otherwise.

    >>> join_problems("invalid baseline b.json:", ["feature 'x': edges must increase"])
    "invalid baseline b.json: feature 'x': edges must increase"
    """
    if len(problems) == 1:
        return f"{header} {problems[0]}"
    return "\n  ".join([header, *problems])
