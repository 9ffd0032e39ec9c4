/* A do-nothing TCP relay (the "plain relay" baseline of benches/pg_bench.sh):
 * one thread per connection, poll() over both sockets, bytes copied as they come.
 * Usage: pg_relay LISTEN_PORT UPSTREAM_PORT [BURN_US] (both ports on 127.0.0.1).
 * BURN_US (default 0): CPU time, in microseconds of the thread's own CPU clock, that
 * the relay burns on every read from the client before forwarding it -- a stand-in for
 * a gateway's per-statement work on the critical path (benches/pg_budget.sh). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int upstream_port;
static long burn_ns;

static long thread_cpu_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec * 1000000000L + t.tv_nsec;
}

static void burn(void) {
  if (burn_ns <= 0) return;
  long until = thread_cpu_ns() + burn_ns;
  volatile unsigned long x = 0;
  while (thread_cpu_ns() < until)
    for (int i = 0; i < 64; i++) x += (unsigned long)i;
}

static int copy(int from, int to, int from_client) {
  char buf[65536];
  ssize_t n = read(from, buf, sizeof buf);
  if (n <= 0) return -1;
  if (from_client) burn();
  for (ssize_t off = 0; off < n;) {
    ssize_t w = write(to, buf + off, (size_t)(n - off));
    if (w <= 0) return -1;
    off += w;
  }
  return 0;
}

static void *serve(void *arg) {
  int c = (int)(long)arg, one = 1;
  int u = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(upstream_port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(u, (struct sockaddr *)&a, sizeof a) != 0) { close(c); close(u); return NULL; }
  setsockopt(u, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct pollfd p[2] = {{.fd = c, .events = POLLIN}, {.fd = u, .events = POLLIN}};
  for (;;) {
    if (poll(p, 2, -1) < 0) break;
    if (p[0].revents && copy(c, u, 1) < 0) break;
    if (p[1].revents && copy(u, c, 0) < 0) break;
  }
  close(c);
  close(u);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 3 && argc != 4) { fprintf(stderr, "usage: %s LISTEN_PORT UPSTREAM_PORT [BURN_US]\n", argv[0]); return 2; }
  upstream_port = atoi(argv[2]);
  burn_ns = argc == 4 ? atol(argv[3]) * 1000L : 0;
  int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 128) != 0) { perror("listen"); return 1; }
  for (;;) {
    int c = accept(l, NULL, NULL);
    if (c < 0) continue;
    pthread_t t;
    pthread_create(&t, NULL, serve, (void *)(long)c);
    pthread_detach(t);
  }
}
