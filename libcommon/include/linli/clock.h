/*
 * clock.h - wall-clock time in UTC milliseconds, injectable for tests.
 *
 * Production reads CLOCK_REALTIME. Tests inject time in-process with
 * linli_clock_set_fake(), or across processes with $LINLI_FAKE_CLOCK_FILE:
 * a file holding a decimal millisecond timestamp, re-read on every call, so
 * a test can move a running consumer's clock forward.
 */
#ifndef LINLI_CLOCK_H
#define LINLI_CLOCK_H

#include <stdint.h>

int64_t linli_clock_now_ms(void);
/* Monotonic milliseconds for timeouts and intervals (never faked). */
int64_t linli_clock_mono_ms(void);
/* Fix the clock at ms (>= 0); a negative value returns to the real clock. */
void linli_clock_set_fake(int64_t ms);
/* Move a fake clock forward by delta ms (no-op on the real clock). */
void linli_clock_advance(int64_t delta_ms);

#endif
