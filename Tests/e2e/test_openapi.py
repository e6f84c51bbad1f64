"""openapi.yaml: a valid OpenAPI 3.1 document, served by the stack, describing every route, and
held to what the real stack (nginx + spawn-fcgi workers) answers by schemathesis."""
import os
import re
import subprocess
import sys

import pytest

from conftest import FAST
from harness import ROOT, Deployment

SPEC = ROOT / "openapi.yaml"
ROUTES = ROOT / "Sources" / "RyzeCore" / "Handlers" / "Application.swift"

# What schemathesis holds every answer to: no 5xx, a status the operation lists, its content
# type, its required headers (the rate-limit headers, Retry-After on 429), its body schema; a
# request the document calls invalid is refused (4xx); a request without its token is refused;
# a 405's Allow is right. Not `unsupported_method`: it sends TRACE, which nginx refuses itself
# before any location (so without the path's own Allow); test_other_methods_are_405 covers the
# methods the app answers.
CHECKS = ",".join([
    "not_a_server_error", "status_code_conformance", "content_type_conformance",
    "response_headers_conformance", "response_schema_conformance",
    "negative_data_rejection", "ignored_auth", "allow_header_conformance",
])
# Bounds, so that the whole module stays within about two minutes on CI's two cores.
MAX_EXAMPLES = int(os.environ.get("OPENAPI_MAX_EXAMPLES", "25"))
MAX_SECONDS = int(os.environ.get("OPENAPI_MAX_SECONDS", "45"))


def load_spec():
    from openapi_spec_validator.readers import read_from_filename
    spec, _ = read_from_filename(str(SPEC))
    return spec


def test_document_is_valid_openapi_3_1():
    from openapi_spec_validator import OpenAPIV31SpecValidator, validate
    spec = load_spec()
    assert spec["openapi"].startswith("3.1.")
    validate(spec, cls=OpenAPIV31SpecValidator)
    assert SPEC.read_bytes().isascii()


def test_document_describes_every_route_and_no_other():
    """The route table in Application.swift against the document's operations (OPTIONS aside,
    which every path answers, and the status page, whose path is a flag)."""
    table = set()
    for method, pattern in re.findall(r'r\.add\("([A-Z]+)", "([^"]+)"', ROUTES.read_text()):
        table.add((method, re.sub(r":(\w+)", r"{\1}", pattern)))
    documented = set()
    for path, item in load_spec()["paths"].items():
        for method in item:
            if method in ("get", "post", "delete", "put", "patch") and path != "/status":
                documented.add((method.upper(), path))
    assert documented == table
    assert all("options" in item for path, item in load_spec()["paths"].items() if path != "/status")


def test_served_without_a_token(deployment):
    for headers in ({}, {"token": "not-a-token"}):
        r = deployment.request("GET", "/api/openapi.yaml", headers=headers)
        assert r.status == 200, r
        assert r.headers["content-type"] == "application/yaml"
        assert r.body == SPEC.read_bytes()
        for h in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"):
            assert h in r.headers
    r = deployment.request("POST", "/api/openapi.yaml", body="{}")
    assert (r.status, r.message, r.headers.get("allow")) == (405, "Method not allowed", "GET, OPTIONS")


def test_other_methods_are_405_with_the_paths_allow(deployment):
    """A method the document does not list for a path is 405 with `Allow` naming exactly the
    methods it lists there (OPTIONS included)."""
    for path, item in load_spec()["paths"].items():
        if path == "/status":
            continue
        listed = {m.upper() for m in item if m in ("get", "post", "delete", "put", "patch", "options")} | {"OPTIONS"}
        concrete = path.replace("{instance}", "shop")
        for method in ("PUT", "PATCH", "GET", "POST", "DELETE"):
            if method in listed:
                continue
            r = deployment.request(method, concrete)
            assert (r.status, r.message) == (405, "Method not allowed"), (method, path, r)
            assert set(r.headers["allow"].split(", ")) == listed, (method, path, r.headers["allow"])


