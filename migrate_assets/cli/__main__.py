import sys

from migrate_assets.cli import main

sys.exit(main())
