// sseload: the benchmark's load generator and its trivial reference server.
//
//   sseload run   [options]   hold SSE streams, publish at given rates, measure delivery
//   sseload serve --port P    a trivial SSE server (broadcast only), to measure sseload's ceiling
//
// `run` opens --streams streams on --path (plus --target-streams on --target-path), waits until
// every one has answered 200, then for each rate in --rates publishes for --step-seconds with
// --publishers keep-alive HTTP connections (POST --pub-path, body --pub-body with %T replaced by
// the sending time in microseconds of CLOCK_MONOTONIC and %S by a sequence number). A received
// event's data carries both back ("t":..., "s":...), so the latency of every delivery and the
// time until the last subscriber had each publish are measured without clock skew: the
// publisher and the readers are this process. Rate 0 publishes as fast as the publishers'
// responses allow (closed loop). The report is one JSON object on stdout.
//
// Streams are read by --threads epoll threads; the publisher runs on the main thread. Chunked
// transfer encoding is decoded; SSE is parsed per line. --slow N streams stop reading after
// they connect (with a small receive buffer), to model clients that stall. --h2 K opens the
// streams as HTTP/2 streams, K per cleartext connection with prior knowledge (h2c), through
// libnghttp2 (framing, HPACK and flow control are the library's); publishing stays HTTP/1.1.
// --variants K spreads streams over K paths and publishes over K bodies: %K in --path is the
// stream's number modulo K, %K in --pub-body the sequence number modulo K (live queries with K
// distinct filters, each publish matching one of them). --ready-event NAME waits, before
// publishing, until every connected stream has had an event of that type (a live query's
// `snapshot`: its head comes before the snapshot is read).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#define MAX_STEPS 32
#define NBUCKETS 12701
#define MAX_SEQ (4 * 1024 * 1024)

static uint64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "sseload: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

// Latency histogram: 1 µs buckets below 1 ms, 10 µs below 10 ms, 100 µs below 100 ms, 1 ms below 10 s.
static int bucket_of(uint64_t us) {
    if (us < 1000) return (int)us;
    if (us < 10000) return 1000 + (int)((us - 1000) / 10);
    if (us < 100000) return 1900 + (int)((us - 10000) / 100);
    if (us < 10000000) return 2800 + (int)((us - 100000) / 1000);
    return NBUCKETS - 1;
}

static uint64_t bucket_value(int b) {
    if (b < 1000) return (uint64_t)b;
    if (b < 1900) return 1000 + (uint64_t)(b - 1000) * 10 + 5;
    if (b < 2800) return 10000 + (uint64_t)(b - 1900) * 100 + 50;
    if (b < NBUCKETS - 1) return 100000 + (uint64_t)(b - 2800) * 1000 + 500;
    return 10000000;
}

typedef struct {
    uint64_t counts[NBUCKETS];
    uint64_t total;
    uint64_t max;
} histogram;

static void hist_add(histogram *h, uint64_t us) {
    h->counts[bucket_of(us)]++;
    h->total++;
    if (us > h->max) h->max = us;
}

static void hist_merge(histogram *into, const histogram *h) {
    for (int i = 0; i < NBUCKETS; i++) into->counts[i] += h->counts[i];
    into->total += h->total;
    if (h->max > into->max) into->max = h->max;
}

static uint64_t hist_quantile(const histogram *h, double q) {
    if (h->total == 0) return 0;
    uint64_t rank = (uint64_t)(q * (double)h->total);
    if (rank >= h->total) rank = h->total - 1;
    uint64_t seen = 0;
    for (int i = 0; i < NBUCKETS; i++) {
        seen += h->counts[i];
        if (seen > rank) return bucket_value(i);
    }
    return h->max;
}

// ---- options ----
static const char *opt_host = "127.0.0.1";
static int opt_port = 0;
static const char *opt_path = "/";
static int opt_streams = 0;
static const char *opt_target_path = NULL;
static int opt_target_streams = 0;
static char opt_headers[8192] = "";
static char opt_target_headers[8192] = "";
static char opt_pub_headers[8192] = "";
static const char *opt_pub_path = NULL;
static const char *opt_pub_body = "{\"t\":%T,\"s\":%S}";
static int opt_publishers = 4;
static double opt_rates[MAX_STEPS];
static int opt_nrates = 0;
static double opt_step_seconds = 3;
static double opt_drain_seconds = 2;
static double opt_hold_seconds = 0;
static int opt_threads = 1;
static int opt_slow = 0;
static int opt_pids[64];
static int opt_npids = 0;
static int opt_concurrency = 1000;
static double opt_connect_timeout = 30;
static long opt_expect_per_publish = -1;
static long opt_variants = 0;
static int opt_h2 = 0;  // streams per HTTP/2 connection; 0: one HTTP/1.1 connection per stream

// ---- shared measurement state ----
static uint8_t *seq_step;              // the step each sequence number was published in
static _Atomic uint32_t *seq_count;    // deliveries per sequence number
static _Atomic uint64_t *seq_max;      // latest delivery per sequence number (µs after publish)
static _Atomic int connected_count = 0;
static _Atomic int ready_count = 0;
static const char *opt_ready_event = NULL;
static _Atomic int failed_count = 0;
static _Atomic int closed_count = 0;
static _Atomic int stop_all = 0;
static _Atomic uint64_t bytes_received = 0;

// ---- streams ----
enum { S_CONNECTING, S_HEADERS, S_BODY, S_DONE };
enum { C_SIZE, C_SIZE_LF, C_DATA, C_DATA_CR, C_DATA_LF };

struct h2conn;

typedef struct {
    int kind;  // 0: a stream (kind 1 is an h2conn): what an epoll event points at
    int fd;
    int state;
    int slow;
    int target;
    int variant;
    int ready;
    int chunked;
    int cstate;
    uint64_t chunk_left;
    char head[2048];
    int head_len;
    char line[4096];
    int line_len;
    int line_overflow;
    // the current event's t and s
    int64_t ev_t;
    int64_t ev_s;
    // HTTP/2: the connection and the answer's status
    struct h2conn *conn;
    int h2status;
} stream;

