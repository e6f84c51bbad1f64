"""SPEC §2-§5 for webhooks: POST/GET/DELETE /api/events/webhook/:instance, GET getWebhook, the
webhook* fields of POST /api/instance/new, the `webhook` of GET /api/instance/list, secrets at
rest (secret.key, --secret-key-file), limits under concurrency, and two real clients' flows."""
import base64
import concurrent.futures
import json
import os
import re
import secrets
import stat
import subprocess
import threading

import pytest

from harness import BIN

ALL = ["message.exchange", "message.status", "call.update", "group.flow", "instance.state", "label.update"]
MISSING = "Missing token in header, Authorization header, or query parameter"
KEYS = ["label", "enabled", "url", "authorization", "byEvents", "events", "mediaBase64", "signingSecret"]
SUMMARY_KEYS = ["label", "enabled", "url", "byEvents", "events", "mediaBase64"]
UNCONFIGURED = {"label": "default", "enabled": False, "url": "", "byEvents": False, "events": [], "mediaBase64": False}
MAX_ENABLED = "Maximum of 3 enabled webhooks per instance"
MAX_LABELS = "Maximum of 20 webhooks per instance"
PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))


def err(message):
    return {"success": False, "error": {"message": message}}


def save(d, token, inst, body, **kw):
    return d.request("POST", f"/api/events/webhook/{inst}", token=token, body=body, **kw)


def listing(d, token, inst, path="webhook"):
    r = d.request("GET", f"/api/events/{path}/{inst}", token=token)
    assert r.status == 200, r
    assert r.json["success"] is True and r.json["message"] == "Webhooks retrieved" and set(r.json) == {"success", "message", "webhooks"}
    return r.json["webhooks"]


def one(d, token, inst, label, path="getWebhook"):
    return d.request("GET", f"/api/events/{path}/{inst}?label={label}", token=token)


def check_secret(s):
    assert isinstance(s, str) and s.startswith("whsec_"), s
    body = s[len("whsec_"):]
    assert re.fullmatch(r"[A-Za-z0-9+/]{43}=", body), s
    assert len(base64.b64decode(body, validate=True)) == 32
    return s


def check(w, label, enabled, url="", authorization="", byEvents=False, events=(), mediaBase64=False):
    """A whole webhook object, keys in SPEC's order; returns its signing secret."""
    assert list(w) == KEYS, w
    assert {k: w[k] for k in KEYS[:-1]} == {"label": label, "enabled": enabled, "url": url, "authorization": authorization,
                                           "byEvents": byEvents, "events": list(events), "mediaBase64": mediaBase64}, w
    return check_secret(w["signingSecret"])


def saved(d, token, inst, body):
    r = save(d, token, inst, body)
    assert r.status == 200, (body, r)
    assert r.json["success"] is True and r.json["message"] == "Webhook configuration saved"
    assert set(r.json) == {"success", "message", "webhook"}
    return r.json["webhook"]


# --- save, read, defaults ------------------------------------------------------------------

def test_save_then_read_by_label_and_list_on_both_paths(deployment, acct):
    d = deployment
    d.create_instance(acct, "wh")
    for path in ["webhook", "getWebhook"]:
        r = d.request("GET", f"/api/events/{path}/wh", token=acct)
        assert r.status == 200 and r.headers["content-type"] == "application/json"
        assert r.json == {"success": True, "message": "Webhooks retrieved", "webhooks": []}
    w = saved(d, acct, "wh", {"label": "main", "enabled": True, "url": "https://hooks.example.com/ryze?x=1",
                              "authorization": "Bearer abc.def", "byEvents": True,
                              "events": ["call.update", "message.exchange", "call.update"], "mediaBase64": True,
                              "unknown": {"ignored": [1, 2]}})
    secret = check(w, "main", True, "https://hooks.example.com/ryze?x=1", "Bearer abc.def", True,
                   ["call.update", "message.exchange"], True)
    for path in ["webhook", "getWebhook"]:
        for _ in range(4):   # every worker, on its next request
            r = one(d, acct, "wh", "main", path)
            assert r.status == 200 and r.headers["content-type"] == "application/json"
            assert r.json == {"success": True, "message": "Webhook configuration retrieved", "webhook": w}
            assert list(r.json["webhook"]) == KEYS
            assert listing(d, acct, "wh", path) == [w]
    assert w["signingSecret"] == secret


def test_get_paths_are_identical(deployment, acct):
    d = deployment
    d.create_instance(acct, "same")
    saved(d, acct, "same", {"enabled": True, "url": "http://a.example"})
    saved(d, acct, "same", {"label": "x", "enabled": False})
    for q in ["", "?label=x", "?label=", "?label=default", "?label=nope"]:
        a = d.request("GET", f"/api/events/webhook/same{q}", token=acct)
        b = d.request("GET", f"/api/events/getWebhook/same{q}", token=acct)
        assert (a.status, a.body) == (b.status, b.body), q


def test_label_omitted_or_empty_is_default(deployment, acct):
    d = deployment
    d.create_instance(acct, "dfl")
    assert one(d, acct, "dfl", "").status == 404
    w = saved(d, acct, "dfl", {"enabled": True, "url": "http://a.example/1"})
    s = check(w, "default", True, "http://a.example/1")
    w = saved(d, acct, "dfl", {"label": "", "enabled": True, "url": "http://a.example/2"})
    assert check(w, "default", True, "http://a.example/2") == s
    w = saved(d, acct, "dfl", {"label": "default", "enabled": True, "url": "http://a.example/3"})
    assert check(w, "default", True, "http://a.example/3") == s
    assert [x["label"] for x in listing(d, acct, "dfl")] == ["default"]
    for q in ["", "default"]:
        r = one(d, acct, "dfl", q)
        assert r.status == 200 and r.json["webhook"] == w


def test_valid_labels_sorted_by_label(deployment, acct):
    d = deployment
    d.create_instance(acct, "lbl")
    labels = ["zeta", "Zeta", "alpha", "_under", "-dash", ".dot", "9nine", "A.b-c_9", "x" * 64, "default"]
    made = {}
    for lb in labels:
        made[lb] = saved(d, acct, "lbl", {"label": lb, "enabled": False})
        check(made[lb], lb, False)
    got = listing(d, acct, "lbl")
    assert [w["label"] for w in got] == sorted(labels)
    assert got == [made[lb] for lb in sorted(labels)]
    assert len({w["signingSecret"] for w in got}) == len(labels), "a new label gets a new secret"
    for lb in labels:
        assert one(d, acct, "lbl", lb).json["webhook"] == made[lb]


def test_unknown_or_invalid_label_is_webhook_not_found(deployment, acct):
    d = deployment
    d.create_instance(acct, "nf")
    saved(d, acct, "nf", {"label": "here", "enabled": False})
    for q in ["nope", "HERE", "here.", "a%20b", "x" * 65, "default", "", "%E2%82%AC"]:
        for path in ["webhook", "getWebhook"]:
            r = one(d, acct, "nf", q, path)
            assert r.status == 404, (q, r)
            assert r.json == err("Webhook not found")


