"""One module per CLI subcommand; each exposes `main(settings, args) -> int`."""
