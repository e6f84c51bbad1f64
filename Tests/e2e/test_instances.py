"""SPEC §4: instance creation, listing and deletion."""
import pytest

UNCONFIGURED = {"enabled": False, "events": [], "mediaBase64": False}
# SPEC §4: a list item's webhook when the default label was never saved.
NO_WEBHOOK = {"label": "default", "enabled": False, "url": "", "byEvents": False, "events": [], "mediaBase64": False}


def test_create_generated_token(deployment, acct):
    r = deployment.request("POST", "/api/instance/new", token=acct, body={"name": "gen"})
    assert r.status == 201
    inst = r.json["instance"]
    assert r.json["success"] is True and r.json["message"] == "Instance created"
    assert set(inst) == {"name", "token", "status", "websocket", "webhook"}
    assert inst["name"] == "gen" and inst["status"] == "disconnected" and inst["websocket"] is None and inst["webhook"] is None
    assert len(inst["token"]) == 43 and all(c.isalnum() or c in "-_" for c in inst["token"])
    assert deployment.request("GET", "/api/instance/list", token=inst["token"]).status == 200


def test_create_with_websocket_and_ignored_fields(deployment, acct):
    r = deployment.request("POST", "/api/instance/new", token=acct, body={
        "name": "withws", "websocketEnabled": True, "websocketEvents": ["instance.state", "instance.state"],
        "websocketMediaBase64": True, "proxy": {"host": "p"}, "webhook": {"url": "u"}, "chatwoot": {}, "settings": {}, "s3": {}})
    assert r.status == 201
    assert r.json["instance"]["websocket"] == {"enabled": True, "events": ["instance.state"], "mediaBase64": True}
    g = deployment.request("GET", "/api/events/getWebsocket/withws", token=acct)
    assert g.json["websocket"] == r.json["instance"]["websocket"]


def test_invalid_websocket_block_does_not_abort(deployment, acct):
    r = deployment.request("POST", "/api/instance/new", token=acct, body={"name": "badws", "websocketEvents": ["nope"]})
    assert r.status == 201
    assert r.json["instance"]["websocket"] is None
    assert deployment.request("GET", "/api/events/getWebsocket/badws", token=acct).status == 404


def test_chosen_token_rules(deployment, acct):
    chosen = "chosen!token~0123456789"
    assert deployment.request("POST", "/api/instance/new", token=acct, body={"name": "c1", "token": chosen}).json["instance"]["token"] == chosen
    r = deployment.request("POST", "/api/instance/new", token=acct, body={"name": "c2", "token": chosen})
    assert (r.status, r.message) == (409, "Token already in use")
    r = deployment.request("POST", "/api/instance/new", token=acct, body={"name": "c3", "token": acct})
    assert (r.status, r.message) == (409, "Token already in use")
    for bad in ["short", "x" * 257, "has spaces in the token", "tab\tinside-the-token", 12345678901234567]:
        r = deployment.request("POST", "/api/instance/new", token=acct, body={"name": "c4", "token": bad})
        assert (r.status, r.message) == (400, "Invalid request body"), bad


def test_duplicate_name(deployment, acct):
    deployment.create_instance(acct, "dup")
    r = deployment.request("POST", "/api/instance/new", token=acct, body={"name": "dup"})
    assert r.status == 409
    assert r.json == {"success": False, "error": {"message": "Instance name already exists"}}


@pytest.mark.parametrize("body", ["", "nope", "[]", "{}", '{"name":""}', '{"name":"a b"}', '{"name":1}', '{"name":null}',
                                  '{"name":"' + "x" * 101 + '"}', '{"name":"é"}'])
def test_create_bad_body(deployment, acct, body):
    r = deployment.request("POST", "/api/instance/new", token=acct, body=body)
    assert r.status == 400, r
    assert r.json == {"success": False, "error": {"message": "Invalid request body"}}


def test_quota(deployment):
    t = deployment.account("quota1", quota=1)
    deployment.create_instance(t, "one")
    r = deployment.request("POST", "/api/instance/new", token=t, body={"name": "two"})
    assert r.status == 403
    assert r.json == {"success": False, "error": {"message": "Account instance quota exceeded"}}
    deployment.request("DELETE", "/api/instance/delete/one", token=t)
    deployment.create_instance(t, "two")


def test_list(deployment, acct):
    assert deployment.request("GET", "/api/instance/list", token=acct).json == \
        {"success": True, "message": "0 Instances found", "instances": []}
    b = deployment.create_instance(acct, "b")
    deployment.create_instance(acct, "a", websocketEnabled=True)
    deployment.create_instance(acct, "C")
    r = deployment.request("GET", "/api/instance/list", token=acct)
    assert r.json["message"] == "3 Instances found"
    assert [i["name"] for i in r.json["instances"]] == ["C", "a", "b"]
    by = {i["name"]: i for i in r.json["instances"]}
    assert by["b"] == {"name": "b", "status": "disconnected", "websocket": UNCONFIGURED, "webhook": NO_WEBHOOK}
    assert by["a"]["websocket"] == {"enabled": True, "events": [], "mediaBase64": False}
    r = deployment.request("GET", "/api/instance/list?instanceName=b", token=acct)
    assert r.json["message"] == "1 Instance found" and [i["name"] for i in r.json["instances"]] == ["b"]
    r = deployment.request("GET", "/api/instance/list?instanceName=b,a,ghost", token=acct)
    assert [i["name"] for i in r.json["instances"]] == ["a", "b"]
    r = deployment.request("GET", "/api/instance/list?instanceName=ghost", token=acct)
    assert r.status == 404 and r.message == "Instance not found"
    # An instance token sees only its own instance, whatever the filter.
    r = deployment.request("GET", "/api/instance/list?instanceName=a", token=b)
    assert r.json["message"] == "1 Instance found" and [i["name"] for i in r.json["instances"]] == ["b"]


def test_delete(deployment, acct):
    it = deployment.create_instance(acct, "gone")
    deployment.request("POST", "/api/events/websocket/gone", token=acct, body={"enabled": True})
    r = deployment.request("DELETE", "/api/instance/delete/gone", token=acct)
    assert r.status == 200
    assert r.json == {"success": True, "message": "Instance deleted", "instance": {"status": "deleted"}}
    # The token stops working at once, in every worker.
    for _ in range(20):
        assert deployment.request("GET", "/api/events/getWebsocket/gone", token=it).message == "Invalid token"
        assert deployment.request("GET", "/api/events/getWebsocket/gone", token=acct).message == "Instance not found"
    assert deployment.request("DELETE", "/api/instance/delete/gone", token=acct).status == 404
    # The name is free again, with no configuration left over.
    deployment.create_instance(acct, "gone")
    assert deployment.request("GET", "/api/events/getWebsocket/gone", token=acct).status == 404
