"""The ``threadify`` command line: a thin Typer layer over the :mod:`threadify` library."""
