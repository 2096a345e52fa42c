"""``python -m imgconv`` runs the command line."""

from imgconv.cli import main

main()
