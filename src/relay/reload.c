/* SPDX-License-Identifier: GPL-3.0-only */
/* What a reload (SIGHUP, README "Reload") changes in the services: the
 * plan that maps the new services onto the running ones' slots, which both
 * roles apply. */
#include <string.h>

#include "../common/log.h"

#include "relay_int.h"

/* svc_moved: the server listens elsewhere (address, first port, ports). */
static int svc_moved(const prd_relay_service *a, const prd_relay_service *b) {
  return a->listen_addr.u.sa.sa_family != b->listen_addr.u.sa.sa_family ||
         memcmp(&a->listen_addr.u, &b->listen_addr.u,
                sizeof(a->listen_addr.u)) != 0 ||
         a->nports != b->nports;
}

/* svc_updated: something else differs that may change in place. */
static int svc_updated(const prd_relay_service *a, const prd_relay_service *b) {
  return strcmp(a->host, b->host) != 0 || a->port != b->port ||
         a->ndest != b->ndest ||
         memcmp(a->dest, b->dest, sizeof(a->dest[0]) * a->ndest) != 0 ||
         a->proxy_protocol != b->proxy_protocol || a->nallow != b->nallow ||
         memcmp(a->allow, b->allow, sizeof(a->allow[0]) * a->nallow) != 0 ||
         a->route != b->route || strcmp(a->route_name, b->route_name) != 0;
}

void svc_plan_make(svc_plan *p, const prd_relay_service *old, size_t nold,
                   uint32_t gone, const uint64_t *active,
                   const prd_relay_service *nw, size_t nnew) {
  uint32_t taken = 0; /* running slots kept or given to a new service */

  memset(p, 0, sizeof(*p));
  p->nslots = nold;
  for (size_t i = 0; i < nnew && i < PRD_RELAY_MAX_SERVICES; ++i) {
    p->slot[i] = -1;
    for (size_t s = 0; s < nold; ++s) {
      if (((gone | taken) >> s) & 1u) {
        continue;
      }
      if (strcmp(old[s].name, nw[i].name) == 0) {
        p->slot[i] = (int)s;
        taken |= 1u << s;
        p->change[i] = svc_moved(&old[s], &nw[i])     ? SVC_MOVED
                       : svc_updated(&old[s], &nw[i]) ? SVC_UPDATED
                                                      : SVC_SAME;
        p->nchanged += p->change[i] != SVC_SAME;
        break;
      }
    }
  }
  for (size_t s = 0; s < nold; ++s) {
    if (!(((gone | taken) >> s) & 1u)) {
      p->removed |= 1u << s;
      ++p->nremoved;
    }
  }
  /* New services go after the running ones, then into the slots of
   * removed services that no connection uses any more: a slot still in
   * use keeps its name for that connection's logs and metrics. */
  for (size_t i = 0; i < nnew && i < PRD_RELAY_MAX_SERVICES; ++i) {
    if (p->slot[i] >= 0) {
      continue;
    }
    p->change[i] = SVC_ADDED;
    ++p->nadded;
    if (p->nslots < PRD_RELAY_MAX_SERVICES) {
      p->slot[i] = (int)p->nslots++;
      taken |= 1u << p->slot[i];
      continue;
    }
    for (size_t s = 0; s < nold; ++s) {
      if (!((taken >> s) & 1u) && (((gone | p->removed) >> s) & 1u) &&
          (active == NULL || active[s] == 0)) {
        p->slot[i] = (int)s;
        taken |= 1u << s;
        break;
      }
    }
  }
}

/* svc_same_udp: |a| and |b| are the same UDP service in every field a
 * reload could change. */
static int svc_same_udp(const prd_relay_service *a,
                        const prd_relay_service *b) {
  return strcmp(a->name, b->name) == 0 && !svc_moved(a, b) &&
         !svc_updated(a, b) && a->udp_timeout_ns == b->udp_timeout_ns &&
         a->udp_stream_timeout_ns == b->udp_stream_timeout_ns;
}

int svc_keep_udp(const prd_relay_service *old, size_t nold, uint32_t gone,
                 prd_relay_service *nw, size_t *nnew) {
  size_t n = 0, nudp_old = 0, nudp_new = 0, matched = 0, shadowed = 0;

  for (size_t i = 0; i < *nnew; ++i) {
    if (!nw[i].udp) {
      continue;
    }
    ++nudp_new;
    for (size_t s = 0; s < nold; ++s) {
      if (!((gone >> s) & 1u) && old[s].udp && svc_same_udp(&old[s], &nw[i])) {
        ++matched;
        break;
      }
    }
  }
  for (size_t i = 0; i < *nnew; ++i) {
    int udp_name = 0;
    if (nw[i].udp) {
      continue;
    }
    /* A TCP service named as a running UDP one: that UDP service changed
     * (restart to apply); two services of one name would share its slot. */
    for (size_t s = 0; s < nold && !udp_name; ++s) {
      udp_name = !((gone >> s) & 1u) && old[s].udp &&
                 strcmp(old[s].name, nw[i].name) == 0;
    }
    if (udp_name) {
      ++shadowed;
      continue;
    }
    nw[n++] = nw[i];
  }
  for (size_t s = 0; s < nold; ++s) {
    if (((gone >> s) & 1u) || !old[s].udp) {
      continue;
    }
    ++nudp_old;
    if (n == PRD_RELAY_MAX_SERVICES) {
      return -1;
    }
    nw[n++] = old[s];
  }
  *nnew = n;
  return matched != nudp_new || nudp_new != nudp_old || shadowed > 0;
}

int reload_keep_udp(relay *r, prd_relay_config *next) {
  int changed = svc_keep_udp(r->cfg->services, r->cfg->nservices, r->svc_gone,
                             next->services, &next->nservices);
  if (changed < 0) {
    PRD_LOG_ERROR("reload refused: more than %d services with the running "
                  "UDP ones; the running configuration stays",
                  PRD_RELAY_MAX_SERVICES);
    return -1;
  }
  WARN_RESTART(changed, "a UDP service (--service NAME=udp:...)");
  return 0;
}
