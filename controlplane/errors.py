"""Domain errors the API maps to HTTP answers."""


class Conflict(Exception):
    """The request clashes with existing state (duplicate name, busy site...): 409."""


class BadRequest(Exception):
    """The request is well-formed but cannot be carried out as asked: 400."""


class Invalid(Exception):
    """A value in the request breaks a rule (name, format...): 422."""


class TooLarge(Exception):
    """The request's body is bigger than the limit for it: 413."""


class ApplyFailed(Exception):
    """The change was saved but could not be pushed to the running sites: 502."""


class TooBusy(Exception):
    """The caller already has as many such requests running as allowed: 429."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DriftConflict(Conflict):
    """Production changed where a promotion would write: 409 with the drift report."""

    def __init__(self, message: str, drift: dict[str, object]) -> None:
        super().__init__(message)
        self.drift = drift
