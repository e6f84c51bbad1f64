/* Publish-to-frame latency through the real stream, in one single-threaded epoll loop (used by
 * bench/flow.sh, which compiles it with gcc; it replaces a Python harness that saturated the two
 * cores by itself and so could not measure the pipeline).
 *
 *   flow-ws PORT PUBLISHER_TOKEN INSTANCES_FILE RATE SECONDS PER_INSTANCE CONNS
 *
 * INSTANCES_FILE holds one `name<TAB>instance-token` a line. The program opens PER_INSTANCE
 * WebSocket connections per instance through the real GET /ws/:instance on 127.0.0.1:PORT (the
 * gate, X-Accel-Redirect, nchan; at most 64 handshakes at a time), answers the server's pings,
 * and once all are open and one second has passed, publishes RATE events a second in all for
 * SECONDS seconds over CONNS keep-alive HTTP/1.1 connections, one request in flight on each,
 * round-robin over the instances (a connection nginx closes after keepalive_requests is opened
 * again). Event i is due at start + i/RATE; it goes out on the first idle
 * connection at or after that moment, with its send time (CLOCK_MONOTONIC, microseconds) in
 * `data.t`. Each text frame's receive time - `data.t` is one latency sample. Two seconds after
 * the last answer it prints one line:
 *   rate=... sent=... accepted=... statuses=202:n,... expected=... frames=... p50=... p99=...
 *   max=... lag_p99=... closed=... cpu=...
 * (milliseconds; lag is how late the publisher itself sent against the schedule, the harness's
 * own share; closed counts subscriber connections the server closed; cpu is this program's own
 * CPU time in seconds, connecting included). Loopback only. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF 65536
#define MAX_HANDSHAKES 64

enum kind { SUB, PUB };
enum sub_state { CONNECTING, HANDSHAKE, OPEN, CLOSED };

struct conn {
    enum kind kind;
    int fd;
    int state;          /* sub_state for subscribers; 1 = a request in flight for publishers */
    int instance;
    size_t len;         /* bytes in buf */
    char *buf;
    uint64_t due;       /* publishers: the due time of the request in flight */
};

static uint64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void die(const char *what) { perror(what); exit(2); }

static int port;
static int epfd;
static char **names, **tokens;
static int n_instances;
static const char *pub_token;

/* Samples in microseconds; grown as needed. */
struct samples { uint32_t *v; size_t n, cap; };
static void add(struct samples *s, uint64_t x) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 65536;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        if (!s->v) die("realloc");
    }
    s->v[s->n++] = x > UINT32_MAX ? UINT32_MAX : (uint32_t)x;
}
static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}
static double pct(struct samples *s, double p) {
    if (!s->n) return 0.0 / 0.0;
    size_t i = (size_t)((double)s->n * p);
    if (i >= s->n) i = s->n - 1;
    return s->v[i] / 1000.0;
}

static struct samples latency, lag;
static long statuses[600];
static long frames, closed_by_server;

static int open_conn(struct conn *c) {
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) die("connect");
    c->fd = fd;
    c->len = 0;
    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.ptr = c };
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
    return fd;
}

static void send_all(int fd, const char *p, size_t n) {
    /* Small messages on loopback: the socket buffer takes them whole; a short write means the
     * harness is broken, not slow. */
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) { struct timespec t = {0, 100000}; nanosleep(&t, NULL); continue; }
            die("write");
        }
        p += w; n -= (size_t)w;
    }
}

static void send_handshake(struct conn *c) {
    char req[1024];
    int n = snprintf(req, sizeof req,
        "GET /ws/%s HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\ntoken: %s\r\n\r\n",
        names[c->instance], tokens[c->instance]);
    send_all(c->fd, req, (size_t)n);
    c->state = HANDSHAKE;
}

/* A client frame must be masked; the mask is zero, so the payload goes as it is. */
static void send_pong(struct conn *c, const unsigned char *payload, size_t n) {
    unsigned char f[2 + 4 + 125];
    if (n > 125) n = 125;
    f[0] = 0x8A;
    f[1] = 0x80 | (unsigned char)n;
    memset(f + 2, 0, 4);
    memcpy(f + 6, payload, n);
    send_all(c->fd, (char *)f, 6 + n);
}

