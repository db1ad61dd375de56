/*
 * Worker processes for listen{ workers = N } (issue 16): every core.
 *
 * The model is pre-fork: listen() forks N - 1 children before anything is
 * listening, and each of the N processes then makes its own listener on
 * the same port with SO_REUSEPORT (lws's ALLOW_LISTEN_SHARE); the kernel
 * spreads new connections over them. Each process has its own engine,
 * Lua state, handlers and peers: nothing is shared after the fork.
 *
 * Why fork before the engine exists: a forked process shares its parent's
 * descriptors, the epoll set of the uv loop among them, so two processes
 * running one inherited engine would steal each other's events. fork
 * therefore refuses once this process's engine has started.
 *
 * No orphans: a child asks the kernel for SIGTERM when its parent dies
 * (PR_SET_PDEATHSIG), and the parent's close() stops its children
 * (stop_workers: SIGTERM, then SIGKILL after a grace period).
 *
 * The shared port: lws 4.1.6 sets SO_REUSEPORT on no socket of its own,
 * so each worker listens on a socket of ours and hands what it accepts to
 * its vhost (jr_shared_listen, lws_adopt_socket_vhost).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>

#include "jrws.h"

#define JR_STOP_GRACE_MS 2000

/* fork_workers(n) -> index, pids: index 1 and the children's pids (a
 * list) in the calling process, index 2..n and nil in each child. */
static int l_fork_workers(lua_State *L)
{
	jr_loop *loop = jr_loop_get(L);
	lua_Integer n = luaL_checkinteger(L, 1), i;
	pid_t parent = getpid();

	luaL_argcheck(L, n >= 1 && n <= 1024, 1, "workers must be 1..1024");
	if (loop->cx)
		return luaL_error(L, "listen: workers must be started before "
			"this process opens any connection, listener or loop "
			"step (forked workers would share its sockets)");
	fflush(NULL); /* or buffered output is written by every worker */
	lua_createtable(L, (int)n - 1, 0);
	for (i = 2; i <= n; i++) {
		pid_t pid = fork();
		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGTERM);
			if (getppid() != parent) /* died before prctl */
				_exit(0);
			lua_pushinteger(L, i);
			lua_pushnil(L);
			return 2;
		}
		if (pid < 0) {
			int err = errno;
			lua_Integer k;
			for (k = 1; k < i - 1; k++) {
				lua_rawgeti(L, -1, k);
				kill((pid_t)lua_tointeger(L, -1), SIGKILL);
				waitpid((pid_t)lua_tointeger(L, -1), NULL, 0);
				lua_pop(L, 1);
			}
			return luaL_error(L, "listen: cannot start worker %d: %s",
					  (int)i, strerror(err));
		}
		lua_pushinteger(L, pid);
		lua_rawseti(L, -2, i - 1);
	}
	lua_pushinteger(L, 1);
	lua_insert(L, -2);
	return 2;
}

static int jr_reap(pid_t pid)
{
	pid_t r = waitpid(pid, NULL, WNOHANG);
	return r == pid || (r < 0 && errno == ECHILD);
}

/* stop_workers(pids): SIGTERM to each, then waits for them (SIGKILL for
 * those still there after the grace period). Returns how many were
 * stopped. */
static int l_stop_workers(lua_State *L)
{
	lua_Integer n, i, left;
	struct timespec tick = { 0, 10 * 1000 * 1000 };
	int waited;

	luaL_checktype(L, 1, LUA_TTABLE);
	n = luaL_len(L, 1);
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, 1, i);
		kill((pid_t)lua_tointeger(L, -1), SIGTERM);
		lua_pop(L, 1);
	}
	for (waited = 0;; waited += 10) {
		for (left = 0, i = 1; i <= n; i++) {
			pid_t pid;
			lua_rawgeti(L, 1, i);
			pid = (pid_t)lua_tointeger(L, -1);
			lua_pop(L, 1);
			if (pid <= 0)
				continue;
			if (jr_reap(pid)) {
				lua_pushinteger(L, 0);
				lua_rawseti(L, 1, i);
			} else if (waited >= JR_STOP_GRACE_MS) {
				kill(pid, SIGKILL);
				waitpid(pid, NULL, 0);
			} else {
				left++;
			}
		}
		if (!left || waited >= JR_STOP_GRACE_MS)
			break;
		nanosleep(&tick, NULL);
	}
	lua_pushinteger(L, n);
	return 1;
}

