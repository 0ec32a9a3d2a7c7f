"""doqu's shared conformance suite, for doqu's own backends and third-party ones.

Every backend must pass ``doqu.testing.conformance``. An engine takes part by
a module in ``doqu.testing.engines`` (or by :func:`register`) that says how to
open a fresh, empty storage and whether the engine is reachable here. To run
the suite against your own backend, add to your ``conftest.py``::

    pytest_plugins = ["doqu.testing.plugin"]
    from doqu.testing import Engine, register
    register(Engine("mine", open=my_context_manager))

and run ``pytest --pyargs doqu.testing.conformance``.
"""

from doqu.testing.registry import Engine, all_engines, register, required_engines

__all__ = ["Engine", "all_engines", "register", "required_engines"]
