/*
 * cunit_main.c - the one main() of every CUnit test runner.
 *
 * Each test file defines linli_test_register() to add its suites. The runner
 * exits non-zero when any assertion failed: CUnit's usual
 * `return CU_get_error();` exits 0 on failed assertions.
 */
#include <CUnit/Basic.h>
#include <stdio.h>

#include "linli_test.h"

int main(void) {
  if (CU_initialize_registry() != CUE_SUCCESS) {
    fprintf(stderr, "CUnit: %s\n", CU_get_error_msg());
    return 2;
  }
  if (linli_test_register() != 0 || CU_get_error() != CUE_SUCCESS) {
    fprintf(stderr, "test registration failed: %s\n", CU_get_error_msg());
    CU_cleanup_registry();
    return 2;
  }
  CU_basic_set_mode(CU_BRM_VERBOSE);
  CU_basic_run_tests();
  unsigned failures = CU_get_number_of_failures();
  unsigned run = CU_get_number_of_tests_run();
  int err = CU_get_error();
  CU_cleanup_registry();
  if (run == 0) {
    fprintf(stderr, "no test ran\n");
    return 1;
  }
  return (failures > 0 || err != CUE_SUCCESS) ? 1 : 0;
}
