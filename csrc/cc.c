// SPDX-License-Identifier: Apache-2.0
/*
 * Congestion-control registry: maps a configuration name to an ops table.
 */
#include <string.h>

#include "cc.h"

/* Every algorithm built into the library; the first one is the default. */
static const struct rt_cc_ops *const cc_algos[] = {
	&rt_cc_swift,
	&rt_cc_none,
};

/**
 * rt_cc_find() - look a congestion-control algorithm up by name.
 * @name: exact, case-sensitive name ("swift", "none"); may be NULL.
 *
 * Return: the algorithm's ops table (static storage, never freed), or
 * NULL when @name is NULL or names no built-in algorithm.  Choosing a
 * default for an unset name is the caller's job.
 */
const struct rt_cc_ops *rt_cc_find(const char *name)
{
	size_t i;

	if (!name)
		return NULL;
	for (i = 0; i < sizeof(cc_algos) / sizeof(cc_algos[0]); i++)
		if (strcmp(cc_algos[i]->name, name) == 0)
			return cc_algos[i];
	return NULL;
}
