"""`python -m mlops_platform` is the `mlops` command."""

from mlops_platform.cli import main

main()