def test_urls_and_authorization_accepted_verbatim(deployment, acct):
    d = deployment
    d.create_instance(acct, "urls")
    longest = "https://example.com/" + "a" * (2048 - 20)
    assert len(longest.encode()) == 2048
    for url in ["http://example.com", "https://example.com:8443/a/b?x=1&y=%20z", "http://127.0.0.1:9000/hook",
                "http://[::1]:8080/x", "http://localhost/", "https://sub.domain.example.org/path/to/hook", longest]:
        w = saved(d, acct, "urls", {"label": "u", "enabled": True, "url": url})
        assert w["url"] == url
        assert one(d, acct, "urls", "u").json["webhook"]["url"] == url
    for auth in ["", "Bearer x", PRINTABLE, "k" * 1024, " leading and trailing "]:
        w = saved(d, acct, "urls", {"label": "u", "enabled": True, "url": "http://example.com", "authorization": auth})
        assert w["authorization"] == auth
        assert one(d, acct, "urls", "u").json["webhook"]["authorization"] == auth


def test_events_rules(deployment, acct):
    d = deployment
    d.create_instance(acct, "ev")
    base = {"label": "e", "enabled": True, "url": "http://e.example"}
    assert saved(d, acct, "ev", {**base, "events": ["group.flow", "call.update", "group.flow", "call.update"]})["events"] == \
        ["group.flow", "call.update"]
    assert saved(d, acct, "ev", {**base, "events": []})["events"] == []
    assert saved(d, acct, "ev", {**base})["events"] == []
    assert saved(d, acct, "ev", {**base, "events": ALL})["events"] == ALL
    assert saved(d, acct, "ev", {**base, "events": ALL[::-1] + ALL})["events"] == ALL[::-1]
    assert one(d, acct, "ev", "e").json["webhook"]["events"] == ALL[::-1]


def test_replace_never_merge_and_read_your_writes(deployment, acct):
    d = deployment
    d.create_instance(acct, "rep")
    full = {"label": "r", "enabled": True, "url": "https://r.example/1", "authorization": "Token t1",
            "byEvents": True, "events": ["label.update"], "mediaBase64": True}
    s = check(saved(d, acct, "rep", full), "r", True, "https://r.example/1", "Token t1", True, ["label.update"], True)
    w = saved(d, acct, "rep", {"label": "r", "enabled": True, "url": "https://r.example/2"})
    assert check(w, "r", True, "https://r.example/2") == s
    for _ in range(6):
        assert one(d, acct, "rep", "r").json["webhook"] == w
    w = saved(d, acct, "rep", full)
    for _ in range(6):
        assert one(d, acct, "rep", "r").json["webhook"] == w
    assert w["authorization"] == "Token t1" and w["signingSecret"] == s


def test_disabled_stores_empty_fields_and_keeps_the_secret(deployment, acct):
    d = deployment
    d.create_instance(acct, "off")
    s = check(saved(d, acct, "off", {"label": "o", "enabled": True, "url": "http://o.example", "authorization": "A b",
                                     "byEvents": True, "events": ["call.update"], "mediaBase64": True}),
              "o", True, "http://o.example", "A b", True, ["call.update"], True)
    w = saved(d, acct, "off", {"label": "o", "enabled": False, "url": "http://o.example", "authorization": "A b",
                               "byEvents": True, "events": ["call.update"], "mediaBase64": True})
    assert check(w, "o", False) == s
    r = one(d, acct, "off", "o")
    assert r.status == 200 and r.json["webhook"] == w
    # Sending back exactly what GET returns for a disabled label (url "") is accepted, so is no url.
    assert saved(d, acct, "off", {k: v for k, v in w.items() if k != "signingSecret"}) == w
    assert saved(d, acct, "off", {"label": "o", "enabled": False}) == w
    # A brand new label may be saved disabled, without url.
    check(saved(d, acct, "off", {"label": "fresh", "enabled": False, "url": ""}), "fresh", False)


def test_signing_secret_kept_rotated_and_distinct(deployment, acct):
    d = deployment
    d.create_instance(acct, "sec")
    d.create_instance(acct, "sec2")
    base = {"label": "s", "enabled": True, "url": "http://s.example"}
    s1 = saved(d, acct, "sec", base)["signingSecret"]
    check_secret(s1)
    assert saved(d, acct, "sec", {**base, "rotateSecret": False})["signingSecret"] == s1
    assert saved(d, acct, "sec", {**base, "enabled": False})["signingSecret"] == s1
    s2 = saved(d, acct, "sec", {**base, "rotateSecret": True})["signingSecret"]
    check_secret(s2)
    assert s2 != s1
    assert one(d, acct, "sec", "s").json["webhook"]["signingSecret"] == s2
    assert saved(d, acct, "sec", base)["signingSecret"] == s2
    # Rotating a disabled label works too, and a new label gets its own secret.
    s3 = saved(d, acct, "sec", {"label": "s", "enabled": False, "rotateSecret": True})["signingSecret"]
    assert s3 not in (s1, s2)
    other = saved(d, acct, "sec", {**base, "label": "t"})["signingSecret"]
    elsewhere = saved(d, acct, "sec2", base)["signingSecret"]
    assert len({s3, other, elsewhere}) == 3
    # Rotating a brand new label is just a new label.
    check_secret(saved(d, acct, "sec", {**base, "label": "u", "rotateSecret": True})["signingSecret"])


def test_content_type_not_required(deployment, acct):
    d = deployment
    d.create_instance(acct, "ct")
    r = save(d, acct, "ct", '{"enabled":true,"url":"http://ct.example"}', headers={"Content-Type": "text/plain"})
    assert r.status == 200, r
    r = save(d, acct, "ct", '{"enabled":true,"url":"http://ct.example"}')
    assert r.status == 200, r


# --- invalid bodies ----------------------------------------------------------------------------

