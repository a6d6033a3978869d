import sys

from medfuse.cli.main import main

sys.exit(main())
