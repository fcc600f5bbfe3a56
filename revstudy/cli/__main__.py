"""`python -m revstudy.cli` runs the command line."""

from revstudy.cli.app import main

main()
