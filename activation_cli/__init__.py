"""The operator CLI (`activation`): validate and push config, preview requests, connect, replay, watch.

The functions and the layer live in the repository tree, not in an installed package: put them on the
path so the CLI validates and previews with exactly the code Lambda runs.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT / "functions", ROOT / "layers" / "activation_core", ROOT):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