/* Consumes whole frames from c->buf; returns how many bytes were used. */
static size_t read_frames(struct conn *c, uint64_t now) {
    unsigned char *b = (unsigned char *)c->buf;
    size_t off = 0;
    while (c->len - off >= 2) {
        unsigned char *f = b + off;
        size_t avail = c->len - off, head = 2;
        uint64_t n = f[1] & 0x7F;
        if (n == 126) {
            if (avail < 4) break;
            n = ((uint64_t)f[2] << 8) | f[3];
            head = 4;
        } else if (n == 127) {
            if (avail < 10) break;
            n = 0;
            for (int k = 0; k < 8; k++) n = (n << 8) | f[2 + k];
            head = 10;
        }
        if (n > BUF - 16) { fprintf(stderr, "frame of %llu bytes: too large for this harness\n", (unsigned long long)n); exit(2); }
        if (avail < head + n) break;
        unsigned char *p = f + head;
        switch (f[0] & 0x0F) {
        case 1: case 2: {
            frames++;
            /* `"t":<digits>` in the event's data; the envelope puts nothing else of that name first. */
            char *t = memmem(p, n, "\"t\":", 4);
            if (t) add(&latency, now - strtoull(t + 4, NULL, 10));
            break;
        }
        case 9: send_pong(c, p, n); break;
        case 8: c->state = CLOSED; closed_by_server++; break;
        }
        off += head + n;
    }
    return off;
}

static const char *find_head_end(const char *b, size_t n) {
    return memmem(b, n, "\r\n\r\n", 4);
}

static void close_conn(struct conn *c) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
}

/* Publisher: one whole response in c->buf? Returns its length, or 0. */
static size_t whole_response(struct conn *c, int *status) {
    const char *end = find_head_end(c->buf, c->len);
    if (!end) return 0;
    size_t head = (size_t)(end - c->buf) + 4;
    *status = atoi(c->buf + 9);
    const char *cl = memmem(c->buf, head, "Content-Length:", 15);
    if (!cl) cl = memmem(c->buf, head, "content-length:", 15);
    if (cl) {
        size_t body = strtoul(cl + 15, NULL, 10);
        return c->len >= head + body ? head + body : 0;
    }
    /* chunked: the answer ends with its last chunk */
    const char *last = memmem(c->buf + head, c->len - head, "\r\n0\r\n\r\n", 7);
    if (last) return (size_t)(last - c->buf) + 7;
    if (c->len - head >= 5 && memcmp(c->buf + head, "0\r\n\r\n", 5) == 0) return head + 5;
    return 0;
}

static long next_event, n_total, sent;
static double rate;
static uint64_t start;

static void publish(struct conn *c, uint64_t now) {
    long i = next_event++;
    char body[256], req[1024];
    int bn = snprintf(body, sizeof body, "{\"event\":\"message.exchange\",\"data\":{\"n\":%ld,\"t\":%llu}}",
                      i, (unsigned long long)now);
    const char *name = names[i % n_instances];
    int n = snprintf(req, sizeof req,
        "POST /api/events/publish/%s HTTP/1.1\r\nHost: bench\r\ntoken: %s\r\nContent-Type: application/json\r\n"
        "Content-Length: %d\r\n\r\n%s", name, pub_token, bn, body);
    c->due = start + (uint64_t)((double)i * 1e6 / rate);
    add(&lag, now - c->due);
    send_all(c->fd, req, (size_t)n);
    c->state = 1;
    sent++;
}

