/*
 * test_config.c - unit tests of linli_config: defaults, file values,
 * environment overrides, [kafka] passthrough, and that every failure names
 * the file, the line and the key.
 */
#include <CUnit/CUnit.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "all_settings.h"
#include "linli/config.h"
#include "linli/error.h"
#include "linli_test.h"
#include "producers/gateway/settings.h"

extern char **environ;

static const char *HEX64 =
    "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";

/* Every program's table, as if one process ran them all (the docs test
 * below reads every documented key). */
static void register_programs(void) { all_settings_register(); }

/* The developer's shell may carry LINLI_* overrides: start from none. */
static int suite_init(void) {
  char names[64][128];
  int n = 0;
  for (char **e = environ; *e && n < 64; e++) {
    if (strncmp(*e, "LINLI_", 6) != 0)
      continue;
    const char *eq = strchr(*e, '=');
    size_t len = eq ? (size_t)(eq - *e) : strlen(*e);
    if (len >= sizeof(names[0]))
      continue;
    memcpy(names[n], *e, len);
    names[n][len] = '\0';
    if (strcmp(names[n], "LINLI_SOURCE_DIR") != 0 &&
        strcmp(names[n], "LINLI_BINARY_DIR") != 0)
      n++;
  }
  for (int i = 0; i < n; i++)
    unsetenv(names[i]);
  register_programs();
  return 0;
}

/* Load text expecting failure; returns the error text (static). */
static const char *load_fail(const char *text) {
  static char err[1024];
  linli_config_t *cfg = (linli_config_t *)0x1;
  err[0] = '\0';
  int rc = linli_config_load_string(text, "t.conf", &cfg, err, sizeof(err));
  CU_ASSERT_EQUAL(rc, LINLI_ERR_CONFIG);
  CU_ASSERT_PTR_NULL(cfg);
  if (rc == 0)
    linli_config_free(cfg);
  return err;
}

static linli_config_t *load_ok(const char *text) {
  char err[1024] = "";
  linli_config_t *cfg = NULL;
  int rc = linli_config_load_string(text, "t.conf", &cfg, err, sizeof(err));
  if (rc != 0)
    fprintf(stderr, "unexpected config error: %s\n", err);
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
  return cfg;
}

static void test_defaults(void) {
  linli_config_t *cfg = load_ok("");
  CU_ASSERT_STRING_EQUAL(linli_config_str(cfg, "redis.host"), "127.0.0.1");
  CU_ASSERT_EQUAL(linli_config_int(cfg, "redis.port"), 16379);
  CU_ASSERT_STRING_EQUAL(linli_config_str(cfg, "redis.password"), "");
  CU_ASSERT_EQUAL(linli_config_int(cfg, "redis.connect_timeout_ms"), 5000);
  CU_ASSERT_STRING_EQUAL(linli_config_str(cfg, "pg.conninfo"),
                         "host=127.0.0.1 port=15432 dbname=linli user=linli");
  CU_ASSERT_EQUAL(linli_config_int(cfg, "pg.connect_timeout_ms"), 10000);
  CU_ASSERT_STRING_EQUAL(linli_config_str(cfg, "log.level"), "info");
  CU_ASSERT_EQUAL(linli_config_int(cfg, "metrics.port"), 0);
  CU_ASSERT_STRING_EQUAL(linli_config_str(cfg, "metrics.addr"), "127.0.0.1");
  CU_ASSERT_EQUAL(linli_config_int(cfg, "runner.batch_size"), 500);
  CU_ASSERT_EQUAL(linli_config_int(cfg, "runner.flush_interval_ms"), 100);
  CU_ASSERT_EQUAL(linli_config_int(cfg, "runner.tick_interval_ms"), 1000);
  CU_ASSERT_STRING_EQUAL(linli_config_str(cfg, "runner.instance_id"), "");
  CU_ASSERT_EQUAL(linli_config_int(cfg, "runner.transaction_timeout_ms"),
                  60000);
  CU_ASSERT_STRING_EQUAL(linli_config_str(cfg, "runner.dlq_topic"),
                         "linli.dlq.v1");
  CU_ASSERT_EQUAL(linli_config_int(cfg, "runner.retry_backoff_ms"), 500);
  CU_ASSERT_EQUAL(linli_config_int(cfg, "orders.payment_timeout_s"), 900);
  CU_ASSERT_EQUAL(linli_config_int(cfg, "orders.max_lines"), 100);
  CU_ASSERT_STRING_EQUAL(linli_config_str(cfg, "crypto.key"), "");
  CU_ASSERT_EQUAL(linli_config_int(cfg, "gateway.port"), 8080);
  CU_ASSERT_PTR_NULL(linli_config_kafka_get(cfg, "bootstrap.servers"));
  /* int keys also read as their text */
  CU_ASSERT_STRING_EQUAL(linli_config_str(cfg, "redis.port"), "16379");
  linli_config_free(cfg);
}

