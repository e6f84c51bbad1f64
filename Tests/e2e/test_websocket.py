"""SPEC §4: GET /api/events/getWebsocket/:instance and POST /api/events/websocket/:instance."""
import pytest

ALL = ["message.exchange", "message.status", "call.update", "group.flow", "instance.state", "label.update"]


def test_not_configured_then_saved_then_read(deployment, acct):
    deployment.create_instance(acct, "ws")
    r = deployment.request("GET", "/api/events/getWebsocket/ws", token=acct)
    assert r.status == 404
    assert r.json == {"success": False, "error": {"message": "WebSocket not configured for this instance"}}
    r = deployment.request("POST", "/api/events/websocket/ws", token=acct,
                           body={"enabled": True, "events": ["call.update", "message.exchange", "call.update"], "mediaBase64": True, "x": 1})
    assert r.status == 200
    assert r.json == {"success": True, "message": "WebSocket configuration saved",
                      "websocket": {"enabled": True, "events": ["call.update", "message.exchange"], "mediaBase64": True}}
    r = deployment.request("GET", "/api/events/getWebsocket/ws", token=acct)
    assert r.status == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json == {"success": True, "message": "WebSocket configuration retrieved",
                      "websocket": {"enabled": True, "events": ["call.update", "message.exchange"], "mediaBase64": True}}


def test_replace_never_merge_and_defaults(deployment, acct):
    deployment.create_instance(acct, "rep")
    deployment.request("POST", "/api/events/websocket/rep", token=acct, body={"enabled": True, "events": ["group.flow"], "mediaBase64": True})
    r = deployment.request("POST", "/api/events/websocket/rep", token=acct, body={"enabled": True})
    assert r.json["websocket"] == {"enabled": True, "events": [], "mediaBase64": False}
    assert deployment.request("GET", "/api/events/getWebsocket/rep", token=acct).json["websocket"] == \
        {"enabled": True, "events": [], "mediaBase64": False}
    r = deployment.request("POST", "/api/events/websocket/rep", token=acct, body={"enabled": True, "events": []})
    assert r.json["websocket"]["events"] == []
    r = deployment.request("POST", "/api/events/websocket/rep", token=acct, body={"enabled": True, "events": ALL})
    assert r.json["websocket"]["events"] == ALL


def test_disabled_is_stored_and_a_200(deployment, acct):
    deployment.create_instance(acct, "off")
    r = deployment.request("POST", "/api/events/websocket/off", token=acct,
                           body={"enabled": False, "events": ["call.update"], "mediaBase64": True})
    assert r.json["websocket"] == {"enabled": False, "events": [], "mediaBase64": False}
    r = deployment.request("GET", "/api/events/getWebsocket/off", token=acct)
    assert r.status == 200
    assert r.json["websocket"] == {"enabled": False, "events": [], "mediaBase64": False}


def test_instance_token_reads_and_writes_its_own(deployment, acct):
    it = deployment.create_instance(acct, "self")
    assert deployment.request("POST", "/api/events/websocket/self", token=it, body={"enabled": True}).status == 200
    assert deployment.request("GET", "/api/events/getWebsocket/self", auth=f"Bearer {it}").status == 200


def test_content_type_not_required(deployment, acct):
    deployment.create_instance(acct, "ct")
    r = deployment.request("POST", "/api/events/websocket/ct", token=acct, body='{"enabled":true}',
                           headers={"Content-Type": "text/plain"})
    assert r.status == 200


@pytest.mark.parametrize("body", [
    "", "not json", "[]", '"x"', "1", "null", "{}", '{"enabled":null}', '{"enabled":"true"}', '{"enabled":1}',
    '{"enabled":true,"events":"call.update"}', '{"enabled":true,"events":[1]}', '{"enabled":true,"events":null}',
    '{"enabled":true,"events":["message.unknown"]}', '{"enabled":true,"events":["Call.Update"]}',
    '{"enabled":true,"mediaBase64":"no"}', '{"enabled":true,"mediaBase64":null}', '{"enabled":true}x',
    '{"enabled":true,', '\xff',
])
def test_invalid_bodies_change_nothing(deployment, acct, body):
    deployment.create_instance(acct, "inv")
    deployment.request("POST", "/api/events/websocket/inv", token=acct, body={"enabled": True, "events": ["label.update"]})
    r = deployment.request("POST", "/api/events/websocket/inv", token=acct, body=body.encode("latin-1"))
    assert r.status == 400, r
    assert r.json == {"success": False, "error": {"message": "Invalid request body"}}
    assert deployment.request("GET", "/api/events/getWebsocket/inv", token=acct).json["websocket"] == \
        {"enabled": True, "events": ["label.update"], "mediaBase64": False}


def test_body_too_large(deployment, acct):
    deployment.create_instance(acct, "big")
    body = '{"enabled":true,"pad":"' + "x" * (64 * 1024) + '"}'
    r = deployment.request("POST", "/api/events/websocket/big", token=acct, body=body)
    assert r.status == 413
    assert r.json == {"success": False, "error": {"message": "Request body too large"}}
    # Over nginx's own cap too: still the contract's envelope.
    r = deployment.request("POST", "/api/events/websocket/big", token=acct, body="x" * (2 * 1024 * 1024))
    assert r.status == 413
    assert r.json == {"success": False, "error": {"message": "Request body too large"}}
    assert deployment.request("GET", "/api/events/getWebsocket/big", token=acct).status == 404


def test_no_get_alias(deployment, acct):
    deployment.create_instance(acct, "alias")
    r = deployment.request("GET", "/api/events/websocket/alias", token=acct)
    assert r.status == 405
    assert r.headers["allow"] == "POST, OPTIONS"
    assert deployment.request("GET", "/api/events/getwebsocket/alias", token=acct).status == 404


def test_percent_encoded_name(deployment, acct):
    deployment.create_instance(acct, "pct-1")
    deployment.request("POST", "/api/events/websocket/pct-1", token=acct, body={"enabled": True})
    r = deployment.request("GET", "/api/events/getWebsocket/%70ct%2D1", token=acct)
    assert r.status == 200, r