URL = "http://ok.example/hook"
INVALID = {
    # not JSON / not an object
    "empty": "", "not-json": "not json", "array": "[]", "string": '"x"', "number": "1", "null": "null",
    "trailing-garbage": '{"enabled":false}x', "truncated": '{"enabled":true,', "bad-utf8": b'{"enabled":false,"label":"\xff"}',
    # enabled
    "enabled-missing": {}, "enabled-missing-with-url": {"url": URL}, "enabled-null": {"enabled": None, "url": URL},
    "enabled-string": {"enabled": "true", "url": URL}, "enabled-number": {"enabled": 1, "url": URL},
    # url
    "url-missing": {"enabled": True}, "url-null": {"enabled": True, "url": None}, "url-empty": {"enabled": True, "url": ""},
    "url-number": {"enabled": True, "url": 5}, "url-relative": {"enabled": True, "url": "/hook"},
    "url-no-scheme": {"enabled": True, "url": "example.com/hook"}, "url-ftp": {"enabled": True, "url": "ftp://example.com/x"},
    "url-no-host": {"enabled": True, "url": "http://"}, "url-no-host-path": {"enabled": True, "url": "http:///path"},
    "url-userinfo": {"enabled": True, "url": "http://user:pass@example.com/"},
    "url-user": {"enabled": True, "url": "https://user@example.com/"},
    "url-space": {"enabled": True, "url": "http://exa mple.com/"},
    "url-2049": {"enabled": True, "url": "https://example.com/" + "a" * (2049 - 20)},
    "url-ftp-disabled": {"enabled": False, "url": "ftp://x"}, "url-null-disabled": {"enabled": False, "url": None},
    "url-relative-disabled": {"enabled": False, "url": "/hook"},
    # authorization
    "auth-1025": {"enabled": True, "url": URL, "authorization": "a" * 1025},
    "auth-newline": {"enabled": True, "url": URL, "authorization": "Bearer a\r\nX-Evil: 1"},
    "auth-tab": {"enabled": True, "url": URL, "authorization": "Bearer\ta"},
    "auth-del": {"enabled": True, "url": URL, "authorization": "Bearer \x7f"},
    "auth-nul": {"enabled": True, "url": URL, "authorization": "a\x00b"},
    "auth-non-ascii": {"enabled": True, "url": URL, "authorization": "Bearer é"},
    "auth-number": {"enabled": True, "url": URL, "authorization": 12},
    "auth-null": {"enabled": True, "url": URL, "authorization": None},
    "auth-1025-disabled": {"enabled": False, "authorization": "a" * 1025},
    # byEvents, events, mediaBase64, rotateSecret
    "byEvents-string": {"enabled": True, "url": URL, "byEvents": "true"},
    "byEvents-number": {"enabled": True, "url": URL, "byEvents": 1},
    "byEvents-null": {"enabled": True, "url": URL, "byEvents": None},
    "events-unknown": {"enabled": True, "url": URL, "events": ["nope"]},
    "events-case": {"enabled": True, "url": URL, "events": ["Call.Update"]},
    "events-string": {"enabled": True, "url": URL, "events": "call.update"},
    "events-number-item": {"enabled": True, "url": URL, "events": [1]},
    "events-object": {"enabled": True, "url": URL, "events": {}},
    "events-null": {"enabled": True, "url": URL, "events": None},
    "events-unknown-disabled": {"enabled": False, "events": ["nope"]},
    "media-string": {"enabled": True, "url": URL, "mediaBase64": "no"},
    "media-null": {"enabled": True, "url": URL, "mediaBase64": None},
    "rotate-string": {"enabled": True, "url": URL, "rotateSecret": "yes"},
    "rotate-number": {"enabled": True, "url": URL, "rotateSecret": 1},
    "rotate-null": {"enabled": True, "url": URL, "rotateSecret": None},
    # a valid rotateSecret never rescues an invalid body
    "rotate-with-bad-url": {"label": "keep", "enabled": True, "url": "ftp://x", "rotateSecret": True},
    # label
    "label-space": {"label": "a b", "enabled": False}, "label-leading-space": {"label": " a", "enabled": False},
    "label-65": {"label": "x" * 65, "enabled": False}, "label-null": {"label": None, "enabled": False},
    "label-number": {"label": 5, "enabled": False}, "label-array": {"label": ["a"], "enabled": False},
    "label-slash": {"label": "a/b", "enabled": False}, "label-non-ascii": {"label": "é", "enabled": False},
    "label-colon": {"label": "a:b", "enabled": False},
    # invalid fields aimed at an existing label
    "existing-enabled-string": {"label": "keep", "enabled": "no"},
    "existing-events-bad": {"label": "keep", "enabled": True, "url": URL, "events": ["x"]},
}


@pytest.mark.parametrize("body", list(INVALID.values()), ids=list(INVALID))
def test_invalid_bodies_change_nothing(deployment, acct, body):
    d = deployment
    d.create_instance(acct, "inv")
    saved(d, acct, "inv", {"label": "keep", "enabled": True, "url": "http://keep.example", "authorization": "keep-auth",
                           "events": ["label.update"]})
    saved(d, acct, "inv", {"enabled": False})
    before = listing(d, acct, "inv")
    r = save(d, acct, "inv", body)
    assert r.status == 400, r
    assert r.json == err("Invalid request body")
    assert r.headers["content-type"] == "application/json"
    assert listing(d, acct, "inv") == before


def test_body_too_large(deployment, acct):
    d = deployment
    d.create_instance(acct, "big")
    body = '{"enabled":true,"url":"http://big.example","pad":"' + "x" * (64 * 1024) + '"}'
    r = save(d, acct, "big", body)
    assert r.status == 413
    assert r.json == err("Request body too large")
    r = save(d, acct, "big", "x" * (2 * 1024 * 1024))
    assert r.status == 413
    assert r.json == err("Request body too large")
    assert listing(d, acct, "big") == []
    # Just under the cap, with an unknown key, is an ordinary save.
    body = '{"enabled":true,"url":"http://big.example","pad":"' + "x" * (60 * 1024) + '"}'
    assert save(d, acct, "big", body).status == 200


# --- limits --------------------------------------------------------------------------------------

def test_at_most_three_enabled(deployment, acct):
    d = deployment
    d.create_instance(acct, "lim")
    on = lambda lb, **kw: {"label": lb, "enabled": True, "url": f"http://{lb}.example", **kw}
    for lb in "abc":
        saved(d, acct, "lim", on(lb))
    r = save(d, acct, "lim", on("d"))
    assert r.status == 409
    assert r.json == err(MAX_ENABLED)
    assert one(d, acct, "lim", "d").status == 404
    # Re-saving one of the three enabled labels is fine.
    a = saved(d, acct, "lim", on("a", authorization="new"))
    assert a["authorization"] == "new"
    # Disabled labels do not count.
    d_off = saved(d, acct, "lim", {"label": "d", "enabled": False})
    saved(d, acct, "lim", {"label": "e", "enabled": False})
    before = listing(d, acct, "lim")
    r = save(d, acct, "lim", on("d", rotateSecret=True))
    assert (r.status, r.json) == (409, err(MAX_ENABLED))
    assert listing(d, acct, "lim") == before, "nothing stored on a 409, the secret not rotated"
    assert one(d, acct, "lim", "d").json["webhook"] == d_off
    # Disabling one frees a place, and so does deleting one.
    saved(d, acct, "lim", {"label": "b", "enabled": False})
    saved(d, acct, "lim", on("d"))
    r = save(d, acct, "lim", on("b"))
    assert (r.status, r.json) == (409, err(MAX_ENABLED))
    assert d.request("DELETE", "/api/events/webhook/lim?label=c", token=acct).status == 200
    saved(d, acct, "lim", on("b"))
    assert sorted(w["label"] for w in listing(d, acct, "lim") if w["enabled"]) == ["a", "b", "d"]


