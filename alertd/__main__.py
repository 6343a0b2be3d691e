import sys

from alertd.launch import main

sys.exit(main())
