import sys

from metrics.lib.basemetric import main

from . import run_metric

sys.exit(main(run_metric))