def test_at_most_twenty_labels(deployment, acct):
    d = deployment
    d.create_instance(acct, "many")
    labels = [f"l{k:02d}" for k in range(20)]
    for lb in labels:
        saved(d, acct, "many", {"label": lb, "enabled": False})
    before = listing(d, acct, "many")
    for body in [{"label": "l20", "enabled": False}, {"label": "l20", "enabled": True, "url": "http://x.example"}, {"enabled": False}]:
        r = save(d, acct, "many", body)
        assert r.status == 409, (body, r)
        assert r.json == err(MAX_LABELS)
    assert listing(d, acct, "many") == before
    assert one(d, acct, "many", "l20").status == 404 and one(d, acct, "many", "default").status == 404
    # Existing labels may still be saved, enabled or not.
    saved(d, acct, "many", {"label": "l00", "enabled": True, "url": "http://x.example"})
    saved(d, acct, "many", {"label": "l01", "enabled": False, "rotateSecret": True})
    assert d.request("DELETE", "/api/events/webhook/many", token=acct, body={"label": "l19"}).status == 200
    saved(d, acct, "many", {"label": "l20", "enabled": False})
    assert len(listing(d, acct, "many")) == 20


# --- DELETE --------------------------------------------------------------------------------------

def test_delete_by_body_query_and_default(deployment, acct):
    d = deployment
    d.create_instance(acct, "del")
    for lb in ["default", "a", "b", "c", "e", "f"]:
        saved(d, acct, "del", {"label": lb, "enabled": False})
    labels = lambda: [w["label"] for w in listing(d, acct, "del")]

    def deleted(label, path, **kw):
        r = d.request("DELETE", f"/api/events/webhook/del{path}", token=acct, **kw)
        assert r.status == 200, (path, kw, r)
        assert r.json == {"success": True, "message": "Webhook deleted", "webhook": {"label": label}}
        assert one(d, acct, "del", label).status == 404

    deleted("a", "", body={"label": "a"}, headers={"Content-Type": "application/json"})
    r = d.request("DELETE", "/api/events/webhook/del", token=acct, body={"label": "a"})
    assert (r.status, r.json) == (404, err("Webhook not found"))
    deleted("b", "?label=b")                           # no body at all
    deleted("c", "?label=b", body={"label": "c"})      # the body wins
    assert labels() == ["default", "e", "f"]
    deleted("e", "?label=e", body="")                  # an empty body (Content-Length: 0) is no body
    deleted("default", "", body={"label": ""})
    assert labels() == ["f"]
    r = d.request("DELETE", "/api/events/webhook/del", token=acct)
    assert (r.status, r.json) == (404, err("Webhook not found"))   # default, already gone
    saved(d, acct, "del", {"enabled": False})
    deleted("default", "")                             # neither body nor query
    saved(d, acct, "del", {"enabled": False})
    deleted("default", "?label=")
    for q in ["?label=nope", "?label=a%20b", "?label=" + "x" * 65]:
        r = d.request("DELETE", f"/api/events/webhook/del{q}", token=acct)
        assert (r.status, r.json) == (404, err("Webhook not found")), q
    r = d.request("DELETE", "/api/events/webhook/del", token=acct, body={"label": "nope"})
    assert (r.status, r.json) == (404, err("Webhook not found"))
    assert labels() == ["f"]


@pytest.mark.parametrize("body", ["{}", "[]", '"x"', '{"label":5}', '{"label":null}', "nope", '{"label":["f"]}',
                                  '{"label":"f"}x', "null", "1"])
def test_delete_invalid_body(deployment, acct, body):
    d = deployment
    d.create_instance(acct, "dinv")
    saved(d, acct, "dinv", {"label": "f", "enabled": False})
    saved(d, acct, "dinv", {"enabled": False})
    before = listing(d, acct, "dinv")
    for path in ["/api/events/webhook/dinv", "/api/events/webhook/dinv?label=f"]:
        r = d.request("DELETE", path, token=acct, body=body)
        assert r.status == 400, (path, r)
        assert r.json == err("Invalid request body")
    assert listing(d, acct, "dinv") == before


def test_deleting_a_label_gives_a_new_secret_later_and_keeps_others(deployment, acct):
    d = deployment
    d.create_instance(acct, "keep")
    a = saved(d, acct, "keep", {"label": "a", "enabled": True, "url": "http://a.example", "authorization": "x"})
    b = saved(d, acct, "keep", {"label": "b", "enabled": True, "url": "http://b.example"})
    assert d.request("DELETE", "/api/events/webhook/keep", token=acct, body={"label": "a"}).status == 200
    assert listing(d, acct, "keep") == [b]
    a2 = saved(d, acct, "keep", {"label": "a", "enabled": True, "url": "http://a.example"})
    check(a2, "a", True, "http://a.example")
    assert a2["signingSecret"] not in (a["signingSecret"], b["signingSecret"])


# --- routes, headers, auth --------------------------------------------------------------------

def test_wrong_method_and_routes(deployment, acct):
    d = deployment
    for method, path, allow in [("PUT", "/api/events/webhook/x", "POST, GET, DELETE, OPTIONS"),
                                ("PATCH", "/api/events/webhook/x", "POST, GET, DELETE, OPTIONS"),
                                ("POST", "/api/events/getWebhook/x", "GET, OPTIONS"),
                                ("DELETE", "/api/events/getWebhook/x", "GET, OPTIONS"),
                                ("PUT", "/api/events/getWebhook/x", "GET, OPTIONS")]:
        r = d.request(method, path, token=acct, body="{}" if method != "DELETE" else None)
        assert r.status == 405, (method, path, r)
        assert r.json == err("Method not allowed")
        assert r.headers["allow"] == allow, (method, path)
        assert "x-ratelimit-limit" in r.headers
    for path in ["/api/events/Webhook/x", "/api/events/getwebhook/x", "/api/events/webhooks/x", "/api/events/webhook",
                 "/api/events/getWebhook", "/api/events/webhook/x/y"]:
        r = d.request("GET", path, token=acct)
        assert (r.status, r.json) == (404, err("Route not found")), path


def test_every_webhook_response_has_the_headers(deployment, acct):
    d = deployment
    d.create_instance(acct, "hdr")
    rs = [save(d, acct, "hdr", {"enabled": True, "url": "http://h.example"}), save(d, acct, "hdr", "nope"),
          d.request("GET", "/api/events/webhook/hdr", token=acct), one(d, acct, "hdr", "nope"),
          d.request("DELETE", "/api/events/webhook/hdr", token=acct), d.request("GET", "/api/events/webhook/hdr"),
          d.request("GET", "/api/events/getWebhook/hdr", token="nope"), d.request("PUT", "/api/events/webhook/hdr", token=acct)]
    assert [r.status for r in rs] == [200, 400, 200, 404, 200, 401, 401, 405], rs
    for r in rs:
        assert r.headers["content-type"] == "application/json", r
        for h in ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"]:
            assert h in r.headers, (r, h)
    p = d.request("OPTIONS", "/api/events/webhook/hdr", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "DELETE"})
    assert p.status == 204
    assert p.headers["access-control-allow-methods"] == "GET, POST, DELETE, OPTIONS"
    g = d.request("GET", "/api/events/getWebhook/hdr", token=acct, headers={"Origin": "https://app.example"})
    assert g.headers["access-control-allow-origin"] == "https://app.example"


