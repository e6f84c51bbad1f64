"""SPEC §2, every row, through nginx and spawn-fcgi workers."""
import os
import pytest

MISSING = "Missing token in header, Authorization header, or query parameter"


def test_missing_token(deployment):
    for method, path in [("GET", "/api/instance/list"), ("GET", "/api/events/getWebsocket/a"),
                         ("POST", "/api/events/websocket/a"), ("POST", "/api/instance/new"),
                         ("DELETE", "/api/instance/delete/a")]:
        r = deployment.request(method, path)
        assert r.status == 401, (method, path, r)
        assert r.json == {"success": False, "error": {"message": MISSING}}


def test_token_sources_in_order(deployment, acct):
    deployment.create_instance(acct, "src")
    assert deployment.request("GET", "/api/instance/list", token=acct).status == 200
    assert deployment.request("GET", "/api/instance/list", auth=f"Bearer {acct}").status == 200
    assert deployment.request("GET", f"/api/instance/list?token={acct}").status == 200
    # The header wins over a bad Authorization and query parameter.
    r = deployment.request("GET", "/api/instance/list?token=bad", token=acct, auth="Bearer bad")
    assert r.status == 200
    # An empty header counts as absent: the next source is used.
    r = deployment.request("GET", "/api/instance/list", headers={"token": ""}, auth=f"Bearer {acct}")
    assert r.status == 200


def test_invalid_token(deployment):
    for kw in [{"token": "nope"}, {"auth": "Bearer nope"}]:
        r = deployment.request("GET", "/api/instance/list", **kw)
        assert r.status == 401
        assert r.json == {"success": False, "error": {"message": "Invalid token"}}
    assert deployment.request("GET", "/api/instance/list?token=nope").message == "Invalid token"


def test_instance_token_on_account_only_endpoints(deployment, acct):
    it = deployment.create_instance(acct, "own")
    r = deployment.request("POST", "/api/instance/new", token=it, body={"name": "x"})
    assert (r.status, r.message) == (401, "Invalid token")
    r = deployment.request("DELETE", "/api/instance/delete/own", token=it)
    assert (r.status, r.message) == (401, "Invalid token")


def test_instance_token_on_another_instance(deployment, acct):
    it = deployment.create_instance(acct, "mine")
    deployment.create_instance(acct, "theirs")
    for name in ["theirs", "does-not-exist", "bad%20name"]:
        for method, path, body in [("GET", f"/api/events/getWebsocket/{name}", None),
                                   ("POST", f"/api/events/websocket/{name}", {"enabled": True})]:
            r = deployment.request(method, path, token=it, body=body)
            assert r.status == 403, (path, r)
            assert r.json == {"success": False, "error": {"message": "Instance token does not match the requested instance"}}


def test_account_token_on_foreign_or_missing_instance(deployment, acct):
    other = deployment.account("other-" + acct[:8].replace("_", "x").replace("-", "y"))
    deployment.create_instance(other, "foreign")
    for name in ["foreign", "missing", "bad%20name", "x" * 101]:
        for method, path, body in [("GET", f"/api/events/getWebsocket/{name}", None),
                                   ("POST", f"/api/events/websocket/{name}", {"enabled": True}),
                                   ("DELETE", f"/api/instance/delete/{name}", None)]:
            r = deployment.request(method, path, token=acct, body=body)
            assert r.status == 404, (path, r)
            assert r.json == {"success": False, "error": {"message": "Instance not found"}}


def test_tokens_never_stored_or_logged(deployment, acct):
    chosen = "my-chosen-instance-token-42"
    deployment.create_instance(acct, "secret", token=chosen)
    generated = deployment.create_instance(acct, "secret2")
    for root, _, files in os.walk(deployment.dir):
        for f in files:
            path = os.path.join(root, f)
            if os.path.islink(path) or f.endswith(".sock"):
                continue
            data = open(path, "rb").read()
            for t in (acct, chosen, generated):
                assert t.encode() not in data, f"raw token found in {path}"
    stored = deployment.stored_state()
    for t in (acct, chosen, generated):
        assert t not in stored
