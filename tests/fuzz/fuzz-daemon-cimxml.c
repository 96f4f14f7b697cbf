/* libFuzzer target: vhdkitd's CIM-XML door (daemon/cimxml.c) on any
 * request body.  The input is the CIMMethod header's value, a newline,
 * then the body; CIMOperation is MethodCall.  Every input must get an
 * answer (a CIM-XML document with status 200, or a 4xx/5xx with a
 * CIMError) without a crash, a leak or a sanitizer report.  The call a
 * request names is checked against the method table by the real
 * params_check and then answered by daemon-stub.h, never run. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "daemon-stub.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static int ready;
  if (!ready) {
    classes_init ();
    cimxml_init ();
    ready = 1;
  }
  const uint8_t *nl = memchr (data, '\n', size);
  size_t hl = nl ? (size_t) (nl - data) : size;
  char *method = malloc (hl + 1);
  if (!method) return 0;
  memcpy (method, data, hl);
  method[hl] = 0;
  const char *body = nl ? (const char *) nl + 1 : "";
  size_t len = nl ? size - hl - 1 : 0;
  /* The HTTP door hands over a body that need not end in a NUL. */
  char *copy = malloc (len ? len : 1);
  if (!copy) { free (method); return 0; }
  memcpy (copy, body, len);

  struct cimxml_exchange x = {
    .operation = "MethodCall", .method = method, .protocol_version = "1.0",
    .body = copy, .len = len,
  };
  cimxml_serve (&x);
  if (x.status == 200 && x.reply && x.reply_len < 5)
    abort ();                    /* a 200 carries a document */
  if (x.status != 200 && !x.cimerror && x.status != 413)
    abort ();                    /* every refusal names its CIMError */
  free (x.reply);
  free (copy);
  free (method);
  return 0;
}
