"""The worker's first events pay no import: what the enrichers need (price data, environment
versions) is loaded when the handler is built. Checked in a fresh interpreter, where nothing
has been imported by other tests."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

_CHILD = textwrap.dedent("""
    import json, sys
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.messages import AIMessage, HumanMessage
    from langchain_core.runnables import RunnableLambda
    from llm_audit_langchain import AuditCallbackHandler, AuditConfig, MemoryExporter
    from llm_audit_langchain.testing import ScriptedChatModel

    memory = MemoryExporter()
    handler = AuditCallbackHandler([memory], config=AuditConfig(debug=True))
    model = ScriptedChatModel(responses=[AIMessage("hi")] * 2)

    def fail(x):
        raise ValueError("boom")

    def run(callbacks):
        model.invoke([HumanMessage("hello")], config={"callbacks": callbacks})
        try:
            RunnableLambda(fail).invoke(1, config={"callbacks": callbacks})
        except ValueError:
            pass

    run([BaseCallbackHandler()])  # what LangChain itself imports on the caller's thread
    loaded = set(sys.modules)
    run([handler])
    flushed = handler.flush(20)
    handler.shutdown(5)
    print(json.dumps({"flushed": flushed, "events": [e.event_type for e in memory.events],
                      "imported": sorted(set(sys.modules) - loaded)}))
""")


def test_the_first_events_import_nothing_on_the_worker() -> None:
    done = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["flushed"] and {"llm.invoke", "chain.error"} <= set(report["events"])
    assert report["imported"] == []
