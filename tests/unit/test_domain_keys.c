/*
 * test_domain_keys.c - the Redis key names of libdomain: the reserver's
 * (domain/reserver_keys.h: every builder's output, buffers too small and
 * bad warehouses refused, scripts/lib.sh naming the same keys) and the
 * notifier's (domain/notifier_keys.h).
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/groupbuy_state.h"
#include "domain/notifier_keys.h"
#include "domain/reserver_keys.h"
#include "domain/wave.h"
#include "linli/error.h"
#include "linli_test.h"

static void test_builders(void) {
  char buf[128];
  CU_ASSERT_EQUAL(dom_rsv_tag(buf, sizeof buf, "W1"), LINLI_OK);
  CU_ASSERT_STRING_EQUAL(buf, "w:W1");
  CU_ASSERT_STRING_EQUAL(dom_rsv_tag_warehouse(buf), "W1");
  CU_ASSERT_PTR_NULL(dom_rsv_tag_warehouse("c:W1"));
  CU_ASSERT_PTR_NULL(dom_rsv_tag_warehouse(NULL));
  CU_ASSERT_EQUAL(dom_rsv_key(buf, sizeof buf, "W1", DOM_RSV_AVAIL), LINLI_OK);
  CU_ASSERT_STRING_EQUAL(buf, "{w:W1}:avail");
  CU_ASSERT_EQUAL(dom_rsv_order_key(buf, sizeof buf, "W1", "o-7"), LINLI_OK);
  CU_ASSERT_STRING_EQUAL(buf, "{w:W1}:o:o-7");
  CU_ASSERT_EQUAL(dom_rsv_order_wh_key(buf, sizeof buf, "o-7"), LINLI_OK);
  CU_ASSERT_STRING_EQUAL(buf, "linli:rsv:ow:o-7");
  CU_ASSERT_EQUAL(dom_rsv_expiry_key(buf, sizeof buf, 5), LINLI_OK);
  CU_ASSERT_STRING_EQUAL(buf, "linli:rsv:exp:5");
  CU_ASSERT_EQUAL(dom_rsv_expiry_ann_key(buf, sizeof buf, 5), LINLI_OK);
  CU_ASSERT_STRING_EQUAL(buf, "linli:rsv:exp:5:ann");
  CU_ASSERT_STRING_EQUAL(DOM_RSV_KEY_CATALOG, "linli:catalog");
}

static void test_refused(void) {
  char small[8];
  CU_ASSERT_EQUAL(dom_rsv_order_wh_key(small, sizeof small, "o-7"),
                  LINLI_ERR_TOOBIG);
  CU_ASSERT_EQUAL(dom_rsv_key(small, sizeof small, "W1", DOM_RSV_AVAIL),
                  LINLI_ERR_TOOBIG);
  CU_ASSERT_EQUAL(dom_rsv_expiry_ann_key(small, sizeof small, 12345),
                  LINLI_ERR_TOOBIG);
  char buf[128];
  CU_ASSERT_EQUAL(dom_rsv_key(buf, sizeof buf, "", DOM_RSV_AVAIL),
                  LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL(dom_rsv_key(buf, sizeof buf, "a}b", DOM_RSV_AVAIL),
                  LINLI_ERR_INVALID);
}

/* scripts/lib.sh spells the same keys (its copy is checked here). */
static void test_scripts_agree(void) {
  const char *src = getenv("LINLI_SOURCE_DIR");
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "bash -c 'set -euo pipefail; source \"%s/scripts/lib.sh\"; "
           "echo \"$LINLI_RSV_CATALOG $LINLI_RSV_ORDER_WH $LINLI_RSV_EXPIRY "
           "$(linli_rsv_key W1 avail) $(linli_gb_key C1 c) "
           "$(linli_wave_key W1 st) $(linli_wave_key W1 q:d) "
           "$(linli_wave_key W1 seen:x)\"'",
           src ? src : ".");
  FILE *p = popen(cmd, "r");
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  char line[512] = "";
  CU_ASSERT_PTR_NOT_NULL(fgets(line, sizeof line, p));
  CU_ASSERT_EQUAL(pclose(p), 0);
  line[strcspn(line, "\n")] = '\0';
  char key[128], gb[64], st[64], q[64], seen[64], want[512];
  dom_rsv_key(key, sizeof key, "W1", DOM_RSV_AVAIL);
  snprintf(gb, sizeof gb, DOM_GB_KEY_CAMPAIGN_FMT, "C1");
  snprintf(st, sizeof st, DOM_WAVE_KEY_STATE_FMT, "W1");
  snprintf(q, sizeof q, DOM_WAVE_KEY_QUEUE_FMT, "W1", DOM_WAVE_DAILY);
  snprintf(seen, sizeof seen, DOM_WAVE_KEY_SEEN_FMT, "W1", DOM_WAVE_EXPRESS);
  snprintf(want, sizeof want, "%s %s %s %s %s %s %s %s", DOM_RSV_KEY_CATALOG,
           DOM_RSV_KEY_ORDER_WH, DOM_RSV_KEY_EXPIRY, key, gb, st, q, seen);
  CU_ASSERT_STRING_EQUAL(line, want);
}

static void test_notifier_keys(void) {
  char buf[64], small[6];
  CU_ASSERT_EQUAL(dom_nt_tag(buf, sizeof buf, "nt", 3), LINLI_OK);
  CU_ASSERT_STRING_EQUAL(buf, "nt:3");
  CU_ASSERT_EQUAL(dom_nt_key(buf, sizeof buf, "nt", 3, DOM_NT_QUEUE), LINLI_OK);
  CU_ASSERT_STRING_EQUAL(buf, "{nt:3}:q");
  CU_ASSERT_EQUAL(dom_nt_key(buf, sizeof buf, "nt", 0, DOM_NT_REMINDERS),
                  LINLI_OK);
  CU_ASSERT_STRING_EQUAL(buf, "{nt:0}:rem");
  CU_ASSERT_EQUAL(dom_nt_key(small, sizeof small, "nt", 3, DOM_NT_QUEUE),
                  LINLI_ERR_TOOBIG);
  CU_ASSERT_EQUAL(dom_nt_key(buf, sizeof buf, "n{t", 3, DOM_NT_QUEUE),
                  LINLI_ERR_INVALID);
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("domain_keys", NULL, NULL);
  if (!s)
    return -1;
  CU_add_test(s, "builders", test_builders);
  CU_add_test(s, "refused", test_refused);
  CU_add_test(s, "scripts agree", test_scripts_agree);
  CU_add_test(s, "notifier keys", test_notifier_keys);
  return CU_get_error() == CUE_SUCCESS ? 0 : -1;
}
