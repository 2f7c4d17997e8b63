// SPDX-License-Identifier: MIT
/* Policy registry and instance lifetime (the ops tables live one per file). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ec_error.h"
#include "ec_policy.h"

static const struct ec_policy_ops *const policies[] = {
	&ec_policy_lru,
	&ec_policy_lfu,
	&ec_policy_static,
	&ec_policy_belady,
};

const struct ec_policy_ops *ec_policy_find(const char *name)
{
	size_t i;

	for (i = 0; name && i < sizeof(policies) / sizeof(policies[0]); i++)
		if (!strcmp(name, policies[i]->name))
			return policies[i];
	return NULL;
}

const char *ec_policy_names(void)
{
	return "lru, lfu, static, belady";
}

int ec_policy_create(const struct ec_policy_ops *ops,
		     const struct ec_policy_config *cfg,
		     struct ec_policy **out)
{
	struct ec_policy *p;
	int ret;

	*out = NULL;
	if (!cfg->n_keys || !cfg->capacity)
		return ec_err(-EC_EINVAL, "policy %s: %u keys, capacity %u",
			      ops->name, cfg->n_keys, cfg->capacity);
	if (ops->offline && !cfg->next_use)
		return ec_err(-EC_EINVAL, "policy %s needs the future trace: "
			      "it only runs in the replay simulator",
			      ops->name);
	p = calloc(1, sizeof(*p));
	if (!p)
		return ec_err(-ENOMEM, "out of memory");
	p->ops = ops;
	ret = ops->init(p, cfg);
	if (ret < 0) {
		ops->fini(p);	/* fini copes with a partial init */
		free(p);
		return ec_err(ret, "policy %s: %s", ops->name,
			      ret == -ENOMEM ? "out of memory" :
			      "bad configuration");
	}
	*out = p;
	return 0;
}

void ec_policy_free(struct ec_policy *p)
{
	if (!p)
		return;
	p->ops->fini(p);
	free(p);
}
