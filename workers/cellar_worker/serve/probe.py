"""`python -m cellar_worker.serve.probe <model dir>`: load a model directory in a throwaway process.

Serve probes each new version this way before loading it in-process: a model whose unpickling
crashes the interpreter (a segfaulting extension, `os._exit` in a `__reduce__`) takes down the
probe, not the server. Exit 0 when the model loaded; otherwise the error is the last line of stderr.
"""

from __future__ import annotations

import sys


def main() -> None:
    from cellar.models import load_model

    load_model(sys.argv[1])


if __name__ == "__main__":
    main()
