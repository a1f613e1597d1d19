// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vhost-blk: the tracepoints of trace.h, instantiated once here.
 */
#define CREATE_TRACE_POINTS
#include "trace.h"