// One HTTP/2 connection carrying --h2 streams.
typedef struct h2conn {
    int kind;  // 1
    int fd;
    int state;
    nghttp2_session *session;
    stream *streams;
    int nstreams;
    struct worker *w;
} h2conn;

typedef struct worker {
    int index;
    int epfd;
    stream *streams;
    int nstreams;
    h2conn *conns;
    int nconns;
    int pending_connects;
    int next_to_connect;
    histogram hist[MAX_STEPS];
    uint64_t received[MAX_STEPS];
    uint64_t unmatched;
    pthread_t thread;
} worker;

static struct sockaddr_in server_addr;
// A cluster: streams spread over these ports round-robin (--ports), publishes to --pub-port.
static struct sockaddr_in stream_addrs[16];
static int n_stream_addrs = 0;
static _Atomic unsigned next_stream_addr = 0;
static struct sockaddr_in pub_addr;
static int opt_pub_port = 0;

// The address the next stream (or HTTP/2 connection) connects to.
static const struct sockaddr_in *stream_addr(void) {
    if (n_stream_addrs == 0) return &server_addr;
    return &stream_addrs[next_stream_addr++ % (unsigned)n_stream_addrs];
}

static void set_nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

static int64_t parse_int_after(const char *s, int len, const char *key) {
    const char *p = memmem(s, (size_t)len, key, strlen(key));
    if (!p) return -1;
    p += strlen(key);
    const char *end = s + len;
    while (p < end && (*p == ' ' || *p == '"')) p++;
    int64_t v = 0;
    int any = 0;
    while (p < end && *p >= '0' && *p <= '9') {
        v = v * 10 + (*p - '0');
        p++;
        any = 1;
    }
    return any ? v : -1;
}

// One complete SSE line (without the newline).
static void sse_line(worker *w, stream *s, const char *line, int len) {
    if (len == 0) {  // end of an event
        if (s->ev_t >= 0 && s->ev_s >= 0 && s->ev_s < MAX_SEQ) {
            uint64_t now = now_us();
            uint64_t lat = now > (uint64_t)s->ev_t ? now - (uint64_t)s->ev_t : 0;
            int step = seq_step[s->ev_s];
            hist_add(&w->hist[step], lat);
            w->received[step]++;
            atomic_fetch_add_explicit(&seq_count[s->ev_s], 1, memory_order_relaxed);
            uint64_t prev = atomic_load_explicit(&seq_max[s->ev_s], memory_order_relaxed);
            while (lat > prev &&
                   !atomic_compare_exchange_weak_explicit(&seq_max[s->ev_s], &prev, lat, memory_order_relaxed,
                                                          memory_order_relaxed)) {
            }
        } else if (s->ev_t >= 0) {
            w->unmatched++;
        }
        s->ev_t = -1;
        s->ev_s = -1;
        return;
    }
    if (opt_ready_event && !s->ready && len > 7 && memcmp(line, "event: ", 7) == 0 &&
        (size_t)(len - 7) == strlen(opt_ready_event) && memcmp(line + 7, opt_ready_event, (size_t)(len - 7)) == 0) {
        s->ready = 1;
        atomic_fetch_add(&ready_count, 1);
    }
    if (len >= 5 && memcmp(line, "data:", 5) == 0) {
        int64_t t = parse_int_after(line, len, "\"t\":");
        int64_t q = parse_int_after(line, len, "\"s\":");
        if (t >= 0) s->ev_t = t;
        if (q >= 0) s->ev_s = q;
    }
}

static void sse_bytes(worker *w, stream *s, const char *p, int n) {
    for (int i = 0; i < n; i++) {
        char c = p[i];
        if (c == '\n') {
            int len = s->line_len;
            if (len > 0 && s->line[len - 1] == '\r') len--;
            sse_line(w, s, s->line, s->line_overflow ? 0 : len);
            s->line_len = 0;
            s->line_overflow = 0;
        } else if (s->line_len < (int)sizeof(s->line)) {
            s->line[s->line_len++] = c;
        } else {
            s->line_overflow = 1;
        }
    }
}

static void body_bytes(worker *w, stream *s, const char *p, int n) {
    if (!s->chunked) {
        sse_bytes(w, s, p, n);
        return;
    }
    int i = 0;
    while (i < n) {
        switch (s->cstate) {
            case C_SIZE: {
                char c = p[i++];
                if (c >= '0' && c <= '9') s->chunk_left = s->chunk_left * 16 + (uint64_t)(c - '0');
                else if (c >= 'a' && c <= 'f') s->chunk_left = s->chunk_left * 16 + (uint64_t)(c - 'a' + 10);
                else if (c >= 'A' && c <= 'F') s->chunk_left = s->chunk_left * 16 + (uint64_t)(c - 'A' + 10);
                else if (c == '\n') s->cstate = s->chunk_left ? C_DATA : C_DATA_CR;
                else s->cstate = C_SIZE_LF;  // '\r' or an extension
                break;
            }
            case C_SIZE_LF:
                if (p[i++] == '\n') s->cstate = s->chunk_left ? C_DATA : C_DATA_CR;
                break;
            case C_DATA: {
                int take = n - i;
                if ((uint64_t)take > s->chunk_left) take = (int)s->chunk_left;
                sse_bytes(w, s, p + i, take);
                i += take;
                s->chunk_left -= (uint64_t)take;
                if (s->chunk_left == 0) s->cstate = C_DATA_CR;
                break;
            }
            case C_DATA_CR:
                if (p[i++] == '\n') {
                    s->cstate = C_SIZE;
                    s->chunk_left = 0;
                }
                break;
            default:
                i++;
        }
    }
}

// Closes with a reset: no TIME_WAIT left behind across scenarios.
static void close_reset(int fd) {
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

static void stream_close(worker *w, stream *s, int failed) {
    if (s->fd >= 0) {
        epoll_ctl(w->epfd, EPOLL_CTL_DEL, s->fd, NULL);
        close_reset(s->fd);
        s->fd = -1;
    }
    if (s->state == S_CONNECTING || s->state == S_HEADERS) {
        w->pending_connects--;
        if (failed) atomic_fetch_add(&failed_count, 1);
    } else if (s->state == S_BODY) {
        atomic_fetch_add(&closed_count, 1);
    }
    s->state = S_DONE;
}

static void stream_start(worker *w, stream *s) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) die("socket: %s", strerror(errno));
    if (s->slow) {
        int size = 4096;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    }
    s->fd = fd;
    s->state = S_CONNECTING;
    s->ev_t = s->ev_s = -1;
    w->pending_connects++;
    int r = connect(fd, (const struct sockaddr *)stream_addr(), sizeof server_addr);
    if (r < 0 && errno != EINPROGRESS) {
        stream_close(w, s, 1);
        return;
    }
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = s};
    epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev);
}

