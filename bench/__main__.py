"""``python -m bench raw ...``: one raw sender process of P2 (``riskcast bench`` runs it)."""

import sys

from bench import raw_main

if len(sys.argv) in (5, 6) and sys.argv[1] == "raw":
    raw_main(sys.argv[2:])
else:
    sys.stderr.write("usage: riskcast bench (this module's own entry is for raw senders)\n")
    raise SystemExit(2)
