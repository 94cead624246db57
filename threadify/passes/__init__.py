"""The transform passes, each a function over a decoded :class:`threadify.wasm.Module`.

Run in this order by :mod:`threadify.pipeline`:

1. :mod:`~threadify.passes.memory` — one shared, imported memory, exported as ``memory``;
2. :mod:`~threadify.passes.segments` — active data segments become passive, written once;
3. :mod:`~threadify.passes.threads` — the injected runtime (start-up, stacks, TLS, trampoline);
4. :mod:`~threadify.passes.stack_check` — with ``--stack-check`` only: stack-limit checks;
5. :mod:`~threadify.passes.offsets` — custom sections that address moved bytes, dropped or
   rewritten;
6. :mod:`~threadify.passes.metadata` — names, ``producers``, the ``threadify`` section.

Passes only append items: existing function, global, table and data indices never
change, and untouched sections are re-emitted byte for byte by the binary layer.
"""