// The stream's path, with %K replaced by its variant.
static const char *stream_path(const stream *s, char *buf, size_t size) {
    const char *path = s->target ? opt_target_path : opt_path;
    size_t n = 0;
    for (const char *c = path; *c && n + 24 < size; c++) {
        if (c[0] == '%' && c[1] == 'K') {
            n += (size_t)snprintf(buf + n, size - n, "%d", s->variant);
            c++;
        } else {
            buf[n++] = *c;
        }
    }
    buf[n] = 0;
    return buf;
}

static void stream_send_request(worker *w, stream *s) {
    char req[16384];
    char path[4096];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n%s\r\n",
                     stream_path(s, path, sizeof path), opt_host, opt_port,
                     s->target ? opt_target_headers : opt_headers);
    if (write(s->fd, req, (size_t)n) != n) {
        stream_close(w, s, 1);
        return;
    }
    s->state = S_HEADERS;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
    epoll_ctl(w->epfd, EPOLL_CTL_MOD, s->fd, &ev);
}

static void stream_headers(worker *w, stream *s, const char *p, int n) {
    int room = (int)sizeof(s->head) - 1 - s->head_len;
    int take = n < room ? n : room;
    memcpy(s->head + s->head_len, p, (size_t)take);
    s->head_len += take;
    s->head[s->head_len] = 0;
    char *end = strstr(s->head, "\r\n\r\n");
    if (!end) {
        if (room == 0) stream_close(w, s, 1);
        return;
    }
    if (strncmp(s->head, "HTTP/1.1 200", 12) != 0 && strncmp(s->head, "HTTP/1.0 200", 12) != 0) {
        fprintf(stderr, "sseload: stream refused: %.*s\n", (int)strcspn(s->head, "\r"), s->head);
        stream_close(w, s, 1);
        return;
    }
    s->chunked = strcasestr(s->head, "transfer-encoding: chunked") != NULL;
    s->cstate = C_SIZE;
    s->chunk_left = 0;
    s->state = S_BODY;
    w->pending_connects--;
    atomic_fetch_add(&connected_count, 1);
    int used = (int)(end + 4 - s->head) - (s->head_len - take);
    if (s->slow) {
        struct epoll_event ev = {.events = 0, .data.ptr = s};
        epoll_ctl(w->epfd, EPOLL_CTL_MOD, s->fd, &ev);
        return;
    }
    if (used < n) body_bytes(w, s, p + used, n - used);
}

// ---- HTTP/2 streams (libnghttp2) ----
static void h2_stream_done(worker *w, stream *s, int failed) {
    if (s->state == S_CONNECTING || s->state == S_HEADERS) {
        w->pending_connects--;
        if (failed) atomic_fetch_add(&failed_count, 1);
    } else if (s->state == S_BODY) {
        atomic_fetch_add(&closed_count, 1);
    }
    s->state = S_DONE;
}

