"""What Pulumi runs for `--policy-pack policies` (`python policies/`): build the PolicyPack,
which starts the analyzer's gRPC server, prints its port and serves until stopped.

Only this file constructs `PolicyPack`, and only when run as the program: importing it (as the
tests do) starts nothing. The repository root goes on `sys.path` first because the rules read
the program's own chart pins and mesh names (`components/base/pins.py`, `mesh.py`).
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pulumi_policy import PolicyPack  # noqa: E402

from policies.pack import pack_arguments  # noqa: E402

if __name__ == "__main__":
    PolicyPack(**pack_arguments())
