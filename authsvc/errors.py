"""Exceptions that carry their data, and the one place that turns each into an HTTP answer (see ``web.errors``)."""

from __future__ import annotations

import redis
from sqlalchemy.exc import DBAPIError, OperationalError

# A store that did not answer: the lean WSGI paths turn these into 503 themselves, as the Flask handlers do.
STORE_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.BusyLoadingError,
                redis.exceptions.ClusterError, OperationalError, DBAPIError)


class ServiceError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, **data):
        super().__init__(message)
        self.message = message
        self.data = data


class Throttled(ServiceError):
    status = 429
    code = "throttled"

    def __init__(self, retry_after: int, scope: str = "login"):
        super().__init__("Too many attempts. Please wait before trying again.", retry_after=retry_after)
        self.retry_after = max(1, int(retry_after))
        self.scope = scope


class DependencyUnavailable(ServiceError):
    """A store we need to decide safely (Redis, the database) did not answer: we refuse (503), never guess."""

    status = 503
    code = "unavailable"

    def __init__(self, what: str):
        super().__init__("The service is temporarily unavailable. Please try again shortly.", dependency=what)
        self.what = what
