"""``python -m mlagen``: the same as the ``mlagen`` command."""

from mlagen.cli import main

raise SystemExit(main())
