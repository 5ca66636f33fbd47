"""``python -m vivified`` runs the CLI."""

from vivified.cli import main

raise SystemExit(main())
