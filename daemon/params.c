/* Checking a call's in-parameters against the method table.
 *
 * Every in-parameter must be present (null is allowed where Microsoft
 * allows a Null: TargetSnapshotId, TimeoutPeriod, AdditionalInformation,
 * SnapshotIds, and our Granularity); no
 * other member may be.  A value of the wrong JSON type is 32776
 * (Incorrect data type), a missing or unknown parameter 32773 (Invalid
 * parameter), each with a sentence naming the parameter.
 */
#include <inttypes.h>
#include <string.h>

#include "vhdkitd.h"

static bool
nullable (const struct param *p)
{
  static const char *const names[] = {
    "TargetSnapshotId", "TimeoutPeriod", "Granularity", "AdditionalInformation", "SnapshotIds",
  };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp (p->name, names[i]) == 0) return true;
  return false;
}

static const char *
want (const struct param *p)
{
  switch (p->type) {
  case CIM_STRING: return p->klass ? "an object (an embedded instance)" : "a string";
  case CIM_BOOLEAN: return "true or false";
  case CIM_UINT16: return "an integer from 0 to 65535";
  case CIM_UINT32: return "an integer from 0 to 4294967295";
  case CIM_UINT64: return "a non-negative integer";
  case CIM_DATETIME: return "a CIM datetime string";
  case CIM_REFERENCE: return "an object path string";
  }
  return "?";
}

static bool
type_ok (const struct param *p, json_t *v)
{
  switch (p->type) {
  case CIM_STRING:
    if (p->klass) {
      if (!json_is_object (v)) return false;
      json_t *k = json_object_get (v, "__CLASS");
      return k == NULL || (json_is_string (k) && strcmp (json_string_value (k), p->klass) == 0);
    }
    return json_is_string (v);
  case CIM_BOOLEAN: return json_is_boolean (v);
  case CIM_UINT16: return json_is_integer (v) && json_integer_value (v) >= 0 && json_integer_value (v) <= 65535;
  case CIM_UINT32: return json_is_integer (v) && json_integer_value (v) >= 0 && json_integer_value (v) <= 4294967295LL;
  case CIM_UINT64: return json_is_integer (v) && json_integer_value (v) >= 0;
  case CIM_DATETIME: return json_is_string (v) && strlen (json_string_value (v)) == 25;
  case CIM_REFERENCE: return json_is_string (v);
  }
  return false;
}

uint32_t
params_check (struct call *c, json_t *in)
{
  const struct method *m = c->m;
  if (!json_is_object (in))
    return call_fail (c, VHDKIT_RC_INCORRECT_TYPE, "%s.%s: the in-parameters must be one JSON object", m->klass, m->name);
  const char *key;
  json_t *v;
  json_object_foreach (in, key, v) {
    const struct param *p;
    for (p = m->params; p->name; p++)
      if ((p->flags & P_IN) && strcmp (p->name, key) == 0) break;
    if (!p->name)
      return call_fail (c, VHDKIT_RC_INVALID_PARAMETER, "%s.%s has no in-parameter \"%.100s\"", m->klass, m->name, key);
  }
  for (const struct param *p = m->params; p->name; p++) {
    if (!(p->flags & P_IN)) continue;
    v = json_object_get (in, p->name);
    if (!v)
      return call_fail (c, VHDKIT_RC_INVALID_PARAMETER, "%s.%s: the in-parameter %s is missing", m->klass, m->name, p->name);
    if (json_is_null (v)) {
      if (nullable (p)) continue;
      return call_fail (c, VHDKIT_RC_INVALID_PARAMETER, "%s.%s: %s may not be null", m->klass, m->name, p->name);
    }
    if (p->flags & P_ARRAY) {
      size_t i;
      json_t *e;
      if (!json_is_array (v))
        return call_fail (c, VHDKIT_RC_INCORRECT_TYPE, "%s.%s: %s must be an array", m->klass, m->name, p->name);
      json_array_foreach (v, i, e)
        if (!type_ok (p, e))
          return call_fail (c, VHDKIT_RC_INCORRECT_TYPE, "%s.%s: %s[%zu] must be %s", m->klass, m->name, p->name, i, want (p));
    }
    else if (!type_ok (p, v))
      return call_fail (c, VHDKIT_RC_INCORRECT_TYPE, "%s.%s: %s must be %s", m->klass, m->name, p->name, want (p));
  }
  return 0;
}

/* What a job method is given is checked before the job starts (4096
 * means "Method Parameters Checked"): every path parameter must resolve
 * inside a root, and an embedded VirtualDiskSettingData must describe a
 * disk that can be made.  The job resolves the paths again when it runs. */
uint32_t
params_precheck (struct call *c, json_t *in)
{
  char real[4096];
  for (const struct param *p = c->m->params; p->name; p++) {
    if (!(p->flags & P_IN) || p->type != CIM_STRING) continue;
    json_t *v = json_object_get (in, p->name);
    size_t l = strlen (p->name);
    uint32_t rc = 0;
    if (!p->klass && l >= 4 && strcmp (p->name + l - 4, "Path") == 0 && json_is_string (v))
      rc = roots_resolve (c, p->name, json_string_value (v), true, real, sizeof real);
    else if (p->klass && strcmp (p->klass, "Msvm_VirtualHardDiskSettingData") == 0)
      rc = settings_check (c, v, p->name, strcmp (c->m->name, "ConvertVirtualHardDisk") == 0);
    if (rc) return rc;
  }
  return 0;
}
