/* SPDX-License-Identifier: MIT */
/*
 * Minimal test harness: EC_CHECK counts, ec_test_done prints the closing
 * line "N passed, N failed[, N skipped]" and returns the exit code
 * (0 ok, 1 failures, 77 everything skipped).
 */
#ifndef EC_TEST_H
#define EC_TEST_H

#include <stdio.h>

static int ec_test_passed, ec_test_failed, ec_test_skipped;

#define EC_CHECK(cond, ...)                                                   \
	do {                                                                  \
		if (cond) {                                                   \
			ec_test_passed++;                                     \
		} else {                                                      \
			ec_test_failed++;                                     \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);  \
			fprintf(stderr, __VA_ARGS__);                         \
			fputc('\n', stderr);                                  \
		}                                                             \
	} while (0)

#define EC_SKIP(...)                                                          \
	do {                                                                  \
		ec_test_skipped++;                                            \
		fprintf(stderr, "SKIP: ");                                    \
		fprintf(stderr, __VA_ARGS__);                                 \
		fputc('\n', stderr);                                          \
	} while (0)

static inline int ec_test_done(void)
{
	if (ec_test_skipped)
		printf("%d passed, %d failed, %d skipped\n", ec_test_passed,
		       ec_test_failed, ec_test_skipped);
	else
		printf("%d passed, %d failed\n", ec_test_passed,
		       ec_test_failed);
	if (ec_test_failed)
		return 1;
	if (!ec_test_passed && ec_test_skipped)
		return 77;
	return 0;
}

#endif
