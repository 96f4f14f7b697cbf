/* libFuzzer target: vhdkitd's JSON door past HTTP — the method named by
 * the URL's CLASS/METHOD, the body parsed as the door parses it
 * (daemon/http.c: jansson, duplicates refused) and checked against the
 * method table (daemon/params.c: params_check, and for a job method
 * params_precheck, which resolves paths against the allowed roots; no
 * root is configured here, so every path must be refused).  The input
 * is "CLASS/METHOD", a newline, then the body.  Every input must end in
 * an answer with a ReturnValue, and a refusal in a sentence. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "daemon-stub.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  const uint8_t *nl = memchr (data, '\n', size);
  if (!nl || nl - data > 255) return 0;
  char url[256];
  memcpy (url, data, (size_t) (nl - data));
  url[nl - data] = 0;
  char *slash = strchr (url, '/');
  if (!slash) return 0;
  *slash = 0;
  const struct method *m = method_find (url, slash + 1);
  if (!m) return 0;

  json_error_t err;
  json_t *in = json_loadb ((const char *) nl + 1, size - (size_t) (nl - data) - 1, JSON_REJECT_DUPLICATES, &err);
  if (!in) return 0;
  struct call c = { .m = m };
  uint32_t rc = params_check (&c, in);
  if (rc == 0 && m->job) {
    rc = params_precheck (&c, in);
    if (rc == 0) abort ();       /* no root: a job's path cannot pass */
  }
  if (rc != 0 && !c.error[0]) abort ();   /* a refusal names its cause */
  json_t *res = dispatch (m, in);
  char *text = json_dumps (res, JSON_COMPACT);
  if (!text) abort ();
  free (text);
  json_decref (res);
  json_decref (in);
  return 0;
}