static void test_file_values(void) {
  linli_config_t *cfg = load_ok("; comment\n"
                                "[redis]\n"
                                "host = redis.local\n"
                                "port = 6379\n"
                                "\n"
                                "[pg]\n"
                                "conninfo = host=db port=5432 dbname=x\n"
                                "[metrics]\n"
                                "port = -1\n"
                                "[log]\n"
                                "level = debug ; inline comment\n");
  CU_ASSERT_STRING_EQUAL(linli_config_str(cfg, "redis.host"), "redis.local");
  CU_ASSERT_EQUAL(linli_config_int(cfg, "redis.port"), 6379);
  CU_ASSERT_STRING_EQUAL(linli_config_str(cfg, "pg.conninfo"),
                         "host=db port=5432 dbname=x");
  CU_ASSERT_EQUAL(linli_config_int(cfg, "metrics.port"), -1);
  CU_ASSERT_STRING_EQUAL(linli_config_str(cfg, "log.level"), "debug");
  /* untouched keys keep their defaults */
  CU_ASSERT_EQUAL(linli_config_int(cfg, "runner.batch_size"), 500);
  linli_config_free(cfg);
}

static void test_env_override(void) {
  setenv("LINLI_REDIS_PORT", "7000", 1);
  setenv("LINLI_RUNNER_DLQ_TOPIC", "my.dlq", 1);
  linli_config_t *cfg = load_ok("[redis]\nport = 6379\n");
  unsetenv("LINLI_REDIS_PORT");
  unsetenv("LINLI_RUNNER_DLQ_TOPIC");
  CU_ASSERT_EQUAL(linli_config_int(cfg, "redis.port"), 7000);
  CU_ASSERT_STRING_EQUAL(linli_config_str(cfg, "runner.dlq_topic"), "my.dlq");
  linli_config_free(cfg);
}

static void test_env_bad_value(void) {
  setenv("LINLI_REDIS_PORT", "70000", 1);
  const char *err = load_fail("");
  unsetenv("LINLI_REDIS_PORT");
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "LINLI_REDIS_PORT"));
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "redis.port"));
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "1..65535"));
}

static void test_unknown_key(void) {
  const char *err = load_fail("[redis]\nhost = x\nprot = 6379\n");
  CU_ASSERT_STRING_EQUAL(err, "t.conf:3: redis.prot: unknown key");
}

static void test_unknown_section(void) {
  linli_config_strict_sections(1);
  const char *err = load_fail("[redis]\nport = 1\n\n[rediss]\nport = 2\n");
  linli_config_strict_sections(0);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.conf:5: rediss.port: unknown section"));
}

static void test_key_outside_section(void) {
  const char *err = load_fail("port = 1\n");
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.conf:1: port:"));
}

static void test_bad_int(void) {
  const char *err = load_fail("[runner]\nbatch_size = 12x\n");
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.conf:2: runner.batch_size: not an integer"));
  err = load_fail("[runner]\nbatch_size =\n");
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.conf:2: runner.batch_size: not an integer"));
  err = load_fail("[runner]\nbatch_size = 99999999999999999999999\n");
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.conf:2: runner.batch_size:"));
}

