"""PROTOCOL §3: the OpenAPI 3 document is served, valid, and describes every admin call."""

from openapi_spec_validator import validate

from server.api.app import route_table
from tests.integration.client import ApiClient


async def test_openapi_document_is_valid_and_complete(api: ApiClient) -> None:
    ans = await api.get("/openapi.json")
    assert ans.status == 200
    doc = ans.body
    validate(doc)  # raises on an invalid OpenAPI document
    assert doc["openapi"].startswith("3.")
    described = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    served = {(r["method"], r["path"]) for r in route_table()}
    assert served == described


async def test_unknown_route_answers_the_error_format(api: ApiClient) -> None:
    ans = await api.get("/no-such-thing")
    assert ans.status == 404 and ans.body["error"] == "not-found"
