/*
 * test_shards.c - unit tests of linli_shards (linli/shards.h): one batch
 * per tag in order of first use, tags found again past the first table's
 * size, a refused input leaving no empty shard behind, admit's verdicts,
 * and exec sending one script per shard in one round trip (or saying why
 * it could not).
 *
 * No Redis: a thread in this process plays one, on a port of its own. It
 * answers SCRIPT LOAD with a sha and every EVALSHA with an error reply, so
 * the tests see what was sent, not what a script would do.
 */
#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "linli/error.h"
#include "linli/redis.h"
#include "linli/shards.h"
#include "linli_test.h"

/* ------------------------------------------------------------ fake Redis */

struct fake {
  int listen_fd, port;
  pthread_t thread;
  int evalshas; /* EVALSHA commands received (read after the thread ends) */
};

/* Length of the first whole RESP command in buf[0..n), 0 if incomplete;
 * *is_eval tells whether it is an EVALSHA. */
static size_t command_len(const char *buf, size_t n, int *is_eval) {
  const char *p = buf, *end = buf + n;
  char *nl = memchr(p, '\n', (size_t)(end - p));
  if (!nl || *p != '*')
    return 0;
  long argc = strtol(p + 1, NULL, 10);
  p = nl + 1;
  for (long a = 0; a < argc; a++) {
    nl = p < end ? memchr(p, '\n', (size_t)(end - p)) : NULL;
    if (!nl || *p != '$')
      return 0;
    long len = strtol(p + 1, NULL, 10);
    p = nl + 1;
    if (end - p < len + 2)
      return 0;
    if (a == 0)
      *is_eval = len == 7 && strncmp(p, "EVALSHA", 7) == 0;
    p += len + 2;
  }
  return (size_t)(p - buf);
}

/* Serve one connection until the client closes it. */
static void *fake_serve(void *arg) {
  struct fake *f = arg;
  int fd = accept(f->listen_fd, NULL, NULL);
  if (fd < 0)
    return NULL;
  static char buf[1 << 16];
  size_t n = 0;
  for (;;) {
    ssize_t got = read(fd, buf + n, sizeof buf - n);
    if (got <= 0)
      break;
    n += (size_t)got;
    size_t len;
    int is_eval = 0;
    while ((len = command_len(buf, n, &is_eval)) > 0) {
      const char *reply = is_eval
                              ? "-ERR fake\r\n"
                              : "$40\r\n0123456789012345678901234567890123456789"
                                "\r\n";
      f->evalshas += is_eval;
      if (write(fd, reply, strlen(reply)) < 0)
        break;
      memmove(buf, buf + len, n - len);
      n -= len;
    }
  }
  close(fd);
  return NULL;
}

static int fake_start(struct fake *f) {
  memset(f, 0, sizeof *f);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t alen = sizeof a;
  f->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
  if (f->listen_fd < 0 || bind(f->listen_fd, (struct sockaddr *)&a, alen) ||
      listen(f->listen_fd, 1) ||
      getsockname(f->listen_fd, (struct sockaddr *)&a, &alen))
    return -1;
  f->port = ntohs(a.sin_port);
  return pthread_create(&f->thread, NULL, fake_serve, f);
}

/* After the client closed its connection. */
static void fake_join(struct fake *f) {
  pthread_join(f->thread, NULL);
  close(f->listen_fd);
}

/* A connection to the fake and a batch script registered on it. */
static int connect_fake(struct fake *f, linli_redis_t **r,
                        linli_redis_script_t **s) {
  char err[256];
  if (fake_start(f) != 0 ||
      linli_redis_connect("127.0.0.1", f->port, NULL, 300, r, err,
                          sizeof err) != LINLI_OK)
    return -1;
  return linli_redis_script_batch(*r, "test", "apply = function(P, A) "
                                              "return 'ok' end",
                                  s);
}

/* ------------------------------------------------------------------ tests */

static int add(linli_shards_t *sh, const char *tag, int64_t offset,
               int *shard) {
  const char *args[] = {"x"};
  return linli_shards_add(sh, tag, "t", 0, offset, 0, 1, args, NULL, shard);
}

