"""SPEC §1 and §4: envelope, headers, unknown routes, methods, CORS."""


def test_unknown_route(deployment, acct):
    for path in ["/", "/api", "/api/instance/list/", "/API/instance/list", "/api/instance/lists", "/ws/x/y", "/ws/"]:
        r = deployment.request("GET", path, token=acct)
        assert r.status == 404, path
        assert r.json == {"success": False, "error": {"message": "Route not found"}}
        assert r.headers["content-type"] == "application/json"


def test_wrong_method(deployment, acct):
    for method, path, allow in [("POST", "/api/instance/list", "GET, OPTIONS"), ("GET", "/api/instance/new", "POST, OPTIONS"),
                                ("PUT", "/api/events/websocket/x", "POST, OPTIONS"), ("GET", "/api/instance/delete/x", "DELETE, OPTIONS")]:
        r = deployment.request(method, path, token=acct)
        assert r.status == 405
        assert r.json == {"success": False, "error": {"message": "Method not allowed"}}
        assert r.headers["allow"] == allow


def test_every_response_has_rate_limit_headers(deployment, acct):
    for r in [deployment.request("GET", "/api/instance/list", token=acct), deployment.request("GET", "/nope"),
              deployment.request("GET", "/api/instance/list"), deployment.request("POST", "/api/instance/list"),
              deployment.request("OPTIONS", "/api/instance/list", headers={"Origin": "https://app.example"})]:
        for h in ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"]:
            assert h in r.headers, (r, h)


def test_cors(deployment, acct):
    r = deployment.request("OPTIONS", "/api/events/websocket/x", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
    assert r.status == 204
    assert r.headers["access-control-allow-origin"] == "https://app.example"
    assert r.headers["access-control-allow-methods"] == "GET, POST, DELETE, OPTIONS"
    assert r.headers["access-control-allow-headers"] == "Content-Type, Authorization, token"
    assert r.headers["access-control-max-age"] == "600"
    assert r.headers["vary"] == "Origin"
    assert "access-control-allow-credentials" not in r.headers
    g = deployment.request("GET", "/api/instance/list", token=acct, headers={"Origin": "https://app.example"})
    assert g.headers["access-control-allow-origin"] == "https://app.example"
    assert "X-RateLimit-Remaining" in g.headers["access-control-expose-headers"]
    e = deployment.request("OPTIONS", "/api/instance/list", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in e.headers
    assert "access-control-allow-origin" not in deployment.request("GET", "/api/instance/list", token=acct,
                                                                   headers={"Origin": "https://evil.example"}).headers