/*
 * reserve_port(host, port) -> fd, port | nil, why: a socket bound (not
 * listening) with SO_REUSEPORT to host:port, port 0 choosing a free one.
 * It holds the port for the workers' listeners, which bind it too, until
 * release_port(fd). host "*" is every interface.
 */
static int l_reserve_port(lua_State *L)
{
	return jr_bind_shared(L, luaL_checkstring(L, 1), luaL_checkinteger(L, 2),
			      0);
}

/* A socket with SO_REUSEPORT bound to host:port (listening, non-blocking
 * when asked). Pushes fd, port or nil, why. */
int jr_bind_shared(lua_State *L, const char *host, lua_Integer port,
		   int listening)
{
	struct addrinfo hints, *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	char service[16];
	int fd, one = 1, rc;

	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	if (!strcmp(host, "*")) {
		host = NULL;
		hints.ai_family = AF_INET6;
	}
	snprintf(service, sizeof service, "%d", (int)port);
	if ((rc = getaddrinfo(host, service, &hints, &ai))) {
		lua_pushnil(L);
		lua_pushstring(L, gai_strerror(rc));
		return 2;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) ||
	    (listening && (listen(fd, SOMAXCONN) ||
			   fcntl(fd, F_SETFL, O_NONBLOCK))) ||
	    getsockname(fd, (struct sockaddr *)&ss, &len)) {
		int err = errno;
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		lua_pushnil(L);
		lua_pushstring(L, strerror(err));
		return 2;
	}
	freeaddrinfo(ai);
	lua_pushinteger(L, fd);
	lua_pushinteger(L, ntohs(ss.ss_family == AF_INET6
		? ((struct sockaddr_in6 *)&ss)->sin6_port
		: ((struct sockaddr_in *)&ss)->sin_port));
	return 2;
}

static int l_release_port(lua_State *L)
{
	close((int)luaL_checkinteger(L, 1));
	return 0;
}

/* ---- a listening socket of ours, feeding a vhost ------------------------ */

struct jr_shared {
	uv_poll_t poll;
	struct lws_vhost *vh;
	int fd;
};

/* Accepts what is waiting (a bounded batch per wakeup) and gives each
 * connection to the vhost as if lws had accepted it. */
static void jr_shared_ready(uv_poll_t *p, int status, int events)
{
	struct jr_shared *sh = p->data;
	int i;

	(void)events;
	if (status < 0)
		return;
	for (i = 0; i < 64; i++) {
		int fd = accept4(sh->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return; /* EAGAIN, or EMFILE: the next wakeup tries again */
		if (!lws_adopt_socket_vhost(sh->vh, fd))
			close(fd);
	}
}

static void jr_shared_closed(uv_handle_t *h)
{
	free(h->data);
}

/* Starts accepting on fd (listening, non-blocking) for vh. NULL: failed. */
jr_shared *jr_shared_listen(jr_loop *loop, struct lws_vhost *vh, int fd)
{
	jr_shared *sh = calloc(1, sizeof *sh);

	if (!sh)
		return NULL;
	sh->vh = vh;
	sh->fd = fd;
	sh->poll.data = sh;
	if (uv_poll_init(&loop->uv, &sh->poll, fd)) {
		free(sh);
		return NULL;
	}
	/* once initialised, the handle is in the loop's list: only uv_close
	 * may let it go (jr_shared_closed frees sh) */
	if (uv_poll_start(&sh->poll, UV_READABLE, jr_shared_ready)) {
		uv_close((uv_handle_t *)&sh->poll, jr_shared_closed);
		return NULL;
	}
	return sh;
}

/* Stops accepting and closes the socket (the handle is freed by libuv's
 * next pass). */
void jr_shared_close(jr_shared *sh)
{
	if (!sh)
		return;
	uv_close((uv_handle_t *)&sh->poll, jr_shared_closed); /* stops it */
	close(sh->fd);
}

/* getpid(): this process's id (which worker answered, in specs and logs) */
static int l_getpid(lua_State *L)
{
	lua_pushinteger(L, getpid());
	return 1;
}

const luaL_Reg jr_workers_functions[] = {
	{"fork_workers", l_fork_workers},
	{"stop_workers", l_stop_workers},
	{"reserve_port", l_reserve_port},
	{"release_port", l_release_port},
	{"getpid", l_getpid},
	{NULL, NULL}
};
