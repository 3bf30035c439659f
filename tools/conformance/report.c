/* SPDX-License-Identifier: GPL-3.0-only */
/* prd-conformance: runs a test table and reports each result as TAP (for
 * prove) or as plain lines, a summary per spec file, and JUnit XML. */
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cf.h"

void cf_fail(cf_result *r, const char *fmt, ...) {
  va_list ap;
  r->v = CF_FAIL;
  va_start(ap, fmt);
  vsnprintf(r->diag, sizeof(r->diag), fmt, ap);
  va_end(ap);
}

void cf_skip(cf_result *r, const char *fmt, ...) {
  va_list ap;
  r->v = CF_SKIP;
  va_start(ap, fmt);
  vsnprintf(r->diag, sizeof(r->diag), fmt, ap);
  va_end(ap);
}

static void xml_escape(FILE *f, const char *s) {
  for (; *s; ++s) {
    switch (*s) {
    case '<':
      fputs("&lt;", f);
      break;
    case '>':
      fputs("&gt;", f);
      break;
    case '&':
      fputs("&amp;", f);
      break;
    case '"':
      fputs("&quot;", f);
      break;
    default:
      if ((unsigned char)*s >= 0x20 || *s == '\n') {
        fputc(*s, f);
      }
    }
  }
}

typedef struct outcome {
  const cf_test *t;
  cf_result r;
  const char *todo; /* a known deviation of the implementation under test */
  double secs;
} outcome;

static const char *known_why(const cf_known *known, size_t nknown,
                             const char *id) {
  for (size_t i = 0; i < nknown; ++i) {
    if (strcmp(known[i].id, id) == 0) {
      return known[i].why;
    }
  }
  return NULL;
}

static int write_junit(const char *path, const char *suite, outcome *o,
                       size_t n) {
  FILE *f = fopen(path, "w");
  if (f == NULL) {
    fprintf(stderr, "prd-conformance: cannot write '%s'\n", path);
    return -1;
  }
  fprintf(f,
          "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites "
          "name=\"prd-conformance %s\">\n",
          suite);
  for (size_t i = 0; i < n; ++i) {
    size_t tests = 0, fails = 0, skips = 0;
    int first = 1;
    for (size_t k = 0; k < i; ++k) {
      if (strcmp(o[k].t->file, o[i].t->file) == 0) {
        first = 0;
      }
    }
    if (!first) {
      continue;
    }
    for (size_t k = i; k < n; ++k) {
      if (strcmp(o[k].t->file, o[i].t->file) == 0) {
        ++tests;
        fails += o[k].r.v == CF_FAIL && !o[k].todo;
        skips += o[k].r.v == CF_SKIP || (o[k].r.v == CF_FAIL && o[k].todo);
      }
    }
    fprintf(f,
            "  <testsuite name=\"%s %s\" tests=\"%zu\" failures=\"%zu\" "
            "skipped=\"%zu\">\n",
            suite, o[i].t->file, tests, fails, skips);
    for (size_t k = i; k < n; ++k) {
      if (strcmp(o[k].t->file, o[i].t->file) != 0) {
        continue;
      }
      fprintf(f, "    <testcase classname=\"%s\" name=\"", o[k].t->file);
      xml_escape(f, o[k].t->sec);
      fputs(" ", f);
      xml_escape(f, o[k].t->id);
      fputs(": ", f);
      xml_escape(f, o[k].t->title);
      fprintf(f, "\" time=\"%.3f\">", o[k].secs);
      if (o[k].r.v == CF_FAIL && !o[k].todo) {
        fputs("<failure message=\"", f);
        xml_escape(f, o[k].r.diag);
        fputs("\"/>", f);
      } else if (o[k].r.v == CF_SKIP || o[k].todo) {
        fputs("<skipped message=\"", f);
        xml_escape(f, o[k].todo ? o[k].todo : o[k].r.diag);
        fputs("\"/>", f);
      }
      fputs("</testcase>\n", f);
    }
    fputs("  </testsuite>\n", f);
  }
  fputs("</testsuites>\n", f);
  return fclose(f) == 0 ? 0 : -1;
}

int cf_report_run(const cf_test *tests, size_t ntests, const char *filter,
                  int tap, const char *junit, const cf_known *known,
                  size_t nknown, const char *suite) {
  outcome *o = calloc(ntests, sizeof(*o));
  size_t n = 0, fails = 0;
  int rc;

  if (o == NULL) {
    return 1;
  }
  if (tap) {
    printf("TAP version 13\n");
  }
  for (size_t i = 0; i < ntests; ++i) {
    const cf_test *t = &tests[i];
    outcome *x;
    uint64_t t0;
    if (filter && fnmatch(filter, t->id, 0) != 0) {
      continue;
    }
    x = &o[n++];
    x->t = t;
    x->todo = known_why(known, nknown, t->id);
    x->r.v = CF_PASS;
    if (t->needs_tcp && !cf_opt.have_tcp) {
      cf_skip(&x->r, "needs --tcp (the server's user port)");
    } else {
      t0 = cf_now();
      t->fn(&x->r, t->arg);
      x->secs = (double)(cf_now() - t0) / 1e9;
    }
    if (x->r.v == CF_FAIL && !x->todo) {
      ++fails;
    }
    if (tap) {
      printf("%s %zu - %s %s: %s (%s) [%s]",
             x->r.v == CF_FAIL ? "not ok" : "ok", n, t->file, t->sec, t->title,
             t->level, t->id);
      if (x->r.v == CF_SKIP) {
        printf(" # SKIP %s", x->r.diag);
      } else if (x->todo) {
        printf(" # TODO %s", x->todo);
      }
      printf("\n");
      if (x->r.v == CF_FAIL) {
        printf("#   %s\n", x->r.diag);
      }
    } else {
      printf("%-4s %-28s %s %s: %s\n",
             x->r.v == CF_PASS   ? "PASS"
             : x->r.v == CF_SKIP ? "SKIP"
             : x->todo           ? "TODO"
                                 : "FAIL",
             t->id, t->file, t->sec, t->title);
      if (x->r.v != CF_PASS) {
        printf("     %s\n", x->todo && x->r.v == CF_FAIL ? x->todo : x->r.diag);
      }
    }
    fflush(stdout);
  }
  if (tap) {
    printf("1..%zu\n", n);
  }
  /* The summary per spec file. */
  for (size_t i = 0; i < n; ++i) {
    size_t pass = 0, fail = 0, skip = 0, todo = 0;
    int first = 1;
    for (size_t k = 0; k < i; ++k) {
      if (strcmp(o[k].t->file, o[i].t->file) == 0) {
        first = 0;
      }
    }
    if (!first) {
      continue;
    }
    for (size_t k = i; k < n; ++k) {
      if (strcmp(o[k].t->file, o[i].t->file) != 0) {
        continue;
      }
      if (o[k].r.v == CF_SKIP) {
        ++skip;
      } else if (o[k].r.v == CF_FAIL && o[k].todo) {
        ++todo;
      } else if (o[k].r.v == CF_FAIL) {
        ++fail;
      } else {
        ++pass;
      }
    }
    printf("# %-28s %3zu passed, %zu failed, %zu known deviations, %zu "
           "skipped\n",
           o[i].t->file, pass, fail, todo, skip);
  }
  printf("# prd-conformance %s: %zu tests, %zu failed\n", suite, n, fails);
  fflush(stdout);
  rc = fails ? 1 : 0;
  if (junit && write_junit(junit, suite, o, n) != 0) {
    rc = 2;
  }
  free(o);
  return rc;
}