def endpoints(name):
    return [("POST", f"/api/events/webhook/{name}", {"label": "z", "enabled": True, "url": "http://z.example"}),
            ("GET", f"/api/events/webhook/{name}", None), ("GET", f"/api/events/getWebhook/{name}", None),
            ("GET", f"/api/events/webhook/{name}?label=z", None), ("GET", f"/api/events/getWebhook/{name}?label=z", None),
            ("DELETE", f"/api/events/webhook/{name}", {"label": "z"}), ("DELETE", f"/api/events/webhook/{name}?label=z", None)]


def test_auth_missing_and_invalid_token(deployment, acct):
    d = deployment
    d.create_instance(acct, "au")
    saved(d, acct, "au", {"label": "z", "enabled": False})
    before = listing(d, acct, "au")
    for method, path, body in endpoints("au"):
        r = d.request(method, path, body=body)
        assert (r.status, r.json) == (401, err(MISSING)), (method, path, r)
        for kw in [{"token": "nope"}, {"auth": "Bearer nope"}]:
            r = d.request(method, path, body=body, **kw)
            assert (r.status, r.json) == (401, err("Invalid token")), (method, path, kw, r)
        sep = "&" if "?" in path else "?"
        r = d.request(method, f"{path}{sep}token=nope", body=body)
        assert (r.status, r.json) == (401, err("Invalid token")), (method, path, r)
    assert listing(d, acct, "au") == before


def test_auth_instance_token_on_another_instance(deployment, acct):
    d = deployment
    it = d.create_instance(acct, "mine")
    d.create_instance(acct, "theirs")
    saved(d, acct, "theirs", {"label": "z", "enabled": False})
    before = listing(d, acct, "theirs")
    for name in ["theirs", "does-not-exist", "bad%20name"]:
        for method, path, body in endpoints(name):
            r = d.request(method, path, token=it, body=body)
            assert r.status == 403, (method, path, r)
            assert r.json == err("Instance token does not match the requested instance")
    assert listing(d, acct, "theirs") == before


def test_auth_account_token_on_foreign_or_missing_instance(deployment, acct):
    d = deployment
    other = d.account("whother-" + secrets.token_hex(4))
    d.create_instance(other, "foreign")
    saved(d, other, "foreign", {"label": "z", "enabled": False})
    before = listing(d, other, "foreign")
    for name in ["foreign", "missing", "bad%20name", "x" * 101]:
        for method, path, body in endpoints(name):
            r = d.request(method, path, token=acct, body=body)
            assert r.status == 404, (method, path, r)
            assert r.json == err("Instance not found")
    assert listing(d, other, "foreign") == before


def test_auth_instance_token_on_its_own_instance(deployment, acct):
    d = deployment
    it = d.create_instance(acct, "self")
    w = saved(d, it, "self", {"label": "z", "enabled": True, "url": "http://z.example", "authorization": "mine"})
    assert one(d, it, "self", "z").json["webhook"] == w
    assert listing(d, it, "self") == [w]
    r = d.request("GET", "/api/events/getWebhook/self", auth=f"Bearer {it}")
    assert r.status == 200 and r.json["webhooks"] == [w]
    r = d.request("GET", f"/api/events/getWebhook/self?label=z&token={it}")
    assert r.status == 200 and r.json["webhook"] == w
    r = d.request("GET", f"/api/events/webhook/self?token={it}&label=z")
    assert r.status == 200 and r.json["webhook"] == w
    r = d.request("DELETE", "/api/events/webhook/self", auth=f"Bearer {it}", body={"label": "z"})
    assert r.status == 200 and r.json["webhook"] == {"label": "z"}
    assert listing(d, acct, "self") == []


# --- POST /api/instance/new and GET /api/instance/list -------------------------------------------

def test_instance_new_with_webhook_fields(deployment, acct):
    d = deployment
    r = d.request("POST", "/api/instance/new", token=acct, body={
        "name": "nw", "webhookEnabled": True, "webhookURL": "https://nw.example/in", "webhookAuthorization": "Basic Zm9v",
        "webhookByEvents": True, "webhookEvents": ["message.status", "message.status", "group.flow"], "webhookMediaBase64": True,
        "websocketEnabled": True})
    assert r.status == 201, r
    inst = r.json["instance"]
    assert set(inst) == {"name", "token", "status", "websocket", "webhook"}
    assert inst["websocket"] == {"enabled": True, "events": [], "mediaBase64": False}
    check(inst["webhook"], "default", True, "https://nw.example/in", "Basic Zm9v", True, ["message.status", "group.flow"], True)
    g = one(d, acct, "nw", "default")
    assert g.status == 200 and g.json["webhook"] == inst["webhook"]
    assert one(d, inst["token"], "nw", "").json["webhook"] == inst["webhook"]
    assert listing(d, acct, "nw") == [inst["webhook"]]
    # It is one of the three enabled webhooks of the instance.
    saved(d, acct, "nw", {"label": "b", "enabled": True, "url": "http://b.example"})
    saved(d, acct, "nw", {"label": "c", "enabled": True, "url": "http://c.example"})
    assert save(d, acct, "nw", {"label": "e", "enabled": True, "url": "http://e.example"}).json == err(MAX_ENABLED)
    # A later save of `default` keeps the secret made at creation.
    assert saved(d, acct, "nw", {"enabled": False})["signingSecret"] == inst["webhook"]["signingSecret"]


def test_instance_new_webhook_null_or_disabled(deployment, acct):
    d = deployment
    for name, extra in [("plain", {}), ("other-keys", {"webhook": {"url": "http://x.example", "enabled": True},
                                                        "webhookUrl": "http://x.example", "webhooks": []})]:
        r = d.request("POST", "/api/instance/new", token=acct, body={"name": name, **extra})
        assert r.status == 201
        assert set(r.json["instance"]) == {"name", "token", "status", "websocket", "webhook"}
        assert r.json["instance"]["webhook"] is None
        assert listing(d, acct, name) == []
    r = d.request("POST", "/api/instance/new", token=acct, body={"name": "dis", "webhookEnabled": False})
    assert r.status == 201
    w = r.json["instance"]["webhook"]
    check(w, "default", False)
    assert listing(d, acct, "dis") == [w]
    # Disabled at creation: the rest is dropped, as with the webhook POST.
    r = d.request("POST", "/api/instance/new", token=acct, body={
        "name": "dis2", "webhookEnabled": False, "webhookURL": "http://x.example", "webhookAuthorization": "a",
        "webhookByEvents": True, "webhookEvents": ["call.update"], "webhookMediaBase64": True})
    check(r.json["instance"]["webhook"], "default", False)
    # A creation refused for its name stores no webhook, and leaves the existing one alone.
    r = d.request("POST", "/api/instance/new", token=acct, body={
        "name": "dis", "webhookEnabled": True, "webhookURL": "http://dup.example", "webhookAuthorization": "dup"})
    assert (r.status, r.json) == (409, err("Instance name already exists"))
    assert listing(d, acct, "dis") == [w]


