"""``python -m cnnrs``: the same as the ``cnnrs`` command."""

from .cli import main

raise SystemExit(main())
