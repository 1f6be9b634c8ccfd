"""The ``dcme-keras`` command: one entry point, one module per subcommand."""
