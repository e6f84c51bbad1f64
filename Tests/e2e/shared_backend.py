"""The PostgreSQL + Redis backend for the end-to-end suite's second pass (README "More than one
host", "Running the suite in PostgreSQL + Redis mode"): one throwaway PostgreSQL and one Redis for
the whole pytest session, and for each Deployment a slice of them of its own, so that deployments
never see each other's state even while two are alive at once:

- a fresh PostgreSQL database (`--store`, for serve and every CLI subcommand), dropped when the
  deployment closes;
- a Redis database number (`--rate-limit-store redis://.../N`): the rate-limit buckets of one
  deployment are not those of the last (tests count requests from 127.0.0.1);
- an nchan key namespace on the same Redis (nchan's Redis mode), so that two deployments' channels
  with the same account and instance names stay apart.

Both servers are stopped by pid (pg_ctl's postmaster.pid, redis-server's pid file) at the end."""
import itertools
import subprocess

from pg_server import PgServer
from redis_server import RedisServer

# Redis database numbers are handed out in turn and reused after this many deployments (flushed
# first); far more than a test ever holds open at once.
REDIS_DATABASES = 512


class Slice:
    """What one Deployment uses of the shared servers."""

    def __init__(self, backend, store, rate_limit_store, nchan_redis, nchan_namespace):
        self.backend = backend
        self.store = store                        # postgresql://.../DB
        self.rate_limit_store = rate_limit_store  # redis://127.0.0.1:PORT/N
        self.nchan_redis = nchan_redis            # redis://127.0.0.1:PORT, nchan's upstream
        self.nchan_namespace = nchan_namespace

    def release(self):
        self.backend.drop(self.store)

    def dump(self):
        return self.backend.pg.dump(self.store.rsplit("/", 1)[1])


class SharedBackend:
    def __init__(self):
        self.pg = None
        self.redis = None
        self.counter = itertools.count(1)

    def start(self):
        self.pg = PgServer().start()
        try:
            self.redis = RedisServer(databases=REDIS_DATABASES).start()
        except BaseException:
            self.pg.stop()
            raise
        return self

    def slice(self):
        n = next(self.counter)
        db = 1 + (n - 1) % (REDIS_DATABASES - 1)   # 0 stays nchan's
        self.redis.command("-n", str(db), "FLUSHDB")
        return Slice(self, self.pg.database(f"e2e_{n}"), f"{self.redis.url}/{db}", self.redis.url, f"e2e{n}")

    def drop(self, url):
        name = url.rsplit("/", 1)[1]
        # WITH (FORCE): a worker killed by a test may leave a session the server has not yet seen end.
        try:
            self.pg.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        except subprocess.CalledProcessError:
            pass   # the server is thrown away with the session anyway

    def close(self):
        try:
            if self.redis:
                self.redis.close()
        finally:
            if self.pg:
                self.pg.stop()
