"""``python -m mock_server`` is ``mock-server``."""

import sys

from mock_server.cli import main

sys.exit(main())
