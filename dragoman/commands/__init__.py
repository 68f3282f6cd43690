"""CLI subcommands (one module each; see `dragoman.cli.COMMANDS`)."""
