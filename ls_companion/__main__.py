import sys

from ls_companion.cli import main

sys.exit(main())