static void h2_close(h2conn *c) {
    if (c->fd >= 0) {
        epoll_ctl(c->w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close_reset(c->fd);
        c->fd = -1;
    }
    for (int i = 0; i < c->nstreams; i++)
        if (c->streams[i].state != S_DONE) h2_stream_done(c->w, &c->streams[i], 1);
    if (c->session) nghttp2_session_del(c->session);
    c->session = NULL;
    c->state = S_DONE;
}

static ssize_t h2_send_cb(nghttp2_session *session, const uint8_t *data, size_t length, int flags,
                                void *user_data) {
    (void)session;
    (void)flags;
    h2conn *c = user_data;
    ssize_t r = write(c->fd, data, length);
    if (r < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? NGHTTP2_ERR_WOULDBLOCK : NGHTTP2_ERR_CALLBACK_FAILURE;
    return r;
}

static int h2_header_cb(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                        const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data) {
    (void)flags;
    (void)user_data;
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    stream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (s && namelen == 7 && memcmp(name, ":status", 7) == 0) s->h2status = (int)strtol((const char *)value, NULL, 10);
    (void)valuelen;
    return 0;
}

static int h2_frame_cb(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
    h2conn *c = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_RESPONSE) return 0;
    stream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (!s || s->state != S_HEADERS) return 0;
    if (s->h2status == 200) {
        s->state = S_BODY;
        c->w->pending_connects--;
        atomic_fetch_add(&connected_count, 1);
    } else {
        fprintf(stderr, "sseload: h2 stream refused: %d\n", s->h2status);
        h2_stream_done(c->w, s, 1);
    }
    return 0;
}

static int h2_data_cb(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t len,
                      void *user_data) {
    (void)flags;
    h2conn *c = user_data;
    stream *s = nghttp2_session_get_stream_user_data(session, stream_id);
    if (s && s->state == S_BODY) sse_bytes(c->w, s, (const char *)data, (int)len);
    return 0;
}

static int h2_stream_close_cb(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user_data) {
    (void)error_code;
    h2conn *c = user_data;
    stream *s = nghttp2_session_get_stream_user_data(session, stream_id);
    if (s && s->state != S_DONE) h2_stream_done(c->w, s, 1);
    return 0;
}

// Sends what the session has; listens for room only while it has more.
static void h2_flush(h2conn *c) {
    if (nghttp2_session_send(c->session) != 0) {
        h2_close(c);
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | (nghttp2_session_want_write(c->session) ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(c->w->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void h2_start(worker *w, h2conn *c) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) die("socket: %s", strerror(errno));
    c->fd = fd;
    c->w = w;
    c->state = S_CONNECTING;
    for (int i = 0; i < c->nstreams; i++) {
        c->streams[i].state = S_CONNECTING;
        c->streams[i].ev_t = c->streams[i].ev_s = -1;
    }
    w->pending_connects += c->nstreams;
    int r = connect(fd, (const struct sockaddr *)stream_addr(), sizeof server_addr);
    if (r < 0 && errno != EINPROGRESS) {
        h2_close(c);
        return;
    }
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
    epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev);
}

// Adds the "Name: value" lines of `headers` to `nva` as lower-case HTTP/2 fields.
static int h2_fields(nghttp2_nv *nva, int n, char *copy, const char *headers) {
    strcpy(copy, headers);
    for (char *line = strtok(copy, "\r\n"); line && n < 60; line = strtok(NULL, "\r\n")) {
        char *colon = strchr(line, ':');
        if (!colon) continue;
        *colon = 0;
        char *value = colon + 1;
        while (*value == ' ') value++;
        for (char *p = line; *p; p++)
            if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
        nva[n++] = (nghttp2_nv){(uint8_t *)line, (uint8_t *)value, strlen(line), strlen(value), NGHTTP2_NV_FLAG_NONE};
    }
    return n;
}

static void h2_open(h2conn *c) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        h2_close(c);
        return;
    }
    nghttp2_session_callbacks *callbacks;
    nghttp2_session_callbacks_new(&callbacks);
    nghttp2_session_callbacks_set_send_callback(callbacks, h2_send_cb);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, h2_header_cb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, h2_frame_cb);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, h2_data_cb);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, h2_stream_close_cb);
    nghttp2_session_client_new(&c->session, callbacks, c);
    nghttp2_session_callbacks_del(callbacks);
    nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                         {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20}};
    nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, settings, 2);
    nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0, 1 << 26);
    char authority[300];
    snprintf(authority, sizeof authority, "%s:%d", opt_host, opt_port);
    for (int i = 0; i < c->nstreams; i++) {
        stream *s = &c->streams[i];
        static __thread char path_buf[4096];
        const char *path = stream_path(s, path_buf, sizeof path_buf);
        nghttp2_nv nva[64] = {
            {(uint8_t *)":method", (uint8_t *)"GET", 7, 3, NGHTTP2_NV_FLAG_NONE},
            {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, NGHTTP2_NV_FLAG_NONE},
            {(uint8_t *)":authority", (uint8_t *)authority, 10, strlen(authority), NGHTTP2_NV_FLAG_NONE},
            {(uint8_t *)":path", (uint8_t *)path, 5, strlen(path), NGHTTP2_NV_FLAG_NONE},
            {(uint8_t *)"accept", (uint8_t *)"text/event-stream", 6, 17, NGHTTP2_NV_FLAG_NONE},
        };
        static __thread char copy[8192];
        int n = h2_fields(nva, 5, copy, s->target ? opt_target_headers : opt_headers);
        if (nghttp2_submit_request(c->session, NULL, nva, (size_t)n, NULL, s) < 0) {
            h2_stream_done(c->w, s, 1);
            continue;
        }
        s->state = S_HEADERS;
    }
    c->state = S_BODY;
    h2_flush(c);
}

static void h2_event(worker *w, h2conn *c, uint32_t events) {
    static __thread uint8_t buf[65536];
    (void)w;
    if (c->state == S_CONNECTING) {
        h2_open(c);
        return;
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        for (;;) {
            ssize_t r = read(c->fd, buf, sizeof buf);
            if (r > 0) {
                atomic_fetch_add_explicit(&bytes_received, (uint64_t)r, memory_order_relaxed);
                if (nghttp2_session_mem_recv(c->session, buf, (size_t)r) < 0) {
                    h2_close(c);
                    return;
                }
                if (r < (ssize_t)sizeof buf) break;
            } else if (r == 0) {
                h2_close(c);
                return;
            } else {
                if (errno != EAGAIN && errno != EINTR) {
                    h2_close(c);
                    return;
                }
                break;
            }
        }
    }
    h2_flush(c);
}

static void *worker_main(void *arg) {
    worker *w = arg;
    struct epoll_event events[512];
    static __thread char buf[65536];
    for (;;) {
        if (atomic_load(&stop_all)) break;
        if (opt_h2) {
            while (w->next_to_connect < w->nconns && w->pending_connects < opt_concurrency / opt_threads + 1)
                h2_start(w, &w->conns[w->next_to_connect++]);
        } else {
            while (w->next_to_connect < w->nstreams && w->pending_connects < opt_concurrency / opt_threads + 1)
                stream_start(w, &w->streams[w->next_to_connect++]);
        }
        int n = epoll_wait(w->epfd, events, 512, 50);
        for (int i = 0; i < n; i++) {
            if (*(int *)events[i].data.ptr == 1) {
                h2conn *c = events[i].data.ptr;
                if (c->fd >= 0) h2_event(w, c, events[i].events);
                continue;
            }
            stream *s = events[i].data.ptr;
            if (s->fd < 0) continue;
            if (s->state == S_CONNECTING) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err) {
                    stream_close(w, s, 1);
                    continue;
                }
                stream_send_request(w, s);
                continue;
            }
            for (;;) {
                ssize_t r = read(s->fd, buf, sizeof buf);
                if (r > 0) {
                    atomic_fetch_add_explicit(&bytes_received, (uint64_t)r, memory_order_relaxed);
                    if (s->state == S_HEADERS) stream_headers(w, s, buf, (int)r);
                    else if (s->state == S_BODY) body_bytes(w, s, buf, (int)r);
                    if (s->fd < 0 || s->slow) break;
                    if (r < (ssize_t)sizeof buf) break;
                } else if (r == 0) {
                    stream_close(w, s, 1);
                    break;
                } else {
                    if (errno != EAGAIN && errno != EINTR) stream_close(w, s, 1);
                    break;
                }
            }
        }
    }
    return NULL;
}

// ---- publisher (main thread) ----
typedef struct {
    int fd;
    int busy;
    char in[8192];
    int in_len;
} publisher;

static publisher *pubs;
static int pub_epfd;
static uint64_t pub_ok, pub_errors;
static int64_t next_seq = 0;

static void pub_connect(publisher *p) {
    p->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (p->fd < 0 || connect(p->fd, (struct sockaddr *)&pub_addr, sizeof pub_addr) < 0)
        die("publisher connect: %s", strerror(errno));
    int one = 1;
    setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    set_nonblock(p->fd);
    p->busy = 0;
    p->in_len = 0;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = p};
    epoll_ctl(pub_epfd, EPOLL_CTL_ADD, p->fd, &ev);
}