static void test_tags(void) {
  struct fake f;
  linli_redis_t *r = NULL;
  linli_redis_script_t *s = NULL;
  CU_ASSERT_FATAL(connect_fake(&f, &r, &s) == LINLI_OK);
  linli_shards_t *sh = NULL;
  CU_ASSERT_FATAL(linli_shards_new(s, 1, &sh) == LINLI_OK);
  CU_ASSERT_EQUAL(linli_shards_count(sh), 0);
  CU_ASSERT_PTR_NULL(linli_shards_batch(sh, 0));

  /* 100 tags, each twice: more than the first table holds, so the table
   * grows while tags are found again. */
  int shard = -1;
  char tag[32];
  for (int round = 0; round < 2; round++)
    for (int i = 0; i < 100; i++) {
      snprintf(tag, sizeof tag, "w:%d", i);
      CU_ASSERT_EQUAL(add(sh, tag, round * 100 + i, &shard), round);
      CU_ASSERT_EQUAL(shard, i);
    }
  CU_ASSERT_EQUAL(linli_shards_count(sh), 100);
  CU_ASSERT_STRING_EQUAL(linli_redis_batch_tag(linli_shards_batch(sh, 42)),
                         "w:42");
  CU_ASSERT_EQUAL(linli_redis_batch_count(linli_shards_batch(sh, 42)), 2);

  /* A tag Redis keys cannot carry, and an input the batch refuses (its
   * start after its offset), make no shard. */
  shard = -1;
  CU_ASSERT_EQUAL(add(sh, "bad{tag}", 500, &shard), LINLI_ERR_INVALID);
  const char *args[] = {"x"};
  CU_ASSERT_EQUAL(linli_shards_add(sh, "w:new", "t", 0, 5, 9, 1, args, NULL,
                                   &shard),
                  LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL(shard, -1);
  CU_ASSERT_EQUAL(linli_shards_count(sh), 100);
  /* ... and the tag refused is still welcome later. */
  CU_ASSERT_EQUAL(add(sh, "w:new", 600, &shard), 0);
  CU_ASSERT_EQUAL(shard, 100);

  linli_shards_free(sh);
  linli_redis_free(r);
  fake_join(&f);
}

static void test_exec(void) {
  struct fake f;
  linli_redis_t *r = NULL;
  linli_redis_script_t *s = NULL;
  CU_ASSERT_FATAL(connect_fake(&f, &r, &s) == LINLI_OK);
  linli_shards_t *sh = NULL;
  CU_ASSERT_FATAL(linli_shards_new(s, 4, &sh) == LINLI_OK);
  char reason[256] = "";
  /* Nothing added: nothing sent. */
  CU_ASSERT_EQUAL(linli_shards_exec(r, sh, reason, sizeof reason), LINLI_OK);

  int shard;
  add(sh, "c:a", 1, &shard);
  add(sh, "c:b", 2, &shard);
  add(sh, "c:a", 3, &shard);
  add(sh, "c:c", 4, &shard);
  CU_ASSERT_EQUAL(linli_shards_exec(r, sh, reason, sizeof reason), LINLI_OK);
  for (size_t i = 0; i < 3; i++) {
    const char *msg = NULL;
    CU_ASSERT_EQUAL(linli_redis_batch_status(linli_shards_batch(sh, i), &msg),
                    LINLI_ERR_INVALID);
    CU_ASSERT(msg && strstr(msg, "fake"));
  }
  linli_shards_free(sh);
  linli_redis_free(r);
  fake_join(&f);
  CU_ASSERT_EQUAL(f.evalshas, 3); /* one script per shard */
}

static void test_exec_unreachable(void) {
  struct fake f;
  linli_redis_t *r = NULL;
  linli_redis_script_t *s = NULL;
  CU_ASSERT_FATAL(connect_fake(&f, &r, &s) == LINLI_OK);
  linli_shards_t *sh = NULL;
  CU_ASSERT_FATAL(linli_shards_new(s, 0, &sh) == LINLI_OK);
  int shard;
  CU_ASSERT_EQUAL(add(sh, "c:a", 1, &shard), 0);
  /* The fake goes away: exec reconnects in vain and says why. Its first
   * write meets the dead connection: no SIGPIPE for this runner. */
  signal(SIGPIPE, SIG_IGN);
  shutdown(linli_redis_context(r)->fd, SHUT_RDWR);
  fake_join(&f);
  char reason[256] = "";
  CU_ASSERT_EQUAL(linli_shards_exec(r, sh, reason, sizeof reason),
                  LINLI_ERR_TRANSIENT);
  CU_ASSERT(reason[0] != '\0');
  linli_shards_free(sh);
  linli_redis_free(r);
}

static void test_admit(void) {
  char reason[64] = "";
  /* An added record (a slot) or LINLI_OK goes on; the reject path needs a
   * runner's batch and is the integration suites'. */
  CU_ASSERT_EQUAL(linli_shards_admit(NULL, 0, 3, "misfit", reason,
                                     sizeof reason),
                  LINLI_OK);
  CU_ASSERT_EQUAL(linli_shards_admit(NULL, 0, LINLI_OK, "misfit", reason,
                                     sizeof reason),
                  LINLI_OK);
  CU_ASSERT_STRING_EQUAL(reason, "");
  CU_ASSERT_EQUAL(linli_shards_admit(NULL, 0, LINLI_ERR_NOMEM, "misfit",
                                     reason, sizeof reason),
                  LINLI_ERR_TRANSIENT);
  CU_ASSERT_STRING_EQUAL(reason, "out of memory");
}

static void test_empty(void) {
  CU_ASSERT_EQUAL(linli_shards_new(NULL, 0, NULL), LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL(linli_shards_count(NULL), 0);
  linli_shards_free(NULL);
  char reason[8] = "";
  CU_ASSERT_EQUAL(linli_shards_exec(NULL, NULL, reason, sizeof reason),
                  LINLI_OK);
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("shards", NULL, NULL);
  if (!s)
    return -1;
  CU_add_test(s, "a batch per tag, found again", test_tags);
  CU_add_test(s, "exec: one script per shard", test_exec);
  CU_add_test(s, "exec: Redis unreachable", test_exec_unreachable);
  CU_add_test(s, "admit", test_admit);
  CU_add_test(s, "no shards", test_empty);
  return CU_get_error() == CUE_SUCCESS ? 0 : -1;
}
