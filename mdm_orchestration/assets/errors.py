"""Step errors without customer data (design rule 6, RELIABILITY row 19).

Dagster stores a failed step's exception, its message and its chain of causes, in its event
log. A message from a library may quote a value it choked on (a name, an email address), so
such an exception reaches Dagster only as its class and an error id: the whole traceback is
written to ``$MDM_HOME/errors/<id>.txt`` (0600 in a 0700 folder, beside the hub's other files
holding customer data), where an operator reads it. The hub's own exceptions (classes of this
package, whose messages name tables, files by hash, counts) reach Dagster with their message,
masked by the redaction filter's rules and without their causes. ``dg.Failure`` and Dagster's
own errors, written by the assets with counts and hashes only, pass as they are.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import dagster as dg

from mdm_orchestration.hub.redaction import redact
from mdm_orchestration.settings import settings

F = TypeVar("F", bound=Callable[..., Any])

#: Exceptions that reach Dagster as they are: the assets' own failures and Dagster's signals.
_PASS = (dg.Failure, dg.RetryRequested, dg.DagsterError)


def withheld(step: str, exc: BaseException) -> dg.Failure:
    """A failure naming ``exc``'s class and an error id; its traceback kept under MDM_HOME.
    One of the hub's own exceptions keeps its (redacted) message."""
    cls = type(exc)
    if cls.__module__.split(".", 1)[0] == "mdm_orchestration":
        return dg.Failure(
            description=redact(f"{step} failed with {cls.__name__}: {exc}"),
            metadata={"error_class": cls.__name__},
        )
    text = "".join(traceback.format_exception(exc))
    error_id = hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16]
    folder = settings().home / "errors"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    path = folder / f"{error_id}.txt"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    return dg.Failure(
        description=(
            f"{step} failed with {type(exc).__name__} (error {error_id}); its message may "
            f"hold customer data, so it is kept out of Dagster, in {path}"
        ),
        metadata={"error_class": type(exc).__name__, "error_id": error_id},
    )


def customer_safe_errors(fn: F) -> F:
    """Wrap an asset's body (a function or a generator): an exception other than a
    :data:`_PASS` one is raised as :func:`withheld`, without its message or its causes."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
            try:
                yield from fn(*args, **kwargs)
            except _PASS:
                raise
            except Exception as exc:  # noqa: BLE001 - every other error, masked
                raise withheld(fn.__name__, exc) from None

        return generator  # type: ignore[return-value]

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
        try:
            return fn(*args, **kwargs)
        except _PASS:
            raise
        except Exception as exc:  # noqa: BLE001 - every other error, masked
            raise withheld(fn.__name__, exc) from None

    return call  # type: ignore[return-value]