static void test_out_of_bounds(void) {
  const char *err = load_fail("[redis]\nport = 0\n");
  CU_ASSERT_STRING_EQUAL(err, "t.conf:2: redis.port: 0 is out of range 1..65535");
  err = load_fail("[runner]\ntick_interval_ms = 9\n");
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.conf:2: runner.tick_interval_ms:"));
  err = load_fail("[metrics]\nport = -2\n");
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.conf:2: metrics.port:"));
  /* bounds are inclusive */
  linli_config_t *cfg = load_ok("[redis]\nport = 65535\n[metrics]\nport=-1\n");
  CU_ASSERT_EQUAL(linli_config_int(cfg, "redis.port"), 65535);
  linli_config_free(cfg);
}

static void test_bad_enum(void) {
  const char *err = load_fail("[log]\nlevel = verbose\n");
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.conf:2: log.level:"));
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "verbose"));
  err = load_fail("[runner]\ndlq_topic = bad topic\n");
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.conf:2: runner.dlq_topic:"));
}

static void test_syntax_and_duplicates(void) {
  const char *err = load_fail("[redis]\nhost = a\nthis is not ini\n");
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.conf:3: syntax error"));
  err = load_fail("[redis]\nhost = a\n\nhost = b\n");
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.conf:4: redis.host: duplicate key"));
  /* an indented line is a key of its own, not a silent continuation */
  linli_config_t *cfg = load_ok("[redis]\nhost = a\n  port = 1\n");
  CU_ASSERT_STRING_EQUAL(linli_config_str(cfg, "redis.host"), "a");
  CU_ASSERT_EQUAL(linli_config_int(cfg, "redis.port"), 1);
  linli_config_free(cfg);
  /* the first error wins */
  err = load_fail("[redis]\nport = x\nprot = 1\n");
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.conf:2: redis.port"));
}

static void test_long_line(void) {
  char text[1024];
  int n = snprintf(text, sizeof(text), "[kafka]\nclient.id = ");
  memset(text + n, 'a', 300);
  snprintf(text + n + 300, sizeof(text) - (size_t)n - 300, "\n[redis]\nport = x\n");
  const char *err = load_fail(text);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.conf:2: line longer than"));
}

static void test_kafka_passthrough(void) {
  linli_config_t *cfg = load_ok("[kafka]\n"
                                "bootstrap.servers = broker1:9092,broker2:9092\n"
                                "linger.ms = 5\n"
                                "security.protocol = plaintext\n");
  CU_ASSERT_STRING_EQUAL(linli_config_kafka_get(cfg, "bootstrap.servers"),
                         "broker1:9092,broker2:9092");
  CU_ASSERT_STRING_EQUAL(linli_config_kafka_get(cfg, "linger.ms"), "5");
  CU_ASSERT_PTR_NULL(linli_config_kafka_get(cfg, "client.id"));

  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  char err[512] = "";
  CU_ASSERT_EQUAL(linli_config_kafka_apply(cfg, conf, err, sizeof(err)), 0);
  char buf[256];
  size_t len = sizeof(buf);
  CU_ASSERT_EQUAL(rd_kafka_conf_get(conf, "bootstrap.servers", buf, &len),
                  RD_KAFKA_CONF_OK);
  CU_ASSERT_STRING_EQUAL(buf, "broker1:9092,broker2:9092");
  len = sizeof(buf);
  CU_ASSERT_EQUAL(rd_kafka_conf_get(conf, "linger.ms", buf, &len),
                  RD_KAFKA_CONF_OK);
  CU_ASSERT_STRING_EQUAL(buf, "5");
  rd_kafka_conf_destroy(conf);
  linli_config_free(cfg);
}

