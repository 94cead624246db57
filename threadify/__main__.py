"""``python -m threadify`` runs the command line."""

from threadify_cli.main import main

main()
