import os

import pytest

import harness
from harness import Deployment

# RYZE_E2E_BACKEND: which backends the suite runs on, comma-separated, each test once per backend:
# `local` (one host: the data directory; the default) and `pg-redis` (PostgreSQL + Redis, SPEC §7,
# see shared_backend.py). deploy/test.sh runs `local,pg-redis`.
BACKENDS = [b.strip() for b in os.environ.get("RYZE_E2E_BACKEND", "local").split(",") if b.strip()]
if not BACKENDS or set(BACKENDS) - {"local", "pg-redis"} or len(set(BACKENDS)) != len(BACKENDS):
    raise pytest.UsageError(f"RYZE_E2E_BACKEND: a comma-separated list of local, pg-redis; not {os.environ.get('RYZE_E2E_BACKEND')!r}")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "one_host(reason): runs only on the local backend (the data directory); skipped with the "
        "reason in the PostgreSQL + Redis pass. For what is inherently one host's: the log's files and tools, "
        "the rate table file, or a test that sets up several hosts itself.")


def pytest_generate_tests(metafunc):
    # With one backend the ids stay as they were (no [local] suffix).
    if len(BACKENDS) > 1 and "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", BACKENDS, indirect=True, scope="session")


def backend_of(item):
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("backend", BACKENDS[0]) if callspec else BACKENDS[0]


# The fixtures that make a Deployment. A test that uses none of them runs the binary on its own
# (flag checks, --help, a bare worker) and does the same on every backend: it runs in the first pass only.
DEPLOYMENT_FIXTURES = {"deployment", "fresh", "one_worker", "stack", "limited", "d", "hosts"}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    # Before any fixture is set up: a skipped test starts no deployment.
    if backend_of(item) == "local":
        return
    marker = item.get_closest_marker("one_host")
    if marker:
        pytest.skip("one host only: " + (marker.args[0] if marker.args else marker.kwargs["reason"]))
    if not DEPLOYMENT_FIXTURES & set(item.fixturenames):
        pytest.skip("makes no deployment: the same on every backend")


@pytest.fixture(scope="session", autouse=True)
def backend(request):
    """The backend of this pass; every fixture that makes a Deployment depends on it, so that a
    module's deployment is made again for the second pass. The PostgreSQL + Redis servers start
    when the first test of that pass needs them and stop after its last."""
    name = getattr(request, "param", BACKENDS[0])
    if name == "local":
        yield name
        return
    from shared_backend import SharedBackend
    shared = SharedBackend().start()
    harness.BACKEND = shared
    try:
        yield name
    finally:
        harness.BACKEND = None
        shared.close()

FAST = ["--rate-limit", "60000", "--create-rate-limit", "60000", "--anon-rate-limit", "60000",
        "--cors-origin", "https://app.example"]


@pytest.fixture(scope="module")
def deployment(backend):
    """Two spawn-fcgi workers behind nginx, with limits high enough not to get in the way."""
    d = Deployment(workers=2, threads=4, args=FAST).start()
    yield d
    d.close()


@pytest.fixture
def fresh(backend):
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
