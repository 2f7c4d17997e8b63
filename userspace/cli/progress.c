// SPDX-License-Identifier: MIT
/* A stderr progress bar that appears only when the work takes over 1 s. */
#include <stdio.h>
#include <unistd.h>

#include "cli.h"
#include "ec_generate.h"

void ec_progress_start(struct ec_progress *p, const char *what)
{
	p->what = what;
	p->t0 = ec_now();
	p->shown = 0;
	p->tty = isatty(STDERR_FILENO);
}

void ec_progress_update(struct ec_progress *p, uint64_t done, uint64_t total)
{
	double el = ec_now() - p->t0;
	int i, w = 30, fill;

	if (el < 1.0 || !total)
		return;
	if (!p->tty && p->shown && done < total)
		return;	/* not a terminal: one line at the start, one at end */
	fill = (int)(w * (double)done / total);
	fprintf(stderr, "%s%s [", p->tty ? "\r" : "", p->what);
	for (i = 0; i < w; i++)
		fputc(i < fill ? '#' : '.', stderr);
	fprintf(stderr, "] %3.0f%% %.1fs%s", 100.0 * done / total, el,
		p->tty ? "" : "\n");
	p->shown = 1;
}

void ec_progress_done(struct ec_progress *p)
{
	if (p->shown && p->tty)
		fputc('\n', stderr);
}
