"""``python -m threadify`` runs the command line."""

from threadify_cli.main import main  # type: ignore[import-not-found, unused-ignore]

main()
