"""Every operation of /api/openapi.json driven by schemathesis with generated inputs — valid ones
(which the server must answer with a success or a 4xx) and invalid ones (wrong types, missing
fields, out-of-range values) — as an administrator, inside the test's rolled-back transaction.
Not one may be answered with a server error.

The number of examples per operation is bounded so that the run takes about a minute; a failing
example is printed whole, so it can be replayed by hand and kept as a regression test.
"""
from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from geo import audit, users

EXAMPLES = 400                       # drawn over all operations, both modes: ≈ 6 per operation
STREAMS = ("/api/live",)             # a stream answers until its viewer leaves: not a request/response


@pytest.fixture()
def bearer(session, make_user, tiny) -> dict:
    name, _ = make_user("admin")
    token = users.create_token(session, audit.Actor("test"), name, "fuzz")
    session.flush()
    return {"Authorization": f"Bearer {token}"}


def test_no_generated_request_gets_a_server_error(app, bearer):
    app.config["PROPAGATE_EXCEPTIONS"] = False   # a server error is an answer to collect
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [op for op in operations if op.path not in STREAMS]
    assert len(operations) > 40
    problems: list[str] = []
    tried: set[str] = set()
    statuses: Counter[int] = Counter()

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def run(data):
        operation = data.draw(st.sampled_from(operations))
        mode = data.draw(st.sampled_from(list(GenerationMode)))
        case = data.draw(operation.as_strategy(generation_mode=mode))
        response = case.call(headers=bearer)
        tried.add(f"{operation.method.upper()} {operation.path}")
        statuses[response.status_code // 100 * 100] += 1
        if response.status_code >= 500:
            problems.append(f"{response.status_code} {case.method} {case.formatted_path} "
                            f"query={case.query} body={str(case.body)[:200]}: {response.text[:200]}")

    run()
    assert problems == [], "\n".join(problems)
    assert len(tried) > len(operations) // 2      # the draw reached most operations
    # The token is honoured: generated requests succeed, not only bounce off the login.
    assert statuses[200] > EXAMPLES // 10 and statuses[500] == 0, statuses
