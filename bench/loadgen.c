/*
 * loadgen: the server benchmark's load generator (issue 16). Plain
 * sockets and one epoll set, no libwebsockets: it must hold tens of
 * thousands of websocket connections in one process, and cost the
 * server, not itself, the time being measured.
 *
 *   loadgen PORT idle N [SECONDS]
 *       opens N websocket connections (the upgrade, then nothing: they
 *       stay idle, answering pings), prints "OPEN n failed=m why=..."
 *       and holds them until SECONDS pass (default: until stdin closes),
 *       then prints "END open=n failed=m why=...".
 *   loadgen PORT calls CONNS INFLIGHT SECONDS [SERVER_PID...]
 *       CONNS connections, INFLIGHT add(i, 1) calls in flight on each;
 *       after a 0.2 s warm-up counts the answers for SECONDS. Prints
 *       RESULT calls=N secs=S cpu=S server_cpu=S
 *       (server_cpu: user + system time of the given processes over the
 *       same window, from /proc).
 *
 * Connections come from source addresses 127.0.0.1, .2, ... (LOADGEN_SRCS,
 * default 8), each bound with IP_BIND_ADDRESS_NO_PORT so the kernel picks
 * the port per destination: one source address alone would run out of
 * ephemeral ports near 28,000 connections.
 *
 * Client frames are masked with the key 0 (the protocol requires a mask,
 * not a random one from a load generator): the payload goes out as is.
 * Every request is its own frame; the frames waiting on a connection go
 * out in one send().
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define RX_CAP (64 * 1024)
#define TX_CAP (64 * 1024)
#define MAX_CONNECTING 256 /* handshakes in progress at once */
#define WARM_SECONDS 0.2

enum state { CONNECTING, UPGRADING, OPEN, DEAD };

struct conn {
	int fd;
	enum state state;
	unsigned long in_flight;
	size_t rx_len, tx_len;
	unsigned char *rx, *tx; /* allocated once open in calls mode only */
	unsigned char hs[256];  /* the 101 response, while upgrading */
	size_t hs_len;
};

static struct {
	int port, epfd, srcs;
	unsigned long window; /* calls in flight per connection; 0: idle */
	unsigned long answers, next_id;
	size_t opening, open, failed;
	char why[128];
} lg;

static void fail(const char *what)
{
	perror(what);
	exit(1);
}

static void note_failure(const char *why)
{
	lg.failed++;
	if (!lg.why[0])
		snprintf(lg.why, sizeof lg.why, "%s", why);
}

static void kill_conn(struct conn *c, const char *why)
{
	if (c->state == DEAD)
		return;
	if (c->state != OPEN)
		lg.opening--;
	else
		lg.open--;
	note_failure(why);
	close(c->fd);
	c->state = DEAD;
}

static void watch(struct conn *c, int op, unsigned int events)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };
	if (epoll_ctl(lg.epfd, op, c->fd, &ev))
		fail("epoll_ctl");
}

/* A non-blocking connect from 127.0.0.(1 + i % srcs). */
static int start_conn(struct conn *c, size_t i)
{
	struct sockaddr_in src = { .sin_family = AF_INET };
	struct sockaddr_in dst = { .sin_family = AF_INET };
	int one = 1;

	memset(c, 0, sizeof *c);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (c->fd < 0) {
		c->state = DEAD;
		note_failure(strerror(errno));
		return -1;
	}
	src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(i % (size_t)lg.srcs));
	dst.sin_addr.s_addr = htonl(0x7f000001u);
	dst.sin_port = htons((uint16_t)lg.port);
	setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (bind(c->fd, (struct sockaddr *)&src, sizeof src) ||
	    (connect(c->fd, (struct sockaddr *)&dst, sizeof dst) &&
	     errno != EINPROGRESS)) {
		note_failure(strerror(errno));
		close(c->fd);
		c->state = DEAD;
		return -1;
	}
	c->state = CONNECTING;
	lg.opening++;
	watch(c, EPOLL_CTL_ADD, EPOLLOUT);
	return 0;
}

static void send_all(struct conn *c, const void *p, size_t n)
{
	ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
	/* requests are small and few per connection: a short write means
	 * the server stopped reading, which the benchmark treats as death */
	if (w != (ssize_t)n)
		kill_conn(c, w < 0 ? strerror(errno) : "short write");
}

static void send_upgrade(struct conn *c)
{
	char req[256];
	int n = snprintf(req, sizeof req,
		"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
		"Connection: Upgrade\r\nSec-WebSocket-Key: "
		"dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
		lg.port);
	c->state = UPGRADING;
	send_all(c, req, (size_t)n);
	if (c->state == UPGRADING)
		watch(c, EPOLL_CTL_MOD, EPOLLIN);
}