@pytest.fixture(scope="module")
def stack(backend):
    """A deployment of its own (the status page on, as the document lists it) with an account
    without quota, a publisher, `shop` (WebSocket and default webhook on) and `old-shop`, the
    example of the instance DELETE."""
    d = Deployment(workers=2, threads=4, args=FAST + ["--status-path", "/status"]).start()
    try:
        account = d.account("fuzz", quota=0)
        publisher = d.cli("publisher", "create", "--name", "fuzzpub").stdout.strip()
        shop = d.create_instance(account, "shop", websocketEnabled=True, webhookEnabled=True,
                                 webhookURL="https://hooks.example/ryze")
        d.create_instance(account, "old-shop")
        yield d, {"account": account, "instance": shop, "publisher": publisher}
    finally:
        d.close()


SCHEME_CREDENTIAL = {"bearerToken": "bearer", "tokenHeader": "api_key", "tokenQuery": "api_key"}


def schemathesis(d, tmp_path, scheme, token, seconds, *extra):
    """One `st run` of openapi.yaml against the stack, with `token` through the security scheme
    `scheme` (so schemathesis knows it, for `ignored_auth`, and sends no made-up one instead)."""
    # schemathesis' `st`, run by the Python that runs the tests (where install-deps.sh put it).
    st = [sys.executable, "-m", "schemathesis.cli"]
    config = tmp_path / "schemathesis.toml"
    config.write_text(f'[auth.openapi.{scheme}]\n{SCHEME_CREDENTIAL[scheme]} = "{token}"\n')
    cmd = [*st, "--config-file", str(config), "--no-color", "run", str(SPEC), "--url", f"http://127.0.0.1:{d.port}",
           "--checks", CHECKS, "--max-examples", str(MAX_EXAMPLES), "--max-time", str(seconds),
           # One worker: hypothesis 6.155's lambda-description cache is not thread-safe (a
           # KeyError inside generation with two).
           "--workers", "1", "--seed", "1", "--no-shrink",
           "--generation-database", "none", "--request-timeout", "10",
           "--phases", "examples,coverage,fuzzing", "--report-dir", str(tmp_path / "report"), *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=seconds * 3 + 60)
    sys.stdout.write(r.stdout[-20000:])
    sys.stderr.write(r.stderr[-5000:])
    assert r.returncode == 0, r.stdout[-6000:]
    # A token that got nothing but 401 on some operation would leave it tested for refusals only.
    # (Only-403 is no sign of that: an instance token is 403 on every other instance's path, and
    # whether the fuzzer's few requests for /ws/shop came in the run varies.)
    assert "401 Unauthorized (" not in r.stdout, r.stdout[-6000:]


# Publishing takes publisher tokens only, the other operations never do: separate runs. An
# instance token's answer on the account-only operations is 401 whatever is sent.
PUBLISH = ["--include-operation-id", "publishEvent"]
NOT_PUBLISH = ["--exclude-operation-id", "publishEvent"]
NOT_PUBLISH_NOR_ACCOUNT_ONLY = ["--exclude-operation-id-regex", "^(publishEvent|createInstance|deleteInstance)$"]


# The instance token's run comes first: the account's run may delete `shop` (the fuzzer mixes
# the document's examples), and the instance token with it.
def test_schemathesis_with_an_instance_token_as_bearer(stack, tmp_path):
    d, tokens = stack
    schemathesis(d, tmp_path, "bearerToken", tokens["instance"], MAX_SECONDS * 2 // 3, *NOT_PUBLISH_NOR_ACCOUNT_ONLY)


def test_schemathesis_with_a_publisher_token_in_the_query(stack, tmp_path):
    d, tokens = stack
    schemathesis(d, tmp_path, "tokenQuery", tokens["publisher"], MAX_SECONDS // 3, *PUBLISH)


def test_schemathesis_with_an_account_token_in_the_header(stack, tmp_path):
    d, tokens = stack
    schemathesis(d, tmp_path, "tokenHeader", tokens["account"], MAX_SECONDS, *NOT_PUBLISH)