static void pub_send(publisher *p, int step) {
    int64_t seq = next_seq++;
    if (seq >= MAX_SEQ) die("too many publishes");
    seq_step[seq] = (uint8_t)step;
    uint64_t t = now_us();
    char body[4096];
    int bl = 0;
    for (const char *c = opt_pub_body; *c && bl < (int)sizeof body - 32; c++) {
        if (c[0] == '%' && c[1] == 'T') {
            bl += snprintf(body + bl, sizeof body - (size_t)bl, "%llu", (unsigned long long)t);
            c++;
        } else if (c[0] == '%' && c[1] == 'S') {
            bl += snprintf(body + bl, sizeof body - (size_t)bl, "%lld", (long long)seq);
            c++;
        } else if (c[0] == '%' && c[1] == 'K') {
            bl += snprintf(body + bl, sizeof body - (size_t)bl, "%lld", (long long)(opt_variants > 0 ? seq % opt_variants : 0));
            c++;
        } else {
            body[bl++] = *c;
        }
    }
    char req[16384];
    int n = snprintf(req, sizeof req,
                     "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%.*s",
                     opt_pub_path, opt_host, opt_port, bl, opt_pub_headers, bl, body);
    ssize_t w = write(p->fd, req, (size_t)n);
    if (w != n) die("publisher write failed (%zd of %d): %s", w, n, strerror(errno));
    p->busy = 1;
}

// Reads responses; returns how many completed.
static void pub_read(publisher *p) {
    for (;;) {
        ssize_t r = read(p->fd, p->in + p->in_len, sizeof p->in - 1 - (size_t)p->in_len);
        if (r == 0 || (r < 0 && errno != EAGAIN)) {
            // The server ended the keep-alive connection (nginx after keepalive_requests, Node
            // after its keep-alive timeout): a request in flight is lost; reconnect.
            if (p->busy) pub_errors++;
            epoll_ctl(pub_epfd, EPOLL_CTL_DEL, p->fd, NULL);
            close(p->fd);
            pub_connect(p);
            return;
        }
        if (r < 0) return;
        p->in_len += (int)r;
        p->in[p->in_len] = 0;
        for (;;) {
            char *end = strstr(p->in, "\r\n\r\n");
            if (!end) break;
            int head = (int)(end + 4 - p->in);
            long length = 0;
            char *cl = strcasestr(p->in, "content-length:");
            if (cl && cl < end) length = strtol(cl + 15, NULL, 10);
            int total = head + (int)length;
            char *te = strcasestr(p->in, "transfer-encoding: chunked");
            if (te && te < end) {
                char *last = strstr(end + 4, "0\r\n\r\n");
                if (!last) break;
                total = (int)(last + 5 - p->in);
            }
            if (p->in_len < total) break;
            int status = atoi(p->in + 9);
            if (status >= 200 && status < 300) pub_ok++;
            else {
                pub_errors++;
                if (pub_errors <= 3)
                    fprintf(stderr, "sseload: publish answered %d: %.*s\n", status, (int)length > 300 ? 300 : (int)length,
                            p->in + head);
            }
            memmove(p->in, p->in + total, (size_t)(p->in_len - total));
            p->in_len -= total;
            p->in[p->in_len] = 0;
            p->busy = 0;
        }
        if (p->in_len >= (int)sizeof p->in - 1) die("publisher response too large");
    }
}

static void pub_poll(int timeout_ms) {
    struct epoll_event events[64];
    int n = epoll_wait(pub_epfd, events, 64, timeout_ms);
    for (int i = 0; i < n; i++) pub_read(events[i].data.ptr);
}

// ---- /proc readings ----
static long rss_kb(int pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

// CPU time of `pid`, in seconds: user and system time of the whole process from /proc/PID/stat,
// which keeps the time of threads that have exited (a sum over /proc/PID/task would lose it and
// could even go backwards while a step runs). Clock-tick resolution (10 ms).
static double cpu_seconds(int pid) {
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    char *p = strrchr(buf, ')');
    if (!p) return 0;
    unsigned long long utime = 0, stime = 0;
    // After ')': state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15).
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2) return 0;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

// The server's RSS and CPU: summed over its processes (nginx runs a master and workers).
static long server_rss_kb(void) {
    if (!opt_npids) return -1;
    long total = 0;
    for (int i = 0; i < opt_npids; i++) total += rss_kb(opt_pids[i]);
    return total;
}

static double server_cpu(void) {
    double total = 0;
    for (int i = 0; i < opt_npids; i++) total += cpu_seconds(opt_pids[i]);
    return total;
}

static void add_header(char *into, const char *h) {
    size_t len = strlen(into);
    snprintf(into + len, 8192 - len, "%s\r\n", h);
}

static void usage(void) {
    fprintf(stderr,
            "usage: sseload run --port P [--host H] [--path P] [--streams N] [--header 'K: V']...\n"
            "         [--target-path P --target-streams N --target-header 'K: V'] [--slow N] [--threads N]\n"
            "         [--pub-path P --pub-body B --pub-header 'K: V' --publishers N --rates r1,r2 --step-seconds S]\n"
            "         [--drain-seconds S] [--hold-seconds S] [--pid PID[,PID...]] [--expect-per-publish N] [--h2 K] [--variants K]\n"
            "         [--ready-event NAME] [--ports P1,P2,... (streams round-robin)] [--pub-port P]\n"
            "       sseload serve --port P\n");
    exit(2);
}

// The bytes the kernel holds in the send queues of the server's established TCP sockets (those
// on --port), from /proc/net/tcp and tcp6: memory RSS does not show. Read after the steps, while
// the streams are still open.
static long long server_send_queue_bytes(void) {
    const char *files[] = {"/proc/net/tcp", "/proc/net/tcp6"};
    long long sum = 0;
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(files[i], "r");
        if (!f) continue;
        char line[512];
        if (!fgets(line, sizeof line, f)) {
            fclose(f);
            continue;
        }
        while (fgets(line, sizeof line, f)) {
            unsigned port, state;
            unsigned long long tx;
            // "  sl: local_address:port remote_address:port st tx_queue:rx_queue ..."
            char *colon = strchr(line, ':');
            if (!colon) continue;
            char *local = colon + 1;
            while (*local == ' ') local++;
            char *p = strchr(local, ':');
            if (!p || sscanf(p + 1, "%x %*s %x %llx:", &port, &state, &tx) != 3) continue;
            if ((int)port == opt_port && state == 1) sum += (long long)tx;
        }
        fclose(f);
    }
    return sum;
}

