"""`python -m flowscope` runs the command line."""

from flowscope.cli.app import main

main()