static void load_instances(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) die(path);
    char line[512];
    int cap = 0;
    while (fgets(line, sizeof line, f)) {
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        *tab = 0;
        char *tok = tab + 1;
        tok[strcspn(tok, "\r\n")] = 0;
        if (n_instances == cap) {
            cap = cap ? cap * 2 : 128;
            names = realloc(names, (size_t)cap * sizeof *names);
            tokens = realloc(tokens, (size_t)cap * sizeof *tokens);
        }
        names[n_instances] = strdup(line);
        tokens[n_instances] = strdup(tok);
        n_instances++;
    }
    fclose(f);
    if (!n_instances) { fprintf(stderr, "no instances in %s\n", path); exit(2); }
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: %s PORT PUBLISHER_TOKEN INSTANCES_FILE RATE SECONDS PER_INSTANCE CONNS\n", argv[0]);
        return 2;
    }
    port = atoi(argv[1]);
    pub_token = argv[2];
    load_instances(argv[3]);
    rate = atof(argv[4]);
    double seconds = atof(argv[5]);
    int per_instance = atoi(argv[6]), n_pub = atoi(argv[7]);
    n_total = (long)(rate * seconds);

    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) die("epoll_create1");

    int n_sub = n_instances * per_instance;
    struct conn *subs = calloc((size_t)n_sub, sizeof *subs);
    struct conn *pubs = calloc((size_t)n_pub, sizeof *pubs);
    for (int k = 0; k < n_sub; k++) {
        subs[k] = (struct conn){ .kind = SUB, .fd = -1, .instance = k % n_instances, .buf = malloc(BUF) };
    }
    for (int k = 0; k < n_pub; k++) pubs[k] = (struct conn){ .kind = PUB, .fd = -1, .buf = malloc(BUF) };

    struct epoll_event evs[256];
    /* --- open the subscribers, at most MAX_HANDSHAKES at a time */
    uint64_t t_open = now_us();
    int next_sub = 0, in_handshake = 0, open_subs = 0;
    while (open_subs < n_sub) {
        while (in_handshake < MAX_HANDSHAKES && next_sub < n_sub) {
            subs[next_sub].state = CONNECTING;
            open_conn(&subs[next_sub++]);
            in_handshake++;
        }
        int n = epoll_wait(epfd, evs, 256, 1000);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        if (now_us() - t_open > 120000000u) { fprintf(stderr, "subscribers did not all connect within 120 s\n"); return 1; }
        for (int e = 0; e < n; e++) {
            struct conn *c = evs[e].data.ptr;
            if (c->state == CONNECTING && (evs[e].events & EPOLLOUT)) {
                int err = 0; socklen_t l = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
                if (err) { errno = err; die("connect (subscriber)"); }
                struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };
                epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
                send_handshake(c);
            }
            if (c->state == HANDSHAKE && (evs[e].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
                ssize_t r = read(c->fd, c->buf + c->len, BUF - 1 - c->len);
                if (r <= 0) { fprintf(stderr, "a subscriber's handshake was cut off\n"); return 1; }
                c->len += (size_t)r;
                c->buf[c->len] = 0;
                const char *end = find_head_end(c->buf, c->len);
                if (!end) continue;
                if (strncmp(c->buf, "HTTP/1.1 101", 12) != 0) {
                    fprintf(stderr, "handshake refused: %.*s\n", (int)(end - c->buf), c->buf);
                    return 1;
                }
                size_t head = (size_t)(end - c->buf) + 4;
                memmove(c->buf, c->buf + head, c->len - head);
                c->len -= head;
                c->state = OPEN;
                in_handshake--;
                open_subs++;
            }
        }
    }
    fprintf(stderr, "  %d WebSocket subscribers open in %.1f s\n", n_sub, (now_us() - t_open) / 1e6);

    for (int k = 0; k < n_pub; k++) { pubs[k].state = 2; open_conn(&pubs[k]); }   /* 2: connecting */

    /* --- publish on schedule; read frames all along */
    start = now_us() + 1000000u;
    uint64_t last_answer = 0, end_at = 0;
    int pending = 0;
    for (;;) {
        uint64_t now = now_us();
        /* Every idle publisher takes the next due event. */
        for (int k = 0; k < n_pub && next_event < n_total; k++) {
            struct conn *c = &pubs[k];
            if (c->state != 0) continue;
            uint64_t due = start + (uint64_t)((double)next_event * 1e6 / rate);
            if (due > now) break;
            publish(c, now);
            pending++;
        }
        if (next_event >= n_total && pending == 0) {
            if (!end_at) end_at = last_answer + 2000000u;
            if (now >= end_at) break;
        }
        int timeout = 1;
        if (next_event < n_total) {
            uint64_t due = start + (uint64_t)((double)next_event * 1e6 / rate);
            timeout = due > now ? (int)((due - now + 999) / 1000) : 0;
            if (timeout > 50) timeout = 50;
        } else if (end_at) {
            timeout = end_at > now ? (int)((end_at - now) / 1000) + 1 : 0;
        } else {
            timeout = 50;
        }
        int n = epoll_wait(epfd, evs, 256, timeout);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        now = now_us();
        for (int e = 0; e < n; e++) {
            struct conn *c = evs[e].data.ptr;
            if (c->fd < 0) continue;
            if (c->kind == PUB && c->state == 2) {
                if (!(evs[e].events & EPOLLOUT)) continue;
                int err = 0; socklen_t l = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
                if (err) { errno = err; die("connect (publisher)"); }
                struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };
                epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
                c->state = 0;
                continue;
            }
            if (!(evs[e].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) continue;
            for (;;) {
                ssize_t r = read(c->fd, c->buf + c->len, BUF - 1 - c->len);
                if (r < 0 && errno == EAGAIN) break;
                if (r <= 0) {
                    if (c->kind == SUB) {
                        if (c->state != CLOSED) closed_by_server++;
                        c->state = CLOSED;
                        close_conn(c);
                    } else if (c->state == 0) {
                        /* closed while idle (nginx's keepalive_timeout): open another */
                        close_conn(c);
                        c->len = 0;
                        c->state = 2;
                        open_conn(c);
                    } else {
                        fprintf(stderr, "a publisher connection was closed mid-request\n");
                        return 1;
                    }
                    break;
                }
                c->len += (size_t)r;
                if (c->kind == SUB) {
                    size_t used = read_frames(c, now);
                    memmove(c->buf, c->buf + used, c->len - used);
                    c->len -= used;
                } else {
                    c->buf[c->len] = 0;
                    int status;
                    size_t used = whole_response(c, &status);
                    if (used) {
                        if (status > 0 && status < 600) statuses[status]++;
                        /* nginx ends a keep-alive connection after keepalive_requests (1000)
                         * answers, saying so on the last: open another. */
                        const char *head_end = find_head_end(c->buf, c->len);
                        int closing = head_end && (memmem(c->buf, (size_t)(head_end - c->buf), "Connection: close", 17) != NULL
                                                   || memmem(c->buf, (size_t)(head_end - c->buf), "connection: close", 17) != NULL);
                        memmove(c->buf, c->buf + used, c->len - used);
                        c->len -= used;
                        c->state = 0;
                        pending--;
                        last_answer = now;
                        if (closing) {
                            close_conn(c);
                            c->len = 0;
                            c->state = 2;
                            open_conn(c);
                            break;
                        }
                    }
                }
                if (c->fd < 0) break;
            }
        }
    }
    double elapsed = (last_answer - start) / 1e6;
    if (elapsed <= 0) elapsed = seconds;

    qsort(latency.v, latency.n, sizeof *latency.v, cmp_u32);
    qsort(lag.v, lag.n, sizeof *lag.v, cmp_u32);
    long accepted = statuses[202];
    printf("rate=%.0f sent=%ld accepted=%ld statuses=", (double)sent / elapsed, sent, accepted);
    int first = 1;
    for (int s = 0; s < 600; s++) if (statuses[s]) { printf("%s%d:%ld", first ? "" : ",", s, statuses[s]); first = 0; }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    printf(" expected=%ld frames=%ld p50=%.2f p99=%.2f max=%.2f lag_p99=%.2f closed=%ld cpu=%.2f\n",
           accepted * per_instance, frames, pct(&latency, 0.5), pct(&latency, 0.99),
           latency.n ? latency.v[latency.n - 1] / 1000.0 : 0.0 / 0.0, pct(&lag, 0.99), closed_by_server, cpu);
    return 0;
}
