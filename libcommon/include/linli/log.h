/*
 * log.h - levelled logging: one line per record to stderr, logfmt style:
 *   ts=2026-11-24T08:00:00.123Z level=info prog=reserver msg="..." k=v ...
 *
 * Never pass personal data (names, phones, addresses) as a field: log ids.
 * The macros do not evaluate their arguments below the active level.
 */
#ifndef LINLI_LOG_H
#define LINLI_LOG_H

enum linli_log_level {
  LINLI_LOG_DEBUG = 0,
  LINLI_LOG_INFO = 1,
  LINLI_LOG_WARN = 2,
  LINLI_LOG_ERROR = 3,
};

extern int linli_log_level_active;

/* Program name shown in every line (default "linli"). */
void linli_log_init(const char *prog, int level);
/* "debug", "info", "warn", "error" -> level; -1 if unknown. */
int linli_log_level_parse(const char *name);

/*
 * msg is a short constant message; fmt (may be NULL) formats the key=value
 * fields that follow it, e.g.
 *   LINLI_INFO("consumed", "topic=%s partition=%d", t, p);
 * Values with spaces must be quoted by the caller (or use %q-free ids).
 */
void linli_log_write(int level, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LINLI_LOG_AT(lvl, msg, ...)                                            \
  do {                                                                         \
    if ((lvl) >= linli_log_level_active)                                       \
      linli_log_write((lvl), (msg), __VA_ARGS__);                              \
  } while (0)
#define LINLI_DEBUG(msg, ...) LINLI_LOG_AT(LINLI_LOG_DEBUG, msg, __VA_ARGS__)
#define LINLI_INFO(msg, ...) LINLI_LOG_AT(LINLI_LOG_INFO, msg, __VA_ARGS__)
#define LINLI_WARN(msg, ...) LINLI_LOG_AT(LINLI_LOG_WARN, msg, __VA_ARGS__)
#define LINLI_ERROR(msg, ...) LINLI_LOG_AT(LINLI_LOG_ERROR, msg, __VA_ARGS__)

#endif
