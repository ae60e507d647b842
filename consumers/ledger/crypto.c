/*
 * crypto.c - personal data at rest: recipient name, phone, address and home
 * coordinates are stored as nonce || crypto_secretbox(plain) under
 * crypto.key, a random nonce per value (the same address twice gives two
 * different ciphertexts). The key never leaves this file and is never
 * logged; orders.pii_key_id names it by a hash so that a rotated key can be
 * told apart.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger.h"
#include "linli/error.h"

int ledger_crypto_init(struct ledger_crypto *c, const char *hex, char *err,
                       size_t errlen) {
  memset(c, 0, sizeof *c);
  if (sodium_init() < 0) {
    snprintf(err, errlen, "libsodium failed to initialise");
    return LINLI_ERR_FATAL;
  }
  if (hex == NULL || hex[0] == '\0') {
    snprintf(err, errlen,
             "crypto.key is not set: the ledger stores personal data "
             "encrypted and needs a 64-hex-character key (set crypto.key or "
             "LINLI_CRYPTO_KEY)");
    return LINLI_ERR_CONFIG;
  }
  size_t n = 0;
  if (sodium_hex2bin(c->key, sizeof c->key, hex, strlen(hex), NULL, &n,
                     NULL) != 0 ||
      n != sizeof c->key) {
    snprintf(err, errlen, "crypto.key: must be 64 hex characters");
    return LINLI_ERR_CONFIG;
  }
  unsigned char h[8];
  crypto_generichash(h, sizeof h, c->key, sizeof c->key, NULL, 0);
  c->key_id[0] = 'k';
  sodium_bin2hex(c->key_id + 1, sizeof c->key_id - 1, h, sizeof h);
  return LINLI_OK;
}

char *ledger_encrypt_bytea(const struct ledger_crypto *c, const char *plain,
                           size_t len) {
  size_t blen = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + len;
  unsigned char *box = malloc(blen);
  char *out = malloc(2 + 2 * blen + 1);
  if (box == NULL || out == NULL) {
    free(box);
    free(out);
    return NULL;
  }
  randombytes_buf(box, crypto_secretbox_NONCEBYTES);
  crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES,
                        (const unsigned char *)plain, len, box, c->key);
  out[0] = '\\';
  out[1] = 'x';
  sodium_bin2hex(out + 2, 2 * blen + 1, box, blen);
  free(box);
  return out;
}

unsigned char *ledger_encrypt(const struct ledger_crypto *c, const void *plain,
                              size_t len, size_t *outlen) {
  *outlen = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + len;
  unsigned char *box = malloc(*outlen);
  if (box == NULL)
    return NULL;
  randombytes_buf(box, crypto_secretbox_NONCEBYTES);
  crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES,
                        (const unsigned char *)plain, len, box, c->key);
  return box;
}

unsigned char *ledger_decrypt(const struct ledger_crypto *c,
                              const unsigned char *box, size_t blen,
                              size_t *outlen) {
  if (blen < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES)
    return NULL;
  *outlen = blen - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES;
  unsigned char *plain = malloc(*outlen ? *outlen : 1);
  if (plain == NULL)
    return NULL;
  if (crypto_secretbox_open_easy(plain, box + crypto_secretbox_NONCEBYTES,
                                 blen - crypto_secretbox_NONCEBYTES, box,
                                 c->key) != 0) {
    free(plain);
    return NULL;
  }
  return plain;
}

void ledger_crypto_wipe(struct ledger_crypto *c) {
  sodium_memzero(c->key, sizeof c->key);
}
