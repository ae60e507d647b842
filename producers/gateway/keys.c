/*
 * keys.c - the gateway's API keys: one line per key in gateway.keys_file,
 *   app_id role sha256-hex-of-token
 * so that the file never holds a usable secret. A bearer token is hashed
 * and compared against every key in constant time (sodium_memcmp, no early
 * exit), so response timing tells nothing about which key nearly matched.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "gateway.h"
#include "linli/error.h"
#include "linli/ids.h"

int gw_role_parse(const char *s) {
  if (strcmp(s, "app") == 0)
    return GW_ROLE_APP;
  if (strcmp(s, "logistics") == 0)
    return GW_ROLE_LOGISTICS;
  if (strcmp(s, "admin") == 0)
    return GW_ROLE_ADMIN;
  if (strcmp(s, "warehouse") == 0)
    return GW_ROLE_WAREHOUSE;
  return 0;
}

const char *gw_role_name(int role) {
  switch (role) {
  case GW_ROLE_APP:
    return "app";
  case GW_ROLE_LOGISTICS:
    return "logistics";
  case GW_ROLE_ADMIN:
    return "admin";
  case GW_ROLE_WAREHOUSE:
    return "warehouse";
  default:
    return "?";
  }
}

static int hexval(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  c = tolower(c);
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

/* Next whitespace-separated field of *p (NUL-terminated in place), or NULL. */
static char *next_field(char **p) {
  char *s = *p;
  while (isspace((unsigned char)*s))
    s++;
  if (*s == '\0') {
    *p = s;
    return NULL;
  }
  char *start = s;
  while (*s && !isspace((unsigned char)*s))
    s++;
  if (*s)
    *s++ = '\0';
  *p = s;
  return start;
}

/* One line: returns 1 for a key, 0 for blank/comment, -1 on error. */
static int parse_line(char *line, struct gw_key *k, char *why, size_t wlen) {
  char *p = line;
  while (isspace((unsigned char)*p))
    p++;
  if (*p == '\0' || *p == '#' || *p == ';')
    return 0;
  char *app = next_field(&p);
  char *role = next_field(&p);
  char *hex = next_field(&p);
  char *extra = next_field(&p);
  if (!app || !role || !hex || extra) {
    snprintf(why, wlen, "expected: app_id role sha256-hex");
    return -1;
  }
  if (!linli_id_valid(app)) {
    snprintf(why, wlen, "app_id must be 1-64 characters of [A-Za-z0-9_-]");
    return -1;
  }
  if (!(k->role = gw_role_parse(role))) {
    snprintf(why, wlen, "role must be app, logistics, admin or warehouse");
    return -1;
  }
  if (strlen(hex) != 64) {
    snprintf(why, wlen, "hash must be 64 hex characters (SHA-256)");
    return -1;
  }
  for (size_t i = 0; i < 32; i++) {
    int hi = hexval((unsigned char)hex[2 * i]);
    int lo = hexval((unsigned char)hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      snprintf(why, wlen, "hash must be 64 hex characters (SHA-256)");
      return -1;
    }
    k->hash[i] = (unsigned char)(hi << 4 | lo);
  }
  snprintf(k->app_id, sizeof k->app_id, "%s", app);
  return 1;
}

int gw_keys_load(struct gw_keys *keys, const char *path, char *err,
                 size_t errlen) {
  FILE *f = fopen(path, "r");
  char *line = NULL;
  size_t cap = 0;
  int lineno = 0;
  memset(keys, 0, sizeof *keys);
  if (!f) {
    snprintf(err, errlen, "%s: cannot open (gateway.keys_file)", path);
    return LINLI_ERR_CONFIG;
  }
  while (getline(&line, &cap, f) >= 0) {
    struct gw_key k;
    char why[128];
    lineno++;
    memset(&k, 0, sizeof k);
    int rc = parse_line(line, &k, why, sizeof why);
    if (rc < 0) {
      snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
      goto err;
    }
    if (rc == 0)
      continue;
    struct gw_key *n = realloc(keys->k, (keys->n + 1) * sizeof *n);
    if (!n) {
      snprintf(err, errlen, "out of memory");
      goto err;
    }
    keys->k = n;
    keys->k[keys->n++] = k;
  }
  free(line);
  fclose(f);
  if (keys->n == 0) {
    snprintf(err, errlen, "%s: no API keys", path);
    gw_keys_free(keys);
    return LINLI_ERR_CONFIG;
  }
  return LINLI_OK;
err:
  free(line);
  fclose(f);
  gw_keys_free(keys);
  return LINLI_ERR_CONFIG;
}

void gw_keys_free(struct gw_keys *keys) {
  free(keys->k);
  keys->k = NULL;
  keys->n = 0;
}

/* SHA-256 of the development tokens published in docs/api.md. */
static const char *const DEV_HASHES[] = {
    "cd6c86aed50fc8eca185249cd1494555aa0a30ed6791e92d38b3d1f477084c5b",
    "85d9281e3df8b9ba8055a770e575fc00c49c974c028e751ef38412dce662eef8",
    "db3907600f23359206c59916de234091e9c865069c9915e8459955b0472e507a",
    "19260c70f3f8b00e55168261d9fd6a1ea6ac31251607d2f2ad000cd72a8d5cc2",
    "1c42767b0c1534d4557dfe24bebc5746007416a99074de1e866ca84e68f6dd5d",
};

const char *gw_keys_published(const struct gw_keys *keys) {
  for (size_t i = 0; i < keys->n; i++) {
    char hx[65];
    sodium_bin2hex(hx, sizeof hx, keys->k[i].hash, sizeof keys->k[i].hash);
    for (size_t j = 0; j < sizeof DEV_HASHES / sizeof DEV_HASHES[0]; j++)
      if (strcmp(hx, DEV_HASHES[j]) == 0)
        return keys->k[i].app_id;
  }
  return NULL;
}

const struct gw_key *gw_keys_find(const struct gw_keys *keys,
                                  const char *token) {
  unsigned char h[crypto_hash_sha256_BYTES];
  const struct gw_key *found = NULL;
  crypto_hash_sha256(h, (const unsigned char *)token, strlen(token));
  for (size_t i = 0; i < keys->n; i++) {
    if (sodium_memcmp(h, keys->k[i].hash, sizeof h) == 0)
      found = &keys->k[i];
  }
  return found;
}
