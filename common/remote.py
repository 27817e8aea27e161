"""Run a function shipped by value on a Dask cluster that was started on its own.

A scheduler and workers started as a cluster starts them (``dask scheduler``, ``dask worker``, from any
folder, in this project's environment) can import this package but not the phase folders (their names
start with digits and they are not installed). Distributed pickles a task graph with the standard
``pickle`` first, which names a function by its module, so a phase function sent as it is fails on the
scheduler with ``ModuleNotFoundError``. Instead, :func:`ship` pickles the function and the phase's
modules *by value* (``cloudpickle.register_pickle_by_value``) into bytes that the client scatters to
every worker once, and the graph names only :func:`call` of this installed module, which loads those
bytes (once per worker and payload) and calls the function. A worker never imports a phase module, so a
long-running worker cannot keep an older copy of the code: each run ships the client's.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterable


def ship(function: Callable[..., Any], modules: Iterable[Any]) -> bytes:
    """``function`` pickled with ``modules`` (module objects) by value."""
    import cloudpickle  # the dask extra

    modules = list(modules)
    for module in modules:
        cloudpickle.register_pickle_by_value(module)
    try:
        return cloudpickle.dumps(function)
    finally:
        for module in modules:
            cloudpickle.unregister_pickle_by_value(module)


@functools.lru_cache(maxsize=4)
def _load(payload: bytes) -> Callable[..., Any]:
    import cloudpickle

    return cloudpickle.loads(payload)


def call(payload: bytes, *args: Any) -> Any:
    """Call the function :func:`ship` pickled into ``payload`` with ``args``."""
    return _load(payload)(*args)
