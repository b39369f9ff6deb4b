import sys

from inference_server.cli import main

sys.exit(main())
