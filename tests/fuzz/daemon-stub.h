/* What the daemon fuzz targets (fuzz-daemon-*.c) put in place of
 * daemon/http.c and daemon/main.c: the decoders and encoders under test
 * are the real ones, while a call that gets through them does nothing
 * (no disk is touched) and answers every out-parameter of the method
 * table with a value of its type, so that the encoders run too. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "vhdkitd.h"

void
vlog (const char *fmt, ...)
{
  (void) fmt;                    /* quiet: the fuzzer's output is its own */
}

bool
access_peer_ok (unsigned uid, unsigned gid)
{
  (void) uid; (void) gid;
  return true;
}

static json_t *
sample (const struct param *p)
{
  json_t *v;
  if (p->type == CIM_STRING && p->klass) {
    v = json_object ();
    json_object_set_new (v, "__CLASS", json_string (p->klass));
  }
  else
    switch (p->type) {
    case CIM_BOOLEAN: v = json_true (); break;
    case CIM_UINT16: case CIM_UINT32: case CIM_UINT64: v = json_integer (4096); break;
    case CIM_DATETIME: v = json_string ("20261207120000.000000+000"); break;
    case CIM_REFERENCE: v = json_string ("root/virtualization/v2:Msvm_ConcreteJob.InstanceID=\"j-1\""); break;
    default: v = json_string ("a <b> & \"c\""); break;
    }
  if (p->flags & P_ARRAY) {
    json_t *a = json_array ();
    json_array_append_new (a, v);
    json_array_append (a, v);
    return a;
  }
  return v;
}

json_t *
dispatch (const struct method *m, json_t *in)
{
  struct call c = { .m = m };
  uint32_t rc = params_check (&c, in);
  json_t *res = json_object ();
  json_object_set_new (res, "ReturnValue", json_integer (rc));
  if (rc == 0)
    for (const struct param *p = m->params; p->name; p++)
      if ((p->flags & P_OUT) && strcmp (p->name, "Job") != 0)
        json_object_set_new (res, p->name, sample (p));
  json_object_set_new (res, "Job", json_null ());
  json_object_set_new (res, "ErrorDescription", json_text (rc ? c.error : ""));
  return res;
}
