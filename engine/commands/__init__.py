"""Subcommands of the ``d2a`` CLI, one module each (see ``engine.cli.SUBCOMMANDS``)."""
