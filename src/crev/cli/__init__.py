"""The ``crev`` command, the terminal face of the ledger.

``commands.py`` holds the command group and the ledger's commands (keys, init, serve, submit,
factors, demo, verify, trace, report, export); ``market.py`` the market's (jpy, market, order,
delegate, statement); ``dgc.py``, ``sim.py``, ``device.py`` and ``crev.consortium.cli`` the DGC
agent's, the simulator's, a device's and the consortium's. Those groups are imported only when
one of them runs (``commands.LAZY_COMMANDS``). ``common.py`` holds what they share (console,
failures, keys, talking to a node, opening a ledger read-only); ``render.py`` the terminal
rendering of trace, report and verify.
"""

from crev.cli.commands import main

__all__ = ["main"]
