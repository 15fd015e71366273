"""Domain errors raised by services; the API maps each to its status (CONTRACTS.md).

Services raise these instead of HTTP exceptions so the admin, commands and tasks can call the
same code and show the same reasons.
"""


class DomainError(Exception):
    status_code = 400

    def __init__(self, detail: str = "", **extra):
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFound(DomainError):
    status_code = 404


class Forbidden(DomainError):
    status_code = 403


class Conflict(DomainError):
    """Valid request, but the current state does not allow it; nothing was changed."""

    status_code = 409


class Invalid(DomainError):
    """Bad input: `fields` maps each field to its reasons."""

    def __init__(self, fields: dict[str, list[str]]):
        super().__init__("; ".join(f"{name}: {', '.join(map(str, r))}" for name, r in fields.items()))
        self.fields = fields
