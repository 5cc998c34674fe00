"""Helpers shared by the tests (imported, not fixtures)."""

from collections.abc import Callable


class HookedClient:
    """A real (moto) boto3 client with chosen calls changed: `hooks` maps a method name to
    `hook(real_method, **arguments)`, which may fail the call, send it twice or pause around it."""

    def __init__(self, real, **hooks: Callable):
        self._real, self._hooks = real, hooks

    def __getattr__(self, name):
        real, hook = getattr(self._real, name), self._hooks.get(name)
        return (lambda **arguments: hook(real, **arguments)) if hook else real