@pytest.mark.parametrize("fields", [
    {"webhookEnabled": True}, {"webhookURL": "http://x.example"}, {"webhookEnabled": True, "webhookURL": "ftp://x.example"},
    {"webhookEnabled": True, "webhookURL": "http://x.example", "webhookEvents": ["nope"]},
    {"webhookEnabled": True, "webhookURL": "http://x.example", "webhookEvents": "call.update"},
    {"webhookEnabled": "yes", "webhookURL": "http://x.example"}, {"webhookEnabled": None},
    {"webhookEnabled": True, "webhookURL": "http://u:p@x.example"},
    {"webhookEnabled": True, "webhookURL": "http://x.example", "webhookAuthorization": "a\nb"},
    {"webhookEnabled": True, "webhookURL": "http://x.example", "webhookByEvents": "true"},
    {"webhookEnabled": True, "webhookURL": "http://x.example", "webhookMediaBase64": 1},
    {"webhookEnabled": False, "webhookEvents": ["nope"]},
], ids=lambda f: json.dumps(f))
def test_instance_new_invalid_webhook_block_does_not_abort(deployment, acct, fields):
    d = deployment
    r = d.request("POST", "/api/instance/new", token=acct, body={"name": "badwh", "websocketEnabled": True, **fields})
    assert r.status == 201, r
    inst = r.json["instance"]
    assert inst["webhook"] is None
    assert inst["websocket"] == {"enabled": True, "events": [], "mediaBase64": False}
    assert one(d, acct, "badwh", "default").json == err("Webhook not found")
    assert listing(d, inst["token"], "badwh") == []
    item = d.request("GET", "/api/instance/list?instanceName=badwh", token=acct).json["instances"][0]
    assert item["webhook"] == UNCONFIGURED


def test_instance_list_webhook_item(deployment, acct):
    d = deployment
    a_token = d.create_instance(acct, "a")
    d.create_instance(acct, "b")
    r = d.request("GET", "/api/instance/list", token=acct)
    for item in r.json["instances"]:
        assert set(item) == {"name", "status", "websocket", "webhook"}
        assert item["webhook"] == UNCONFIGURED and list(item["webhook"]) == SUMMARY_KEYS
    auth = "Bearer list-" + secrets.token_hex(8)
    w = saved(d, acct, "a", {"enabled": True, "url": "https://a.example/h", "authorization": auth, "byEvents": True,
                             "events": ["group.flow"], "mediaBase64": True})
    saved(d, acct, "b", {"label": "other", "enabled": True, "url": "https://b.example/h", "authorization": auth})
    for token in [acct, a_token]:
        r = d.request("GET", "/api/instance/list", token=token)
        assert auth.encode() not in r.body and w["signingSecret"].encode() not in r.body
        assert b"signingSecret" not in r.body and b"authorization" not in r.body
        by = {i["name"]: i for i in r.json["instances"]}
        assert by["a"]["webhook"] == {"label": "default", "enabled": True, "url": "https://a.example/h", "byEvents": True,
                                      "events": ["group.flow"], "mediaBase64": True}
        assert list(by["a"]["webhook"]) == SUMMARY_KEYS
        if token == acct:
            assert by["b"]["webhook"] == UNCONFIGURED, "only the default label is shown"
    saved(d, acct, "a", {"enabled": False, "url": "http://x.example"})
    item = d.request("GET", "/api/instance/list?instanceName=a", token=acct).json["instances"][0]
    assert item["webhook"] == {"label": "default", "enabled": False, "url": "", "byEvents": False, "events": [], "mediaBase64": False}
    assert d.request("DELETE", "/api/events/webhook/a", token=acct).status == 200
    item = d.request("GET", "/api/instance/list?instanceName=a", token=acct).json["instances"][0]
    assert item["webhook"] == UNCONFIGURED


def test_deleting_the_instance_removes_its_webhooks(deployment, acct):
    d = deployment
    it = d.create_instance(acct, "gone", webhookEnabled=True, webhookURL="http://g.example")
    saved(d, acct, "gone", {"label": "x", "enabled": True, "url": "http://x.example", "authorization": "gone-auth"})
    assert d.request("DELETE", "/api/instance/delete/gone", token=acct).status == 200
    for _ in range(4):
        assert d.request("GET", "/api/events/webhook/gone", token=acct).json == err("Instance not found")
        assert d.request("GET", "/api/events/webhook/gone", token=it).json == err("Invalid token")
    d.create_instance(acct, "gone")
    for _ in range(4):
        assert listing(d, acct, "gone") == []
        assert one(d, acct, "gone", "x").json == err("Webhook not found")
        assert one(d, acct, "gone", "default").json == err("Webhook not found")
    item = d.request("GET", "/api/instance/list?instanceName=gone", token=acct).json["instances"][0]
    assert item["webhook"] == UNCONFIGURED
    # The limits start again from nothing.
    for lb in "abc":
        saved(d, acct, "gone", {"label": lb, "enabled": True, "url": "http://x.example"})


# --- secrets at rest -----------------------------------------------------------------------------

def every_file(root):
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            if os.path.islink(p) or not stat.S_ISREG(os.stat(p).st_mode):
                continue
            yield p


def leaks(root, auths, signing):
    """The secrets, or their usual encodings, that appear in any file under root."""
    needles = {}
    for a in auths:
        needles[f"authorization {a!r}"] = a.encode()
        needles[f"base64 of authorization {a!r}"] = base64.b64encode(a.encode()).rstrip(b"=")
    for s in signing:
        body = s[len("whsec_"):]
        raw = base64.b64decode(body)
        needles[f"secret {s}"] = s.encode()
        needles[f"base64 body of {s}"] = body.encode()
        needles[f"url-safe base64 body of {s}"] = base64.urlsafe_b64encode(raw).rstrip(b"=")
        needles[f"raw bytes of {s}"] = raw
        needles[f"hex of {s}"] = raw.hex().encode()
    found = []
    for p in every_file(root):
        data = open(p, "rb").read()
        found += [f"{what} in {p}" for what, n in needles.items() if n in data]
    return found


