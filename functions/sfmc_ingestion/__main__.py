"""`python -m sfmc_ingestion run|status|validate|push-config` (see cli.py)."""

from sfmc_ingestion.cli import main

raise SystemExit(main())
