import sys

from orchmoe.cli import main

sys.exit(main())