static void test_kafka_env(void) {
  setenv("LINLI_KAFKA_BOOTSTRAP_SERVERS", "envhost:9093", 1);
  setenv("LINLI_KAFKA_QUEUE_BUFFERING_MAX_MS", "7", 1);
  linli_config_t *cfg =
      load_ok("[kafka]\nbootstrap.servers = filehost:9092\n");
  unsetenv("LINLI_KAFKA_BOOTSTRAP_SERVERS");
  unsetenv("LINLI_KAFKA_QUEUE_BUFFERING_MAX_MS");
  CU_ASSERT_STRING_EQUAL(linli_config_kafka_get(cfg, "bootstrap.servers"),
                         "envhost:9093");
  CU_ASSERT_STRING_EQUAL(linli_config_kafka_get(cfg, "queue.buffering.max.ms"),
                         "7");
  linli_config_free(cfg);

  setenv("LINLI_KAFKA_LINGER_MSS", "7", 1);
  const char *err = load_fail("");
  unsetenv("LINLI_KAFKA_LINGER_MSS");
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "LINLI_KAFKA_LINGER_MSS"));
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "linger.mss"));
}

static void test_kafka_bad_property(void) {
  const char *err = load_fail("[redis]\nport = 1\n[kafka]\n"
                              "bootstrap.servers = x:1\n"
                              "bootstrap.serverz = x:1\n");
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.conf:5: kafka.bootstrap.serverz: "));
  /* librdkafka's own reason follows */
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "No such configuration property"));
  err = load_fail("[kafka]\nlinger.ms = soon\n");
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.conf:2: kafka.linger.ms: "));
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fputs(text, f);
  fclose(f);
}

static void test_load_file(void) {
  char path[] = "/tmp/linli-test-config-XXXXXX";
  int fd = mkstemp(path);
  CU_ASSERT_FATAL(fd >= 0);
  close(fd);
  write_file(path, "[redis]\nport = 1234\n[bogus]\nx = 1\n");
  char err[1024] = "";
  linli_config_t *cfg = NULL;
  linli_config_strict_sections(1);
  CU_ASSERT_EQUAL(linli_config_load(path, &cfg, err, sizeof(err)),
                  LINLI_ERR_CONFIG);
  linli_config_strict_sections(0);
  char want[256];
  snprintf(want, sizeof(want), "%s:4: bogus.x: unknown section", path);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, want));

  write_file(path, "[redis]\nport = 1234\n");
  CU_ASSERT_EQUAL(linli_config_load(path, &cfg, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(linli_config_int(cfg, "redis.port"), 1234);
  linli_config_free(cfg);

  /* $LINLI_CONFIG names the file when path is NULL */
  setenv("LINLI_CONFIG", path, 1);
  cfg = NULL;
  CU_ASSERT_EQUAL(linli_config_load(NULL, &cfg, err, sizeof(err)), 0);
  unsetenv("LINLI_CONFIG");
  CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
  CU_ASSERT_EQUAL(linli_config_int(cfg, "redis.port"), 1234);
  linli_config_free(cfg);
  unlink(path);
}

static void test_missing_file(void) {
  char err[1024] = "";
  linli_config_t *cfg = NULL;
  const char *path = "/nonexistent/linli/none.conf";
  CU_ASSERT_EQUAL(linli_config_load(path, &cfg, err, sizeof(err)),
                  LINLI_ERR_CONFIG);
  CU_ASSERT_PTR_NULL(cfg);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, path));

  /* ... also through $LINLI_CONFIG */
  setenv("LINLI_CONFIG", path, 1);
  CU_ASSERT_EQUAL(linli_config_load(NULL, &cfg, err, sizeof(err)),
                  LINLI_ERR_CONFIG);
  unsetenv("LINLI_CONFIG");
  CU_ASSERT_PTR_NOT_NULL(strstr(err, path));

  /* the default config/linli.conf may be missing: defaults apply */
  char cwd[4096];
  CU_ASSERT_PTR_NOT_NULL_FATAL(getcwd(cwd, sizeof(cwd)));
  char dir[] = "/tmp/linli-test-cwd-XXXXXX";
  CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
  CU_ASSERT_EQUAL_FATAL(chdir(dir), 0);
  int rc = linli_config_load(NULL, &cfg, err, sizeof(err));
  CU_ASSERT_EQUAL(chdir(cwd), 0);
  rmdir(dir);
  CU_ASSERT_EQUAL(rc, 0);
  if (rc == 0) {
    CU_ASSERT_EQUAL(linli_config_int(cfg, "redis.port"), 16379);
    linli_config_free(cfg);
  }
}

