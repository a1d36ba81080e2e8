"""The `tinylarge` command-line interface (typer)."""
