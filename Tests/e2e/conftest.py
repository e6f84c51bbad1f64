import pytest

from harness import Deployment

FAST = ["--rate-limit", "60000", "--create-rate-limit", "60000", "--anon-rate-limit", "60000",
        "--cors-origin", "https://app.example"]


@pytest.fixture(scope="module")
def deployment():
    """Two spawn-fcgi workers behind nginx, with limits high enough not to get in the way."""
    d = Deployment(workers=2, threads=4, args=FAST).start()
    yield d
    d.close()


@pytest.fixture
def fresh():
    """A deployment of its own, for tests that restart or kill workers."""
    made = []

    def make(**kw):
        kw.setdefault("args", FAST)
        d = Deployment(**kw).start()
        made.append(d)
        return d
    yield make
    for d in made:
        d.close()


@pytest.fixture
def acct(deployment, request):
    """A new account (and its token) per test, so tests never see each other's instances."""
    name = "t" + str(abs(hash(request.node.nodeid)))[:12]
    return deployment.account(name)
