"""Command-line interface: ``cleanplate <command>``. One module per command."""
