"""``python -m imgconv`` runs the command line."""

from imgconv.entry import main

main()
