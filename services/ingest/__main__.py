import sys

from fusou.cli.main import main

sys.exit(main(["serve", "ingest", *sys.argv[1:]]))
