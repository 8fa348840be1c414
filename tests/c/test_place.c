/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rt_place_nt() (csrc/util.c): the non-temporal placement copy must equal
 * memcpy() for every length and every source/destination alignment, and
 * must not write outside [dst, dst + n).  Run by tests/test_place.py.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int main(void)
{
	enum { MAX = 4096 + 200, GUARD = 64 };
	static uint8_t src[MAX + 64], dst[MAX + 64 + 2 * GUARD], ref[sizeof(dst)];
	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(i * 131 + 7);
	static const size_t lens[] = { 0, 1, 15, 16, 17, 63, 64, 65, 255, 256, 257, 300,
				       1000, 4095, 4096, 4097, MAX };
	int checked = 0;
	for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++)
		for (size_t so = 0; so < 17; so++)
			for (size_t doff = 0; doff < 17; doff++) {
				size_t n = lens[li];
				memset(dst, 0xA5, sizeof(dst));
				memset(ref, 0xA5, sizeof(ref));
				rt_place_nt(dst + GUARD + doff, src + so, n);
				memcpy(ref + GUARD + doff, src + so, n);
				if (memcmp(dst, ref, sizeof(dst)) != 0) {
					fprintf(stderr, "rt_place_nt differs from memcpy: len %zu, "
						"src offset %zu, dst offset %zu\n", n, so, doff);
					return 1;
				}
				checked++;
			}
	printf("ok %d cases\n", checked);
	return 0;
}