int serve_main(int port);

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    // A parent may have left SIGTERM or SIGINT ignored or blocked; stopping must work.
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    sigset_t unblock;
    sigemptyset(&unblock);
    sigaddset(&unblock, SIGTERM);
    sigaddset(&unblock, SIGINT);
    sigprocmask(SIG_UNBLOCK, &unblock, NULL);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (argc < 2) usage();
    if (strcmp(argv[1], "serve") == 0) {
        for (int i = 2; i + 1 < argc; i++)
            if (strcmp(argv[i], "--port") == 0) opt_port = atoi(argv[i + 1]);
        return serve_main(opt_port);
    }
    if (strcmp(argv[1], "run") != 0) usage();
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--host")) opt_host = v;
        else if (!strcmp(a, "--port")) opt_port = atoi(v);
        else if (!strcmp(a, "--pub-port")) opt_pub_port = atoi(v);
        else if (!strcmp(a, "--ports")) {
            for (char *list = strdup(v), *part = strtok(list, ","); part && n_stream_addrs < 16; part = strtok(NULL, ","))
                stream_addrs[n_stream_addrs++].sin_port = htons((uint16_t)atoi(part));
        }
        else if (!strcmp(a, "--path")) opt_path = v;
        else if (!strcmp(a, "--streams")) opt_streams = atoi(v);
        else if (!strcmp(a, "--header")) add_header(opt_headers, v);
        else if (!strcmp(a, "--target-path")) opt_target_path = v;
        else if (!strcmp(a, "--target-streams")) opt_target_streams = atoi(v);
        else if (!strcmp(a, "--target-header")) add_header(opt_target_headers, v);
        else if (!strcmp(a, "--pub-path")) opt_pub_path = v;
        else if (!strcmp(a, "--pub-body")) opt_pub_body = v;
        else if (!strcmp(a, "--pub-header")) add_header(opt_pub_headers, v);
        else if (!strcmp(a, "--publishers")) opt_publishers = atoi(v);
        else if (!strcmp(a, "--rates")) {
            char *copy = strdup(v);
            for (char *tok = strtok(copy, ","); tok && opt_nrates < MAX_STEPS; tok = strtok(NULL, ","))
                opt_rates[opt_nrates++] = atof(tok);
        } else if (!strcmp(a, "--step-seconds")) opt_step_seconds = atof(v);
        else if (!strcmp(a, "--drain-seconds")) opt_drain_seconds = atof(v);
        else if (!strcmp(a, "--hold-seconds")) opt_hold_seconds = atof(v);
        else if (!strcmp(a, "--threads")) opt_threads = atoi(v);
        else if (!strcmp(a, "--slow")) opt_slow = atoi(v);
        else if (!strcmp(a, "--pid")) {
            char *copy = strdup(v);
            for (char *tok = strtok(copy, ","); tok && opt_npids < 64; tok = strtok(NULL, ",")) opt_pids[opt_npids++] = atoi(tok);
        }
        else if (!strcmp(a, "--concurrency")) opt_concurrency = atoi(v);
        else if (!strcmp(a, "--connect-timeout")) opt_connect_timeout = atof(v);
        else if (!strcmp(a, "--expect-per-publish")) opt_expect_per_publish = atol(v);
        else if (!strcmp(a, "--variants")) opt_variants = atol(v);
        else if (!strcmp(a, "--ready-event")) opt_ready_event = v;
        else if (!strcmp(a, "--h2")) opt_h2 = atoi(v);
        else usage();
    }
    if (!opt_port) usage();
    if (opt_threads < 1) opt_threads = 1;
    if (opt_h2 < 0 || (opt_h2 && opt_slow)) die("--h2 takes a positive count and does not combine with --slow");
    memset(&server_addr, 0, sizeof server_addr);
    server_addr.sin_family = AF_INET;
    server_addr.sin_port = htons((uint16_t)opt_port);
    if (inet_pton(AF_INET, opt_host, &server_addr.sin_addr) != 1) die("bad host %s", opt_host);
    pub_addr = server_addr;
    if (opt_pub_port) pub_addr.sin_port = htons((uint16_t)opt_pub_port);
    for (int i = 0; i < n_stream_addrs; i++) {
        in_port_t port = stream_addrs[i].sin_port;
        stream_addrs[i] = server_addr;
        stream_addrs[i].sin_port = port;
    }

    seq_step = calloc(MAX_SEQ, 1);
    seq_count = calloc(MAX_SEQ, sizeof *seq_count);
    seq_max = calloc(MAX_SEQ, sizeof *seq_max);
    int total = opt_streams + opt_target_streams;
    worker *workers = calloc((size_t)opt_threads, sizeof *workers);
    stream *all = calloc((size_t)(total ? total : 1), sizeof *all);
    for (int i = 0; i < total; i++) {
        all[i].fd = -1;
        all[i].target = i >= opt_streams;
        all[i].slow = i < opt_slow;
        all[i].variant = opt_variants > 0 ? (int)(i % opt_variants) : 0;
    }
    // Shard streams over the workers (slow ones spread evenly too).
    int per = (total + opt_threads - 1) / opt_threads;
    for (int t = 0; t < opt_threads; t++) {
        workers[t].index = t;
        workers[t].epfd = epoll_create1(0);
        int from = t * per, to = from + per > total ? total : from + per;
        workers[t].streams = all + (from < total ? from : total);
        workers[t].nstreams = to > from ? to - from : 0;
    }
    // Over HTTP/2, each worker's streams in connections of --h2.
    h2conn *conns = NULL;
    int nconns = 0;
    if (opt_h2) {
        conns = calloc((size_t)(total / opt_h2 + opt_threads + 1), sizeof *conns);
        for (int t = 0; t < opt_threads; t++) {
            workers[t].conns = conns + nconns;
            for (int from = 0; from < workers[t].nstreams; from += opt_h2) {
                h2conn *c = &conns[nconns++];
                c->kind = 1;
                c->fd = -1;
                c->streams = workers[t].streams + from;
                c->nstreams = workers[t].nstreams - from < opt_h2 ? workers[t].nstreams - from : opt_h2;
                for (int i = 0; i < c->nstreams; i++) c->streams[i].conn = c;
                workers[t].nconns++;
            }
        }
    }
    long rss_before = server_rss_kb();
    double cpu_before_connect = server_cpu();
    uint64_t start = now_us();
    for (int t = 0; t < opt_threads; t++) pthread_create(&workers[t].thread, NULL, worker_main, &workers[t]);

    // Wait for every stream to connect (or fail).
    uint64_t at_10k = 0, all_done = 0;
    for (;;) {
        int c = atomic_load(&connected_count), f = atomic_load(&failed_count);
        if (!at_10k && c >= 10000) at_10k = now_us();
        if (c + f >= total) {
            all_done = now_us();
            break;
        }
        if (now_us() - start > (uint64_t)(opt_connect_timeout * 1e6)) break;
        usleep(1000);
    }
    double connect_ms = all_done ? (double)(all_done - start) / 1000.0 : -1;
    while (opt_ready_event && atomic_load(&ready_count) < atomic_load(&connected_count) &&
           now_us() - start < (uint64_t)(opt_connect_timeout * 1e6))
        usleep(1000);
    double cpu_connect = server_cpu() - cpu_before_connect;
    if (opt_hold_seconds > 0) usleep((useconds_t)(opt_hold_seconds * 1e6));
    long rss_held = server_rss_kb();

    printf("{\"streams\":%d,\"connected\":%d,\"failed\":%d,\"connect_ms\":%.1f,\"connect_10k_ms\":%.1f,"
           "\"server_rss_before_kb\":%ld,\"server_rss_held_kb\":%ld,\"server_cpu_connect_s\":%.3f,\"steps\":[",
           total, atomic_load(&connected_count), atomic_load(&failed_count), connect_ms,
           at_10k ? (double)(at_10k - start) / 1000.0 : -1, rss_before, rss_held, cpu_connect);

    if (opt_pub_path && opt_nrates > 0) {
        pub_epfd = epoll_create1(0);
        pubs = calloc((size_t)opt_publishers, sizeof *pubs);
        for (int i = 0; i < opt_publishers; i++) pub_connect(&pubs[i]);
        long rss_max = rss_held;
        for (int step = 0; step < opt_nrates; step++) {
            double rate = opt_rates[step];
            int64_t first_seq = next_seq;
            uint64_t ok_before = pub_ok, err_before = pub_errors;
            double cpu0 = server_cpu();
            int closed0 = atomic_load(&closed_count);
            uint64_t t0 = now_us(), t_end = t0 + (uint64_t)(opt_step_seconds * 1e6);
            uint64_t lagged = 0, due = 0;
            for (;;) {
                uint64_t now = now_us();
                if (now >= t_end) break;
                if (rate <= 0) {  // closed loop
                    for (int i = 0; i < opt_publishers; i++)
                        if (!pubs[i].busy) pub_send(&pubs[i], step);
                    pub_poll(1);
                    continue;
                }
                uint64_t should = (uint64_t)((double)(now - t0) * rate / 1e6) + 1;
                while (due < should) {
                    int sent = 0;
                    for (int i = 0; i < opt_publishers && !sent; i++)
                        if (!pubs[i].busy) {
                            pub_send(&pubs[i], step);
                            sent = 1;
                        }
                    if (!sent) break;
                    uint64_t planned = t0 + (uint64_t)((double)due * 1e6 / rate);
                    if (now > planned + 5000) lagged++;
                    due++;
                }
                uint64_t next_at = t0 + (uint64_t)((double)due * 1e6 / rate);
                int64_t wait_ms = next_at > now ? (int64_t)(next_at - now) / 1000 : 0;
                pub_poll(wait_ms > 20 ? 20 : (int)wait_ms);
            }
            double publish_seconds = (double)(now_us() - t0) / 1e6;
            // Let the answers and the deliveries arrive.
            uint64_t drain_until = now_us() + (uint64_t)(opt_drain_seconds * 1e6);
            int64_t last_seq = next_seq;
            int healthy = total - opt_slow;
            for (;;) {
                int busy = 0;
                for (int i = 0; i < opt_publishers; i++) busy |= pubs[i].busy;
                uint64_t got = 0;
                for (int t = 0; t < opt_threads; t++) got += workers[t].received[step];
                long expect = opt_expect_per_publish >= 0 ? opt_expect_per_publish : healthy;
                if (!busy && got >= (uint64_t)(last_seq - first_seq) * (uint64_t)expect) break;
                if (now_us() > drain_until) break;
                pub_poll(5);
            }
            double cpu1 = server_cpu();
            long rss_now = server_rss_kb();
            if (rss_now > rss_max) rss_max = rss_now;
            histogram h;
            memset(&h, 0, sizeof h);
            uint64_t received = 0, unmatched = 0;
            for (int t = 0; t < opt_threads; t++) {
                hist_merge(&h, &workers[t].hist[step]);
                received += workers[t].received[step];
                unmatched += workers[t].unmatched;
            }
            // Time until the last subscriber had each publish.
            histogram last;
            memset(&last, 0, sizeof last);
            uint64_t incomplete = 0;
            long expect = opt_expect_per_publish >= 0 ? opt_expect_per_publish : healthy;
            for (int64_t q = first_seq; q < last_seq; q++) {
                hist_add(&last, atomic_load(&seq_max[q]));
                if (atomic_load(&seq_count[q]) < (uint32_t)expect) incomplete++;
            }
            int64_t published = last_seq - first_seq;
            printf("%s{\"rate\":%.1f,\"published\":%lld,\"publish_ok\":%llu,\"publish_errors\":%llu,\"lagged\":%llu,"
                   "\"publish_seconds\":%.3f,\"publishes_per_s\":%.1f,\"received\":%llu,\"expected\":%llu,"
                   "\"deliveries_per_s\":%.1f,\"incomplete_publishes\":%llu,"
                   "\"p50_us\":%llu,\"p90_us\":%llu,\"p99_us\":%llu,\"p999_us\":%llu,\"max_us\":%llu,"
                   "\"last_p50_us\":%llu,\"last_p99_us\":%llu,\"last_max_us\":%llu,"
                   "\"server_cpu_s\":%.3f,\"server_rss_kb\":%ld,\"streams_closed\":%d,\"unmatched\":%llu}",
                   step ? "," : "", rate, (long long)published, (unsigned long long)(pub_ok - ok_before),
                   (unsigned long long)(pub_errors - err_before), (unsigned long long)lagged, publish_seconds,
                   (double)published / publish_seconds, (unsigned long long)received,
                   (unsigned long long)published * (unsigned long long)expect,
                   (double)received / publish_seconds, (unsigned long long)incomplete,
                   (unsigned long long)hist_quantile(&h, 0.5), (unsigned long long)hist_quantile(&h, 0.9),
                   (unsigned long long)hist_quantile(&h, 0.99), (unsigned long long)hist_quantile(&h, 0.999),
                   (unsigned long long)h.max, (unsigned long long)hist_quantile(&last, 0.5),
                   (unsigned long long)hist_quantile(&last, 0.99), (unsigned long long)last.max, cpu1 - cpu0, rss_now,
                   atomic_load(&closed_count) - closed0, (unsigned long long)unmatched);
            fflush(stdout);
        }
        printf("],\"server_rss_max_kb\":%ld,\"server_send_queue_kb\":%lld", rss_max, server_send_queue_bytes() / 1024);
    } else {
        printf("]");
    }
    printf(",\"generator_rss_kb\":%ld,\"bytes_received\":%llu}\n", rss_kb(getpid()),
           (unsigned long long)atomic_load(&bytes_received));
    fflush(stdout);
    atomic_store(&stop_all, 1);
    for (int t = 0; t < opt_threads; t++) pthread_join(workers[t].thread, NULL);
    for (int i = 0; i < total; i++)
        if (all[i].fd >= 0) close_reset(all[i].fd);
    for (int i = 0; i < nconns; i++)
        if (conns[i].fd >= 0) close_reset(conns[i].fd);
    return 0;
}

