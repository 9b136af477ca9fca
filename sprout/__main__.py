"""`python -m sprout` is the `sprout` command."""

from sprout.entrypoints.cli import main

main()
