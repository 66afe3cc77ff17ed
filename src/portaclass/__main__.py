import sys

from portaclass.cli import main

sys.exit(main())