/* Appends one masked (key 0) client frame of opcode op to c->tx. */
static void frame_append(struct conn *c, int op, const void *msg, size_t len)
{
	unsigned char *p = c->tx + c->tx_len;

	if (c->tx_len + len + 8 > TX_CAP || len > 65535)
		return;
	*p++ = (unsigned char)(0x80 | op);
	if (len < 126) {
		*p++ = (unsigned char)(0x80 | len);
	} else {
		*p++ = 0x80 | 126;
		*p++ = (unsigned char)(len >> 8);
		*p++ = (unsigned char)len;
	}
	memset(p, 0, 4);
	p += 4;
	memcpy(p, msg, len);
	c->tx_len = (size_t)(p + len - c->tx);
}

static void queue_calls(struct conn *c)
{
	char msg[96];
	while (c->in_flight < lg.window) {
		unsigned long id = ++lg.next_id;
		int n = snprintf(msg, sizeof msg, "{\"jsonrpc\":\"2.0\",\"method\":"
				 "\"add\",\"params\":[%lu,1],\"id\":%lu}", id, id);
		frame_append(c, 1, msg, (size_t)n);
		c->in_flight++;
	}
}

static void flush(struct conn *c)
{
	if (c->tx_len && c->state == OPEN)
		send_all(c, c->tx, c->tx_len);
	c->tx_len = 0;
}

static void opened(struct conn *c)
{
	lg.opening--;
	lg.open++;
	c->state = OPEN;
	if (!lg.window)
		return;
	c->rx = malloc(RX_CAP);
	c->tx = malloc(TX_CAP);
	if (!c->rx || !c->tx)
		fail("malloc");
	queue_calls(c);
	flush(c);
}

/* Reads the 101; anything after it (none expected) is dropped. */
static void read_upgrade(struct conn *c)
{
	ssize_t n = recv(c->fd, c->hs + c->hs_len, sizeof c->hs - 1 - c->hs_len, 0);
	if (n <= 0) {
		if (n < 0 && errno == EAGAIN)
			return;
		kill_conn(c, n ? strerror(errno) : "closed during the upgrade");
		return;
	}
	c->hs_len += (size_t)n;
	c->hs[c->hs_len] = '\0';
	if (!strstr((char *)c->hs, "\r\n\r\n")) {
		if (c->hs_len >= sizeof c->hs - 1)
			kill_conn(c, "handshake answer too long");
		return;
	}
	if (strncmp((char *)c->hs, "HTTP/1.1 101", 12))
		kill_conn(c, "upgrade refused");
	else
		opened(c);
}

/* Handles the whole server frames in buf; returns the bytes consumed. */
static size_t read_frames(struct conn *c, unsigned char *buf, size_t len)
{
	size_t off = 0;

	while (len - off >= 2) {
		unsigned char *p = buf + off;
		size_t hdr = 2, plen = p[1] & 0x7f;
		int op = p[0] & 0x0f;
		if (plen == 126) {
			if (len - off < 4)
				break;
			plen = (size_t)p[2] << 8 | p[3];
			hdr = 4;
		} else if (plen == 127) {
			kill_conn(c, "answer too large");
			return len;
		}
		if (len - off < hdr + plen)
			break;
		if (op == 9 && c->tx) /* ping: pong with the same payload */
			frame_append(c, 10, p + hdr, plen);
		else if (op == 8) {
			kill_conn(c, "closed by the server");
			return len;
		} else if (op == 1 && c->in_flight) {
			c->in_flight--;
			lg.answers++;
		}
		off += hdr + plen;
	}
	return off;
}

/* recv() into buf; <= 0 when there is nothing (the connection may have
 * died: then it is marked so). */
static ssize_t recv_some(struct conn *c, unsigned char *buf, size_t cap)
{
	ssize_t n = recv(c->fd, buf, cap, 0);
	if (n <= 0 && !(n < 0 && errno == EAGAIN))
		kill_conn(c, n ? strerror(errno) : "closed by the server");
	return n;
}

static void read_open(struct conn *c)
{
	unsigned char idle_buf[512];
	unsigned char *buf = c->rx ? c->rx : idle_buf;
	size_t cap = c->rx ? RX_CAP : sizeof idle_buf, used;
	ssize_t n;

	if (!c->tx) { /* idle: pings only; answer them from a stack buffer */
		unsigned char tx[256];
		if ((n = recv_some(c, buf, cap)) <= 0)
			return;
		c->tx = tx;
		read_frames(c, buf, (size_t)n);
		flush(c);
		c->tx = NULL;
		return;
	}
	if ((n = recv_some(c, buf + c->rx_len, cap - c->rx_len)) <= 0)
		return;
	c->rx_len += (size_t)n;
	used = read_frames(c, buf, c->rx_len);
	if (c->state != OPEN)
		return;
	memmove(buf, buf + used, c->rx_len - used);
	c->rx_len -= used;
	queue_calls(c);
	flush(c);
}

static void on_event(struct conn *c, unsigned int events)
{
	if (c->state == CONNECTING) {
		int err = 0;
		socklen_t l = sizeof err;
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
		if (err)
			kill_conn(c, strerror(err));
		else
			send_upgrade(c);
	} else if (c->state == UPGRADING) {
		read_upgrade(c);
	} else if (c->state == OPEN) {
		if (events & (EPOLLERR | EPOLLHUP) && !(events & EPOLLIN))
			kill_conn(c, "connection lost");
		else
			read_open(c);
	}
}