// ---- the trivial reference server ----
// Accepts streams on GET, broadcasts a POST's body to every stream as `data: <body>` (or to the
// streams whose path ends with the POST path's last segment, for /pub/<channel> vs /sub/<channel>).
// `POST /pub/all?copies=N` sends the event N times in one write, to measure how fast the
// generator parses. Writes that would block are dropped: this server measures the generator.
typedef struct conn {
    int fd;
    int stream;
    char channel[64];
    char in[8192];
    int in_len;
} conn;

int serve_main(int port) {
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0) die("bind: %s", strerror(errno));
    listen(ls, 4096);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    int cap = 32768, nstreams = 0;
    conn **streams = calloc((size_t)cap, sizeof *streams);
    uint64_t id = 0;
    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1);
        for (int i = 0; i < n; i++) {
            conn *c = events[i].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    conn *nc = calloc(1, sizeof *nc);
                    nc->fd = fd;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event e = {.events = EPOLLIN, .data.ptr = nc};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
                }
                continue;
            }
            ssize_t r = read(c->fd, c->in + c->in_len, sizeof c->in - 1 - (size_t)c->in_len);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN) continue;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                if (c->stream) {
                    for (int k = 0; k < nstreams; k++)
                        if (streams[k] == c) {
                            streams[k] = streams[--nstreams];
                            break;
                        }
                }
                free(c);
                continue;
            }
            if (c->stream) continue;  // a stream's client sends nothing more
            c->in_len += (int)r;
            c->in[c->in_len] = 0;
            for (;;) {
                char *end = strstr(c->in, "\r\n\r\n");
                if (!end) break;
                int head = (int)(end + 4 - c->in);
                char *path = c->in + (c->in[0] == 'G' ? 4 : 5);
                char *slash = memchr(path, ' ', (size_t)(end - path));
                char *last = path;
                for (char *p = path; slash && p < slash; p++)
                    if (*p == '/') last = p + 1;
                int clen = slash ? (int)(slash - last) : 0;
                int copies = 1;
                char *query = memchr(last, '?', (size_t)clen);
                if (query) {
                    char *cp = memmem(query, (size_t)(slash - query), "copies=", 7);
                    if (cp) copies = atoi(cp + 7);
                    if (copies < 1 || copies > 1000) copies = 1;
                    clen = (int)(query - last);
                }
                if (clen > 63) clen = 63;
                if (c->in[0] == 'G') {
                    c->stream = 1;
                    memcpy(c->channel, last, (size_t)clen);
                    c->channel[clen] = 0;
                    const char *h = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n";
                    if (write(c->fd, h, strlen(h)) < 0) {
                    }
                    if (nstreams == cap) {
                        cap *= 2;
                        streams = realloc(streams, (size_t)cap * sizeof *streams);
                    }
                    streams[nstreams++] = c;
                    c->in_len = 0;
                    break;
                }
                char *cl = strcasestr(c->in, "content-length:");
                long length = cl && cl < end ? strtol(cl + 15, NULL, 10) : 0;
                if (c->in_len < head + length) break;
                char channel[64];
                memcpy(channel, last, (size_t)clen);
                channel[clen] = 0;
                static char msg[1 << 20];
                int ml = 0;
                for (int k = 0; k < copies && ml < (int)sizeof msg - 8192; k++)
                    ml += snprintf(msg + ml, sizeof msg - (size_t)ml, "id: %llu\ndata: %.*s\n\n", (unsigned long long)++id,
                                   (int)length, c->in + head);
                for (int k = 0; k < nstreams; k++)
                    if (strcmp(streams[k]->channel, channel) == 0 && write(streams[k]->fd, msg, (size_t)ml) < 0) {
                    }
                const char *ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
                if (write(c->fd, ok, strlen(ok)) < 0) {
                }
                memmove(c->in, c->in + head + length, (size_t)(c->in_len - head - length));
                c->in_len -= head + (int)length;
                c->in[c->in_len] = 0;
            }
        }
    }
}
