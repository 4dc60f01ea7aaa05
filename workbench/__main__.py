"""`python -m workbench` is `wb`."""

from .cli import main

main()
