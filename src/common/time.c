/* SPDX-License-Identifier: GPL-3.0-only */
#include "time.h"

prd_tstamp (*prd_now_hook)(void);
