/*
 * replay_main.c - runs a fuzz target's LLVMFuzzerTestOneInput over files
 * and directories given as arguments, without libFuzzer: every build (gcc,
 * ASan, UBSan) replays the seed corpora and the inputs that once broke a
 * parser, as a ctest (fuzz_corpus_<target>). Exits 1 if a path cannot be
 * read; a broken invariant aborts, as under libFuzzer.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return -1;
  uint8_t *buf = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    if (n == cap) {
      cap = cap ? cap * 2 : 4096;
      uint8_t *b = realloc(buf, cap);
      if (b == NULL) {
        free(buf);
        fclose(f);
        return -1;
      }
      buf = b;
    }
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (got == 0)
      break;
  }
  int bad = ferror(f);
  fclose(f);
  if (!bad)
    LLVMFuzzerTestOneInput(buf, n);
  free(buf);
  return bad ? -1 : 0;
}

static int run_path(const char *path, int *count) {
  struct stat st;
  if (stat(path, &st) != 0)
    return -1;
  if (!S_ISDIR(st.st_mode)) {
    (*count)++;
    return run_file(path);
  }
  DIR *d = opendir(path);
  if (d == NULL)
    return -1;
  int rc = 0;
  struct dirent *e;
  while (rc == 0 && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    char sub[4096];
    if ((size_t)snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) >=
        sizeof sub) {
      rc = -1;
      break;
    }
    rc = run_path(sub, count);
  }
  closedir(d);
  return rc;
}

int main(int argc, char **argv) {
  if (LLVMFuzzerInitialize)
    LLVMFuzzerInitialize(&argc, &argv);
  int count = 0;
  for (int i = 1; i < argc; i++)
    if (run_path(argv[i], &count) != 0) {
      fprintf(stderr, "%s: cannot read %s\n", argv[0], argv[i]);
      return 1;
    }
  printf("%s: %d inputs replayed\n", argv[0], count);
  return count > 0 ? 0 : 1;
}
