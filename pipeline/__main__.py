import os

# LightGBM's OpenMP threads spin while they wait for work; on a shared host (or beside another job) the
# spinning threads take the cores from the ones with work: a 100-round fit measured 39 s instead of 1 s at
# load 7 on 2 cores. Passive waiting costs nothing measurable alone; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pipeline.cli import main  # noqa: E402 - after the OpenMP setting, which is read when lightgbm loads

raise SystemExit(main())