static void test_crypto_key(void) {
  char text[256];
  snprintf(text, sizeof(text), "[crypto]\nkey = %s\n", HEX64);
  linli_config_t *cfg = load_ok(text);
  CU_ASSERT_STRING_EQUAL(linli_config_str(cfg, "crypto.key"), HEX64);
  linli_config_free(cfg);

  snprintf(text, sizeof(text), "[crypto]\nkey = %.63s\n", HEX64);
  const char *err = load_fail(text);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.conf:2: crypto.key: "));
  /* a secret is never echoed in an error */
  CU_ASSERT_PTR_NULL(strstr(err, "00112233"));

  snprintf(text, sizeof(text), "[crypto]\nkey = %.63sg\n", HEX64);
  err = load_fail(text);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.conf:2: crypto.key: "));
  CU_ASSERT_PTR_NULL(strstr(err, "00112233"));
}

static void test_set(void) {
  linli_config_t *cfg = load_ok("");
  char err[512] = "";
  CU_ASSERT_EQUAL(linli_config_set(cfg, "redis.port", "6380", err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(linli_config_int(cfg, "redis.port"), 6380);
  CU_ASSERT_EQUAL(linli_config_set(cfg, "redis.port", "nope", err, sizeof(err)),
                  LINLI_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "redis.port"));
  CU_ASSERT_EQUAL(linli_config_int(cfg, "redis.port"), 6380); /* unchanged */
  CU_ASSERT_EQUAL(linli_config_set(cfg, "redis.nope", "1", err, sizeof(err)),
                  LINLI_ERR_CONFIG);
  CU_ASSERT_EQUAL(linli_config_set(cfg, "kafka.client.id", "me", err, sizeof(err)), 0);
  CU_ASSERT_STRING_EQUAL(linli_config_kafka_get(cfg, "client.id"), "me");
  CU_ASSERT_EQUAL(linli_config_set(cfg, "kafka.client.idd", "me", err, sizeof(err)),
                  LINLI_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "kafka.client.idd"));
  linli_config_free(cfg);
}

static void test_unknown_read_aborts(void) {
  fflush(NULL);
  pid_t pid = fork();
  CU_ASSERT_FATAL(pid >= 0);
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0)
      dup2(devnull, 2);
    linli_config_t *cfg = NULL;
    char err[256];
    if (linli_config_load_string("", "t", &cfg, err, sizeof(err)) == 0)
      (void)linli_config_int(cfg, "redis.prot");
    _exit(0);
  }
  int status = 0;
  CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
  CU_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
}

/* A process knows libcommon's sections and the tables it registered; the
 * file is shared, so another program's section is skipped, not checked. */
