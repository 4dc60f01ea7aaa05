"""Schemathesis against the service's own OpenAPI schema, in process: whatever a client
sends, the answer is never a 5xx, and every answer is one the schema states (status,
content type, body), with schema-valid bodies accepted and invalid ones refused.
Bounded: few examples per operation, no deadline noise. The same against a real
`wb serve --token` over HTTP: tests/integration/test_serve_fuzz.py."""

from __future__ import annotations

import pytest
import schemathesis
import torch
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

MAX_EXAMPLES = 25


@pytest.fixture(scope="module")
def fuzz_schema(module_tmp):
    from workbench.backend import BackendSettings, ModelHolder, RetrainWorker, create_app
    from workbench.backend.tiny_models import register_untrained_model
    from workbench.taxonomy import Taxonomy
    from workbench.workspace import Workspace

    torch.set_num_threads(1)
    root = module_tmp.mktemp("fuzz")
    ws = Workspace.create(root / "ws", Taxonomy.flat(["cat", "dog"]))
    (root / "files").mkdir()
    with ws.open_catalog() as catalog:
        register_untrained_model(ws, catalog, ["cat", "dog"], promote=True)
    holder = ModelHolder.for_workspace(ws, ws.open_catalog, poll_seconds=0)
    worker = RetrainWorker(lambda: {}, ws.open_catalog, threshold=1000)
    app = create_app(
        holder,
        ws.open_catalog,
        BackendSettings(
            taxonomy=ws.taxonomy,
            document_root=root / "files",
            max_body_bytes=64 * 1024,
            fetch_timeout=1.0,
        ),
        retrainer=worker,
    )
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.timeout(300)
def test_no_request_gets_a_5xx(fuzz_schema):
    operations = [r.ok() for r in fuzz_schema.get_all_operations()]
    assert {op.path for op in operations} >= {
        "/health",
        "/setup",
        "/predict",
        "/versions",
        "/webhook",
    }
    seen = []
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    # negative data only where there is a body to break (the GET routes take no input)
    runs = [(op, m) for op in operations for m in modes if op.method == "post" or m == modes[0]]
    for operation, mode in runs:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case):
            response = case.call_and_validate()  # every built-in check schemathesis enables
            seen.append(response.status_code)
            assert response.status_code < 500, (
                case.method,
                case.path,
                case.body,
                response.text[:500],
            )
            assert "application/json" in str(response.headers.get("content-type"))

        check()
    assert len(seen) >= len(runs) * 5
    assert any(400 <= s < 500 for s in seen)  # the fuzzer did reach the refusals
    assert seen.count(200) >= len(operations) * 5  # and valid bodies were answered
