/*
 * log.c - logfmt records on stderr, one write(2) per line.
 *
 * Each record is built completely in memory and handed to the kernel in a
 * single write, so lines from threads of one process or from several
 * processes sharing a pipe or an O_APPEND file never interleave (a pipe
 * write up to PIPE_BUF bytes is atomic). There is no lock and no shared
 * mutable state besides the program name and level, which are set by
 * linli_log_init() before threads start.
 *
 * Time stamps are the real UTC clock, never the fake test clock: logs must
 * say when something happened on the machine.
 */
#include "linli/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int linli_log_level_active = LINLI_LOG_INFO;

static char prog_name[64] = "linli";

static const char *const LEVEL_NAMES[] = {"debug", "info", "warn", "error"};

void linli_log_init(const char *prog, int level) {
  if (prog && *prog)
    snprintf(prog_name, sizeof(prog_name), "%s", prog);
  if (level >= LINLI_LOG_DEBUG && level <= LINLI_LOG_ERROR)
    linli_log_level_active = level;
}

int linli_log_level_parse(const char *name) {
  if (!name)
    return -1;
  for (int i = 0; i < 4; i++)
    if (strcmp(name, LEVEL_NAMES[i]) == 0)
      return i;
  return -1;
}

/* A line buffer that starts on the stack and moves to the heap only for an
 * unusually long record. On allocation failure the record is truncated. */
struct line {
  char *p;
  size_t len, cap;
  int heap;
  char stack[2048];
};

static int line_reserve(struct line *l, size_t extra) {
  if (l->len + extra + 1 <= l->cap)
    return 0;
  size_t cap = l->cap * 2;
  while (cap < l->len + extra + 1)
    cap *= 2;
  char *np = l->heap ? realloc(l->p, cap) : malloc(cap);
  if (!np)
    return -1;
  if (!l->heap)
    memcpy(np, l->p, l->len);
  l->p = np;
  l->cap = cap;
  l->heap = 1;
  return 0;
}

static void line_putc(struct line *l, char c) {
  if (line_reserve(l, 1) == 0)
    l->p[l->len++] = c;
}

static void line_puts(struct line *l, const char *s) {
  size_t n = strlen(s);
  if (line_reserve(l, n) != 0)
    n = l->cap - l->len - 1;
  memcpy(l->p + l->len, s, n);
  l->len += n;
}

static void line_vprintf(struct line *l, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(l->p + l->len, l->cap - l->len, fmt, ap);
  if (n < 0) {
    va_end(ap2);
    return;
  }
  if ((size_t)n >= l->cap - l->len) {
    if (line_reserve(l, (size_t)n) == 0)
      vsnprintf(l->p + l->len, l->cap - l->len, fmt, ap2);
    else
      n = (int)(l->cap - l->len - 1); /* keep what fitted */
  }
  l->len += (size_t)n;
  va_end(ap2);
}

/* A value in logfmt: bare when it is a plain token, else double-quoted with
 * backslash escapes so that one record always stays one line. */
static void line_value(struct line *l, const char *v) {
  int bare = *v != '\0';
  for (const char *p = v; *p && bare; p++) {
    unsigned char c = (unsigned char)*p;
    if (c <= ' ' || c == '=' || c == '"' || c == '\\' || c == 0x7f)
      bare = 0;
  }
  if (bare) {
    line_puts(l, v);
    return;
  }
  line_putc(l, '"');
  for (const char *p = v; *p; p++) {
    unsigned char c = (unsigned char)*p;
    switch (c) {
    case '"': line_puts(l, "\\\""); break;
    case '\\': line_puts(l, "\\\\"); break;
    case '\n': line_puts(l, "\\n"); break;
    case '\r': line_puts(l, "\\r"); break;
    case '\t': line_puts(l, "\\t"); break;
    default:
      if (c < ' ' || c == 0x7f) {
        char hex[8];
        snprintf(hex, sizeof(hex), "\\x%02x", c);
        line_puts(l, hex);
      } else {
        line_putc(l, (char)c);
      }
    }
  }
  line_putc(l, '"');
}

static void write_all(const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(STDERR_FILENO, p, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return; /* nowhere left to report a failing stderr */
    }
    p += w;
    n -= (size_t)w;
  }
}

void linli_log_write(int level, const char *msg, const char *fmt, ...) {
  int saved_errno = errno; /* callers log errno-derived text after this */
  if (level < LINLI_LOG_DEBUG)
    level = LINLI_LOG_DEBUG;
  if (level > LINLI_LOG_ERROR)
    level = LINLI_LOG_ERROR;

  struct line l;
  l.p = l.stack;
  l.len = 0;
  l.cap = sizeof(l.stack);
  l.heap = 0;

  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char tbuf[64];
  snprintf(tbuf, sizeof(tbuf), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=",
           tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
           tm.tm_sec, ts.tv_nsec / 1000000L);
  line_puts(&l, tbuf);
  line_puts(&l, LEVEL_NAMES[level]);
  line_puts(&l, " prog=");
  line_value(&l, prog_name);
  line_puts(&l, " msg=");
  line_value(&l, msg ? msg : "");

  if (fmt && *fmt) {
    line_putc(&l, ' ');
    size_t start = l.len;
    va_list ap;
    va_start(ap, fmt);
    line_vprintf(&l, fmt, ap);
    va_end(ap);
    /* A caller's field must not split the record across lines. */
    for (size_t i = start; i < l.len; i++)
      if (l.p[i] == '\n' || l.p[i] == '\r')
        l.p[i] = ' ';
  }
  /* The newline always fits: reserve never gives back the last byte. */
  if (line_reserve(&l, 1) != 0)
    l.len = l.cap - 1;
  l.p[l.len++] = '\n';
  write_all(l.p, l.len);
  if (l.heap)
    free(l.p);
  errno = saved_errno;
}