def test_secrets_never_in_clear_on_disk_in_logs_or_dump(deployment, acct):
    d = deployment
    auth1 = "Bearer at-rest-" + secrets.token_hex(16)
    auth2 = "Token replaced-" + secrets.token_hex(16)
    auth3 = "Basic " + base64.b64encode(secrets.token_bytes(24)).decode()
    r = d.request("POST", "/api/instance/new", token=acct, body={
        "name": "rest", "webhookEnabled": True, "webhookURL": "http://rest.example", "webhookAuthorization": auth3})
    signing = [r.json["instance"]["webhook"]["signingSecret"]]
    signing.append(saved(d, acct, "rest", {"label": "a", "enabled": True, "url": "http://a.example", "authorization": auth1})["signingSecret"])
    signing.append(saved(d, acct, "rest", {"label": "b", "enabled": True, "url": "http://b.example", "authorization": auth2})["signingSecret"])
    # Replaced and rotated: the old values must not be left in clear either.
    signing.append(saved(d, acct, "rest", {"label": "b", "enabled": True, "url": "http://b.example", "rotateSecret": True})["signingSecret"])
    signing.append(saved(d, acct, "rest", {"label": "b", "enabled": True, "url": "http://b.example", "authorization": auth2,
                                           "rotateSecret": True})["signingSecret"])
    signing.append(saved(d, acct, "rest", {"label": "c", "enabled": False})["signingSecret"])
    assert len(set(signing)) == 6
    listed = listing(d, acct, "rest")
    assert [w["label"] for w in listed] == ["a", "b", "c", "default"]
    assert [w["authorization"] for w in listed] == [auth1, auth2, "", auth3]
    assert [w["signingSecret"] for w in listed] == [signing[1], signing[4], signing[5], signing[0]]
    auths = [auth1, auth2, auth3]

    key = d.data / "secret.key"
    assert key.stat().st_size == 32
    assert stat.S_IMODE(key.stat().st_mode) == 0o600

    if d.shared:
        # The database's rows (bytea as hex), searched like the files.
        (d.dir / "store-dump.sql").write_bytes(d.shared.dump())
    assert leaks(d.dir, auths, signing) == []   # the data directory, the workers' log, nginx's
    if d.shared:
        return
    dump = d.cli("log", "dump")
    assert "<encrypted>" in dump.stdout
    for s in auths + signing + [s[len("whsec_"):] for s in signing]:
        assert s not in dump.stdout and s not in dump.stderr
    assert d.cli("log", "verify").returncode == 0
    assert d.cli("log", "compact").stdout.startswith("compacted: ")
    assert leaks(d.dir, auths, signing) == []
    assert key.stat().st_size == 32
    # Compaction kept them, readable by every worker.
    for _ in range(4):
        assert listing(d, acct, "rest") == listed
    assert "<encrypted>" in d.cli("log", "dump").stdout


def run_serve(d, *extra, timeout=10):
    """Runs one worker on a socket of its own: (exit code or None if still running, stderr + its log)."""
    before = d.log.stat().st_size if d.log.exists() else 0
    sock = d.dir / f"direct-{secrets.token_hex(3)}.sock"
    cmd = [BIN, "serve", "--data-dir", str(d.data), *d.store_args, "--listen", f"unix:{sock}", "--log-file", str(d.log), *extra]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, stderr = p.communicate(timeout=timeout)
        code = p.returncode
    except subprocess.TimeoutExpired:
        p.kill()
        _, stderr = p.communicate()
        code = None
    log = ""
    if d.log.exists():
        with open(d.log, "rb") as f:
            f.seek(before)
            log = f.read().decode(errors="replace")
    return code, stderr + log


def test_missing_or_other_key_refuses_to_serve(fresh):
    d = fresh(workers=2)
    t = d.account("keys")
    d.create_instance(t, "k")
    saved(d, t, "k", {"label": "a", "enabled": True, "url": "http://a.example", "authorization": "keep me"})
    before = listing(d, t, "k")
    key = d.data / "secret.key"
    original = key.read_bytes()
    assert len(original) == 32 and stat.S_IMODE(key.stat().st_mode) == 0o600
    d.stop_workers()

    key.unlink()
    code, out = run_serve(d)
    assert code is not None, "serve kept running without its key: " + out[-500:]
    assert code != 0
    assert str(key) in out, out
    assert not key.exists(), "a new key was made silently while encrypted records exist"

    key.write_bytes(os.urandom(32))
    os.chmod(key, 0o600)
    code, out = run_serve(d)
    assert code is not None, "serve kept running with another key: " + out[-500:]
    assert code != 0
    assert str(key) in out, out

    key.write_bytes(original + b"\n")   # not a key at all
    code, out = run_serve(d)
    assert code is not None and code != 0, out[-500:]
    assert str(key) in out, out

    key.write_bytes(original)
    os.chmod(key, 0o600)
    d.start_workers()
    for _ in range(4):
        assert listing(d, t, "k") == before
    # After compaction the sealed records are still known for what they are.
    if not d.shared:
        assert d.cli("log", "compact").stdout.startswith("compacted: ")
    d.stop_workers()
    key.unlink()
    code, out = run_serve(d)
    assert code is not None and code != 0, out[-500:]
    assert str(key) in out and not key.exists(), out
    key.write_bytes(original)
    os.chmod(key, 0o600)
    d.start_workers()
    assert listing(d, t, "k") == before


@pytest.mark.one_host("a key file made on first use: with --store none is made")
def test_secret_key_file_option(fresh, tmp_path):
    keyfile = tmp_path / "deployment.key"
    d = fresh(workers=2, args=["--rate-limit", "60000", "--create-rate-limit", "60000", "--anon-rate-limit", "60000",
                               "--secret-key-file", str(keyfile)])
    t = d.cli("account", "create", "--name", "kf", "--secret-key-file", str(keyfile)).stdout.strip()
    d.create_instance(t, "kf")
    auth = "Bearer kf-" + secrets.token_hex(12)
    w = saved(d, t, "kf", {"enabled": True, "url": "http://kf.example", "authorization": auth})
    assert keyfile.stat().st_size == 32 and stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    assert not (d.data / "secret.key").exists()
    assert leaks(d.dir, [auth], [w["signingSecret"]]) == []
    dump = d.cli("log", "dump", "--secret-key-file", str(keyfile))
    assert "<encrypted>" in dump.stdout and auth not in dump.stdout and w["signingSecret"] not in dump.stdout
    d.cli("account", "list", "--secret-key-file", str(keyfile))
    d.cli("log", "verify", "--secret-key-file", str(keyfile))
    d.restart_workers()
    assert listing(d, t, "kf") == [w]
    d.stop_workers()
    # Without the option the default key (data/secret.key) is missing: refused, and not made.
    code, out = run_serve(d)
    assert code is not None and code != 0, out[-500:]
    assert str(d.data / "secret.key") in out, out
    assert not (d.data / "secret.key").exists()
    # Pointed at a file that does not exist: refused too.
    elsewhere = tmp_path / "other.key"
    code, out = run_serve(d, "--secret-key-file", str(elsewhere))
    assert code is not None and code != 0, out[-500:]
    assert str(elsewhere) in out and not elsewhere.exists()
    d.start_workers()
    assert listing(d, t, "kf") == [w]