static void test_program_scope(void) {
  linli_config_unregister_all();
  linli_config_register(&gateway_settings);
  linli_config_register(&gateway_settings); /* again: no effect */
  setenv("LINLI_NOTIFIER_SHARDS", "not a number", 1);
  linli_config_t *cfg = load_ok("[gateway]\nport = 1\n"
                                "[notifier]\nshards = 99999999\n"
                                "[router]\nbogus = x\n");
  unsetenv("LINLI_NOTIFIER_SHARDS");
  CU_ASSERT_EQUAL(linli_config_int(cfg, "gateway.port"), 1);
  linli_config_free(cfg);
  /* its own section and libcommon's stay strict */
  const char *err = load_fail("[router]\nx = 1\n[gateway]\nprot = 1\n");
  CU_ASSERT_STRING_EQUAL(err, "t.conf:4: gateway.prot: unknown key");
  err = load_fail("[gateway]\nport = 70000\n");
  CU_ASSERT_STRING_EQUAL(err,
                         "t.conf:2: gateway.port: 70000 is out of range 0..65535");
  err = load_fail("[notifier]\nx = 1\n[runner]\nbatch_sise = 1\n");
  CU_ASSERT_STRING_EQUAL(err, "t.conf:4: runner.batch_sise: unknown key");
  setenv("LINLI_GATEWAY_PORT", "x", 1);
  err = load_fail("");
  unsetenv("LINLI_GATEWAY_PORT");
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "LINLI_GATEWAY_PORT: gateway.port:"));
  /* strict: a section no table owns is an error */
  linli_config_strict_sections(1);
  err = load_fail("[gateway]\nport = 1\n[notifier]\nshards = 2\n");
  linli_config_strict_sections(0);
  CU_ASSERT_STRING_EQUAL(err,
                         "t.conf:4: notifier.shards: unknown section [notifier]");
  linli_config_unregister_all();
  register_programs();
}

/* Run fn in a child with stderr closed; returns its wait status. */
static int in_child(void (*fn)(void)) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0)
      dup2(devnull, 2);
    fn();
    _exit(0);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid)
    return -1;
  return status;
}

static void read_unregistered(void) {
  linli_config_unregister_all();
  linli_config_t *cfg = NULL;
  char err[256];
  if (linli_config_load_string("", "t", &cfg, err, sizeof(err)) == 0)
    (void)linli_config_int(cfg, "gateway.port");
}

static const linli_setting_t STEAL_KEYS[] = {
    {"gateway.other", LINLI_SETTING_INT, "1", 0, 2, 0, NULL, "x"},
};
static const linli_settings_t STEAL = {"thief", STEAL_KEYS, 1};
static void register_taken_section(void) { linli_config_register(&STEAL); }

static const linli_setting_t COMMON_STEAL_KEYS[] = {
    {"redis.extra", LINLI_SETTING_STR, "", 0, 0, 0, NULL, "x"},
};
static const linli_settings_t COMMON_STEAL = {"thief", COMMON_STEAL_KEYS, 1};
static void register_common_section(void) {
  linli_config_register(&COMMON_STEAL);
}

static const linli_setting_t TWICE_KEYS[] = {
    {"mine.a", LINLI_SETTING_INT, "1", 0, 2, 0, NULL, "x"},
    {"mine.a", LINLI_SETTING_INT, "1", 0, 2, 0, NULL, "x"},
};
static const linli_settings_t TWICE = {"twice", TWICE_KEYS, 2};
static void register_key_twice(void) { linli_config_register(&TWICE); }

/* Programming errors abort at once, never a silent default. */
static void test_registry_misuse_aborts(void) {
  void (*cases[])(void) = {read_unregistered, register_taken_section,
                           register_common_section, register_key_twice};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    int status = in_child(cases[i]);
    CU_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
  }
}

static void test_repo_config(void) {
  /* the shipped config/linli.conf must load */
  char path[4096];
  const char *src = getenv("LINLI_SOURCE_DIR");
  if (!src)
    return;
  snprintf(path, sizeof(path), "%s/config/linli.conf", src);
  char err[1024] = "";
  linli_config_t *cfg = NULL;
  int rc = linli_config_load(path, &cfg, err, sizeof(err));
  if (rc != 0)
    fprintf(stderr, "%s\n", err);
  CU_ASSERT_EQUAL(rc, 0);
  linli_config_free(cfg);
}

/* docs/config.md lists every key with its default: each documented key must
 * exist and its documented default must be the real one. */
