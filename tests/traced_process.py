"""``python tests/traced_process.py ARGS…``: ``littleflow ARGS…`` with its spans recorded by the
OpenTelemetry SDK's in-memory exporter and written, when the process ends, to the JSON-lines
file ``$LITTLEFLOW_TEST_SPANS`` (name, trace id, span id, parent span id, attributes)."""

import atexit
import json
import os

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from littleflow import tracing
from littleflow.cli import main

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
tracing.use(provider)


@atexit.register
def dump() -> None:
    with open(os.environ["LITTLEFLOW_TEST_SPANS"], "w", encoding="utf-8") as out:
        for span in exporter.get_finished_spans():
            out.write(
                json.dumps(
                    {
                        "name": span.name,
                        "trace": span.context.trace_id,
                        "span": span.context.span_id,
                        "parent": span.parent.span_id if span.parent else None,
                        "attributes": dict(span.attributes),
                    }
                )
                + "\n"
            )


main()
