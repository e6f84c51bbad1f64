"""SPEC §6.1: POST /api/events/publish/:instance and publisher tokens, through nginx."""
import json

import pytest

MISSING = "Missing token in header, Authorization header, or query parameter"


@pytest.fixture(scope="module")
def pub(deployment):
    out = deployment.cli("publisher", "create", "--name", "producer").stdout
    assert out.count("\n") == 1
    return out.strip()


def publish(d, name, token, body):
    return d.request("POST", f"/api/events/publish/{name}", token=token, body=body)


def test_accepted_body_and_headers(deployment, acct, pub):
    deployment.create_instance(acct, "p1")
    r = publish(deployment, "p1", pub, {"event": "message.exchange", "data": {"a": 1}, "id": "evt-1:a.b"})
    assert r.status == 202, r
    assert r.json == {"success": True, "message": "Event accepted", "event": {"id": "evt-1:a.b", "websocket": False, "webhooks": 0}}
    assert r.headers["x-ratelimit-limit"] == "60000"
    made = publish(deployment, "p1", pub, {"event": "call.update", "data": {}}).json["event"]["id"]
    assert made.startswith("evt_") and len(made) == 30


def test_only_publisher_tokens(deployment, acct, pub):
    inst = deployment.create_instance(acct, "p2")
    body = {"event": "call.update", "data": {}}
    for token in (acct, inst, "not-a-token"):
        r = publish(deployment, "p2", token, body)
        assert (r.status, r.message) == (401, "Invalid token")
    r = deployment.request("POST", "/api/events/publish/p2", body=body)
    assert (r.status, r.message) == (401, MISSING)
    for method, path in (("GET", "/api/instance/list"), ("GET", "/api/events/getWebsocket/p2"), ("GET", "/api/events/webhook/p2")):
        r = deployment.request(method, path, token=pub)
        assert (r.status, r.message) == (401, "Invalid token")


@pytest.mark.parametrize("body", ["", "nope", "[]", "{}", '{"event":"nope","data":{}}', '{"event":"call.update"}',
                                  '{"event":"call.update","data":[]}', '{"event":"call.update","data":null}',
                                  '{"event":"call.update","data":"x"}', '{"event":"call.update","data":{},"id":""}',
                                  '{"event":"call.update","data":{},"id":"bad id"}', '{"event":"call.update","data":{},"id":7}',
                                  '{"event":"call.update","data":{},"id":"' + "x" * 65 + '"}', '{"event":1,"data":{}}'])
def test_invalid_bodies(deployment, acct, pub, body):
    deployment.create_instance(acct, "p3")
    r = publish(deployment, "p3", pub, body)
    assert (r.status, r.json) == (400, {"success": False, "error": {"message": "Invalid request body"}})


def test_size_limit_is_one_mebibyte(deployment, acct, pub):
    deployment.create_instance(acct, "p4")
    shell = '{"event":"call.update","data":{"x":"%s"}}'
    fits = shell % ("y" * (1024 * 1024 - len(shell) + 2))
    assert len(fits) == 1024 * 1024
    assert publish(deployment, "p4", pub, fits).status == 202
    r = publish(deployment, "p4", pub, shell % ("y" * (1024 * 1024)))
    assert (r.status, r.message) == (413, "Request body too large")


def test_instance_names_across_accounts(deployment, pub):
    a = deployment.account("pa")
    b = deployment.account("pb")
    body = {"event": "call.update", "data": {}}
    assert publish(deployment, "ghost", pub, body).message == "Instance not found"
    deployment.create_instance(a, "shared")
    assert publish(deployment, "shared", pub, body).status == 202
    deployment.create_instance(b, "shared")
    assert publish(deployment, "shared", pub, body).status == 409
    assert publish(deployment, "pa.shared", pub, body).status == 202
    assert publish(deployment, "pb.shared", pub, body).status == 202


def test_disabled_publisher_stops_at_once(deployment, acct):
    token = deployment.cli("publisher", "create", "--name", "short-lived").stdout.strip()
    deployment.create_instance(acct, "p5")
    assert publish(deployment, "p5", token, {"event": "call.update", "data": {}}).status == 202
    deployment.cli("publisher", "disable", "short-lived")
    assert publish(deployment, "p5", token, {"event": "call.update", "data": {}}).message == "Invalid token"
    listing = deployment.cli("publisher", "list").stdout
    assert "short-lived\tdisabled" in listing and token not in listing
    assert token not in deployment.stored_state()
