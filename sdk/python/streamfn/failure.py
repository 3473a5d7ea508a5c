"""What a handler raises when an event cannot be handled: `Reject` or `Retry`.

Any other exception is a bug in the function: the SDK lets it escape, the component
traps, and the host dead-letters the event with the traceback's tail as the reason.
"""


class Failure(Exception):
    """Why an event failed, and so what the host does with it. Raise a subclass."""

    #: `"reject"` or `"retry"`, as the host's outcome names it.
    kind = "failure"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = str(reason)

    def __str__(self) -> str:
        return self.reason

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Failure) and type(other) is type(self) and other.reason == self.reason

    def __hash__(self) -> int:
        return hash((type(self), self.reason))


class Reject(Failure):
    """The event is bad and never will be good: the host discards its effects and sends
    it to the dead-letter topic now, with `reason` in a header. Later events go on."""

    kind = "reject"


class Retry(Failure):
    """A transient failure: the host discards the event's effects and delivers it again
    after a backoff; once the retry budget is spent it goes to the dead-letter topic."""

    kind = "retry"
