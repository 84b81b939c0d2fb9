"""`python -m streamrec` is the `streamrec` command."""

from streamrec.cli.app import main

main()
