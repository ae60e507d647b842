/*
 * test_domain_keys.c - the reserver's Redis key names (domain/
 * reserver_keys.h): every builder's output, buffers too small and bad
 * warehouses refused, and scripts/lib.sh naming the same keys.
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/reserver_keys.h"
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
           "$(linli_rsv_key W1 avail)\"'",
           src ? src : ".");
  FILE *p = popen(cmd, "r");
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  char line[512] = "";
  CU_ASSERT_PTR_NOT_NULL(fgets(line, sizeof line, p));
  CU_ASSERT_EQUAL(pclose(p), 0);
  line[strcspn(line, "\n")] = '\0';
  char key[128], want[512];
  dom_rsv_key(key, sizeof key, "W1", DOM_RSV_AVAIL);
  snprintf(want, sizeof want, "%s %s %s %s", DOM_RSV_KEY_CATALOG,
           DOM_RSV_KEY_ORDER_WH, DOM_RSV_KEY_EXPIRY, key);
  CU_ASSERT_STRING_EQUAL(line, want);
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("domain_keys", NULL, NULL);
  if (!s)
    return -1;
  CU_add_test(s, "builders", test_builders);
  CU_add_test(s, "refused", test_refused);
  CU_add_test(s, "scripts agree", test_scripts_agree);
  return CU_get_error() == CUE_SUCCESS ? 0 : -1;
}
