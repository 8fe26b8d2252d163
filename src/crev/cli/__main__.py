"""``python -m crev.cli`` runs the ``crev`` command."""

from crev.cli.commands import main

main()