static void test_docs_in_sync(void) {
  const char *src = getenv("LINLI_SOURCE_DIR");
  if (!src)
    return;
  char path[4096];
  snprintf(path, sizeof(path), "%s/docs/config.md", src);
  FILE *f = fopen(path, "r");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  linli_config_t *cfg = load_ok("");
  char line[1024];
  int rows = 0;
  while (fgets(line, sizeof(line), f)) {
    if (strncmp(line, "| `", 3) != 0)
      continue;
    /* | `key` | type | `default` or (empty) | ... */
    char key[128], def[256] = "";
    const char *p = line + 3;
    const char *e = strchr(p, '`');
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    snprintf(key, sizeof(key), "%.*s", (int)(e - p), p);
    const char *col = strchr(e, '|');           /* before type */
    col = col ? strchr(col + 1, '|') : NULL;    /* before default */
    CU_ASSERT_PTR_NOT_NULL_FATAL(col);
    col++;
    while (*col == ' ')
      col++;
    if (*col == '`') {
      const char *de = strchr(col + 1, '`');
      CU_ASSERT_PTR_NOT_NULL_FATAL(de);
      snprintf(def, sizeof(def), "%.*s", (int)(de - col - 1), col + 1);
    } else {
      CU_ASSERT(strncmp(col, "(empty)", 7) == 0);
    }
    char err[512];
    CU_ASSERT_EQUAL(linli_config_set(cfg, key, def, err, sizeof(err)), 0);
    if (strcmp(linli_config_str(cfg, key), def) != 0)
      fprintf(stderr, "docs/config.md: %s default '%s' differs\n", key, def);
    rows++;
  }
  fclose(f);
  /* the real defaults: a fresh load must match what set() stored */
  linli_config_t *fresh = load_ok("");
  CU_ASSERT(rows >= 20);
  f = fopen(path, "r");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  while (fgets(line, sizeof(line), f)) {
    if (strncmp(line, "| `", 3) != 0)
      continue;
    char key[128];
    const char *e = strchr(line + 3, '`');
    snprintf(key, sizeof(key), "%.*s", (int)(e - line - 3), line + 3);
    CU_ASSERT_STRING_EQUAL(linli_config_str(fresh, key),
                           linli_config_str(cfg, key));
  }
  fclose(f);
  linli_config_free(fresh);
  linli_config_free(cfg);
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("config", suite_init, NULL);
  if (!s)
    return -1;
  CU_add_test(s, "defaults", test_defaults);
  CU_add_test(s, "file values", test_file_values);
  CU_add_test(s, "env override wins", test_env_override);
  CU_add_test(s, "env bad value names variable", test_env_bad_value);
  CU_add_test(s, "unknown key", test_unknown_key);
  CU_add_test(s, "unknown section", test_unknown_section);
  CU_add_test(s, "key outside section", test_key_outside_section);
  CU_add_test(s, "bad int", test_bad_int);
  CU_add_test(s, "out of bounds", test_out_of_bounds);
  CU_add_test(s, "bad enum / topic", test_bad_enum);
  CU_add_test(s, "syntax errors and duplicates", test_syntax_and_duplicates);
  CU_add_test(s, "long line", test_long_line);
  CU_add_test(s, "kafka passthrough", test_kafka_passthrough);
  CU_add_test(s, "kafka env", test_kafka_env);
  CU_add_test(s, "kafka bad property names line", test_kafka_bad_property);
  CU_add_test(s, "load file and LINLI_CONFIG", test_load_file);
  CU_add_test(s, "missing file", test_missing_file);
  CU_add_test(s, "crypto.key validation", test_crypto_key);
  CU_add_test(s, "set", test_set);
  CU_add_test(s, "unknown key read aborts", test_unknown_read_aborts);
  CU_add_test(s, "program scope: own sections strict, others skipped",
              test_program_scope);
  CU_add_test(s, "registry misuse aborts", test_registry_misuse_aborts);
  CU_add_test(s, "shipped config loads", test_repo_config);
  CU_add_test(s, "docs/config.md in sync", test_docs_in_sync);
  return CU_get_error() == CUE_SUCCESS ? 0 : -1;
}
