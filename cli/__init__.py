"""The ``threadify`` command line: a thin layer over the :mod:`threadify` library.

Installed as ``threadify_cli``; its modules import each other relatively, so the same code is
type-checked under the folder's name (``cli``). Every option is declared once, in
:mod:`.options`; :mod:`.parsing` reads those tables to parse command lines and write ``--help``.
"""