/* Waits up to ms for events and handles them; returns 1 when stdin (in
 * the set in idle mode, as a NULL entry) has closed. */
static int service(int ms)
{
	struct epoll_event evs[256];
	int i, n = epoll_wait(lg.epfd, evs, 256, ms), eof = 0;

	for (i = 0; i < n; i++) {
		char b[64];
		if (evs[i].data.ptr)
			on_event(evs[i].data.ptr, evs[i].events);
		else if (read(0, b, sizeof b) <= 0)
			eof = 1;
	}
	return eof;
}

/* Opens n connections, MAX_CONNECTING at a time. */
static struct conn *open_all(size_t n)
{
	struct conn *conns = calloc(n ? n : 1, sizeof *conns);
	size_t started = 0;
	double deadline = bench_now() + 60 + (double)n / 500;

	if (!conns)
		fail("calloc");
	while ((started < n || lg.opening) && bench_now() < deadline) {
		while (started < n && lg.opening < MAX_CONNECTING)
			start_conn(&conns[started], started), started++;
		service(100);
	}
	if (lg.opening)
		note_failure("handshake timed out");
	return conns;
}

/* utime + stime of a process, in seconds, from /proc/PID/stat. */
static double proc_cpu(const char *pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;
	size_t n;

	snprintf(path, sizeof path, "/proc/%s/stat", pid);
	if (!(f = fopen(path, "r")))
		return 0;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* the name may hold spaces */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
			 "%lu %lu", &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double servers_cpu(int argc, char **argv)
{
	double sum = 0;
	int i;
	for (i = 0; i < argc; i++)
		sum += proc_cpu(argv[i]);
	return sum;
}

static int run_calls(int argc, char **argv)
{
	size_t conns_n = (size_t)atol(argv[3]);
	double secs = atof(argv[5]), t0, t1, c0, c1, s0, s1, end;
	unsigned long a0;

	lg.window = (unsigned long)atol(argv[4]);
	if (!conns_n || !lg.window || secs <= 0)
		return fprintf(stderr, "loadgen: bad calls arguments\n"), 2;
	open_all(conns_n);
	if (lg.open != conns_n) {
		printf("RESULT calls=0 failed=%zu why=\"%s\"\n", lg.failed, lg.why);
		return 1;
	}
	end = bench_now() + WARM_SECONDS;
	while (bench_now() < end)
		service(100);
	t0 = bench_now(), c0 = bench_cpu(), s0 = servers_cpu(argc - 6, argv + 6);
	a0 = lg.answers;
	end = t0 + secs;
	while (bench_now() < end && lg.open)
		service(100);
	t1 = bench_now(), c1 = bench_cpu(), s1 = servers_cpu(argc - 6, argv + 6);
	printf("RESULT calls=%lu secs=%.4f cpu=%.4f server_cpu=%.4f failed=%zu\n",
	       lg.answers - a0, t1 - t0, c1 - c0, s1 - s0, lg.failed);
	return lg.failed ? 1 : 0;
}

static int run_idle(int argc, char **argv)
{
	size_t n = (size_t)atol(argv[3]);
	double secs = argc > 4 ? atof(argv[4]) : 0, end;
	struct epoll_event in = { .events = EPOLLIN, .data.ptr = NULL };

	open_all(n);
	printf("OPEN %zu failed=%zu why=\"%s\"\n", lg.open, lg.failed, lg.why);
	fflush(stdout);
	/* until stdin closes: it waits in the same epoll set as the sockets,
	 * so pings are answered as they come */
	if (secs <= 0 && epoll_ctl(lg.epfd, EPOLL_CTL_ADD, 0, &in))
		fail("epoll_ctl stdin");
	end = bench_now() + secs;
	while (!service(200) && (secs <= 0 || bench_now() < end))
		;
	printf("END open=%zu failed=%zu why=\"%s\"\n", lg.open, lg.failed, lg.why);
	return 0;
}

int main(int argc, char **argv)
{
	const char *srcs = getenv("LOADGEN_SRCS");

	signal(SIGPIPE, SIG_IGN);
	if (argc < 4) {
		fprintf(stderr, "usage: loadgen PORT idle N [SECONDS]\n"
			"       loadgen PORT calls CONNS INFLIGHT SECONDS [PID...]\n");
		return 2;
	}
	lg.port = atoi(argv[1]);
	lg.srcs = srcs ? atoi(srcs) : 8;
	if (lg.srcs < 1 || lg.srcs > 250)
		lg.srcs = 8;
	if ((lg.epfd = epoll_create1(0)) < 0)
		fail("epoll_create1");
	if (!strcmp(argv[2], "idle"))
		return run_idle(argc, argv);
	if (!strcmp(argv[2], "calls") && argc >= 6)
		return run_calls(argc, argv);
	fprintf(stderr, "loadgen: unknown mode %s\n", argv[2]);
	return 2;
}
