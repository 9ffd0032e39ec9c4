/* A do-nothing TCP relay (the "plain relay" baseline of benches/pg_bench.sh):
 * one thread per connection, poll() over both sockets, bytes copied as they come.
 * Usage: pg_relay LISTEN_PORT UPSTREAM_PORT (both on 127.0.0.1). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int upstream_port;

static int copy(int from, int to) {
  char buf[65536];
  ssize_t n = read(from, buf, sizeof buf);
  if (n <= 0) return -1;
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
    if (p[0].revents && copy(c, u) < 0) break;
    if (p[1].revents && copy(u, c) < 0) break;
  }
  close(c);
  close(u);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: %s LISTEN_PORT UPSTREAM_PORT\n", argv[0]); return 2; }
  upstream_port = atoi(argv[2]);
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
