"""`python -m daad` is the `daad` command."""

from daad.cli import main

main()
