"""The CPU benchmark suite: cnnrs against numpy (GEMM) and PyTorch (layers, networks), side by side.

Run it with ``cnnrs bench`` or ``python benches/run_suite.py`` (``--quick``,
``--threads N``, ``--cases REGEX``, ``--json PATH``, ``--png PATH``). See
benches/README.md for what each case measures and how.
"""
