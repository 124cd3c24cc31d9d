"""``python -m llm_audit_langchain.inspect.cli``: the ``llm-audit`` command without the script."""

import sys

from . import main

sys.exit(main())