def test_secret_key_file_flag_on_every_subcommand():
    commands = [["serve"], ["account", "create"], ["account", "list"], ["account", "disable"],
                ["log", "verify"], ["log", "dump"], ["log", "compact"]]
    for extra in [["publisher", "create"], ["publisher", "list"], ["publisher", "disable"], ["deliver"],
                  ["webhook", "dead", "list"], ["webhook", "dead", "retry"], ["webhook", "dead", "purge"], ["log", "repair"]]:
        # Subcommands of later parts of SPEC §5, once they exist (an unknown one prints the top help).
        r = subprocess.run([BIN, *extra, "--help"], capture_output=True, text=True)
        if r.returncode == 0 and f"USAGE: ryze-events {' '.join(extra)}" in r.stdout:
            commands.append(extra)
    for c in commands:
        r = subprocess.run([BIN, *c, "--help"], capture_output=True, text=True)
        assert r.returncode == 0 and f"USAGE: ryze-events {' '.join(c)}" in r.stdout, c
        assert "--secret-key-file" in r.stdout, c


# --- restart, concurrency ------------------------------------------------------------------------

def test_everything_survives_restart_and_compaction(fresh):
    d = fresh(workers=2)
    t = d.account("wpersist")
    r = d.request("POST", "/api/instance/new", token=t, body={
        "name": "p", "webhookEnabled": True, "webhookURL": "https://p.example/in", "webhookAuthorization": "Bearer p-1",
        "webhookEvents": ["call.update"], "webhookByEvents": True})
    default = r.json["instance"]["webhook"]
    saved(d, t, "p", {"label": "a", "enabled": True, "url": "http://a.example", "authorization": PRINTABLE, "mediaBase64": True})
    saved(d, t, "p", {"label": "a", "enabled": True, "url": "http://a.example", "authorization": PRINTABLE, "mediaBase64": True,
                      "rotateSecret": True})
    saved(d, t, "p", {"label": "b", "enabled": False})
    saved(d, t, "p", {"label": "gone", "enabled": True, "url": "http://gone.example"})
    assert d.request("DELETE", "/api/events/webhook/p?label=gone", token=t).status == 200
    d.create_instance(t, "q")
    saved(d, t, "q", {"label": "only", "enabled": True, "url": "http://q.example", "authorization": "q"})

    def snapshot():
        return ([d.request("GET", f"/api/events/{path}/{n}{q}", token=t).body
                 for path in ["webhook", "getWebhook"] for n in ["p", "q"] for q in ["", "?label=a", "?label=default", "?label=gone"]],
                d.request("GET", "/api/instance/list", token=t).body)

    before = snapshot()
    assert [w["label"] for w in listing(d, t, "p")] == ["a", "b", "default"]
    assert listing(d, t, "p")[2] == default
    d.restart_workers()
    assert snapshot() == before
    if not d.shared:
        assert d.cli("log", "compact").stdout.startswith("compacted: ")
    assert snapshot() == before
    d.restart_workers()
    assert snapshot() == before
    # Secrets are still kept across saves after the restarts.
    a = one(d, t, "p", "a").json["webhook"]
    assert saved(d, t, "p", {"label": "a", "enabled": False})["signingSecret"] == a["signingSecret"]
    assert saved(d, t, "p", {"enabled": True, "url": "https://p.example/in"})["signingSecret"] == default["signingSecret"]


def test_limits_hold_under_concurrent_saves_across_workers(fresh):
    d = fresh(workers=3, threads=4)
    t = d.account("race")
    for round_ in range(3):
        inst = f"race{round_}"
        d.create_instance(t, inst)
        barrier = threading.Barrier(12)

        def post(k):
            barrier.wait()
            return k, save(d, t, inst, {"label": f"h{k}", "enabled": True, "url": f"http://h{k}.example"})

        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            results = list(pool.map(post, range(12)))
        ok = sorted(f"h{k}" for k, r in results if r.status == 200)
        refused = [r for _, r in results if r.status == 409]
        assert len(ok) == 3 and len(refused) == 9, [r for _, r in results]
        assert all(r.json == err(MAX_ENABLED) for r in refused)
        for _ in range(6):
            got = listing(d, t, inst)
            assert sorted(w["label"] for w in got) == ok and all(w["enabled"] for w in got)

    d.create_instance(t, "labels")
    barrier = threading.Barrier(25)

    def post_disabled(k):
        barrier.wait()
        return save(d, t, "labels", {"label": f"d{k:02d}", "enabled": False})

    with concurrent.futures.ThreadPoolExecutor(25) as pool:
        results = list(pool.map(post_disabled, range(25)))
    assert sum(r.status == 200 for r in results) == 20, results
    assert [r.json for r in results if r.status != 200] == [err(MAX_LABELS)] * 5
    assert len(listing(d, t, "labels")) == 20


# --- real clients --------------------------------------------------------------------------------

def test_client_hermes_ryzeapi_flow(deployment, acct):
    """hermes-ryzeapi saves its webhook with every field and reads it back with getWebhook?label=."""
    d = deployment
    it = d.create_instance(acct, "hermes")
    payload = {"label": "hermes", "enabled": True, "url": "https://hermes.example.net/ryze/events",
               "authorization": "Bearer hermes-" + secrets.token_urlsafe(16),
               "events": ["message.exchange", "message.status"], "mediaBase64": False, "byEvents": False}
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    r = d.request("POST", "/api/events/webhook/hermes", token=it, headers=headers, body=json.dumps(payload))
    assert r.status == 200, r
    w = r.json["webhook"]
    assert {k: w[k] for k in payload} == payload
    check_secret(w["signingSecret"])
    g = d.request("GET", "/api/events/getWebhook/hermes?label=hermes", token=it, headers={"Accept": "application/json"})
    assert g.status == 200
    assert g.json == {"success": True, "message": "Webhook configuration retrieved", "webhook": w}
    # It saves the same payload again at every start: idempotent, secret unchanged.
    r = d.request("POST", "/api/events/webhook/hermes", token=it, headers=headers, body=json.dumps(payload))
    assert r.json["webhook"] == w


def test_client_openclaw_flow(deployment, acct):
    """openclaw lists with GET /api/events/webhook/:instance and deletes with a JSON body."""
    d = deployment
    d.create_instance(acct, "claw")
    bearer = f"Bearer {acct}"
    for body in [{"label": "openclaw", "enabled": True, "url": "https://claw.example/hook", "events": ["call.update"]},
                 {"label": "openclaw-old", "enabled": False}]:
        assert d.request("POST", "/api/events/webhook/claw", auth=bearer, body=body,
                         headers={"Content-Type": "application/json"}).status == 200
    r = d.request("GET", "/api/events/webhook/claw", auth=bearer)
    assert r.status == 200 and r.json["success"] is True
    assert [w["label"] for w in r.json["webhooks"]] == ["openclaw", "openclaw-old"]
    old = r.json["webhooks"][1]
    r = d.request("DELETE", "/api/events/webhook/claw", auth=bearer, body=json.dumps({"label": "openclaw"}),
                  headers={"Content-Type": "application/json"})
    assert r.status == 200
    assert r.json == {"success": True, "message": "Webhook deleted", "webhook": {"label": "openclaw"}}
    r = d.request("GET", "/api/events/webhook/claw", auth=bearer)
    assert r.json["webhooks"] == [old]
