"""`python -m aether_cli`: the same as the `aether` console script."""

from aether_cli.main import main

main()
