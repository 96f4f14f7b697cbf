/* The CIM-XML door (DMTF DSP0200 and DSP0201; docs/vhdkitd.8.md,
 * "CIM-XML"): POST /cimom on the HTTP doors (http.c hands the headers
 * and body over, and sends back what this file writes).
 *
 * Served: extrinsic calls of every method of the method table, on the
 * one instance of a service class or on a job (Msvm_ConcreteJob, whose
 * InstanceID key becomes the in-parameter of that name), and the
 * intrinsic GetClass, GetInstance, EnumerateInstances,
 * EnumerateInstanceNames, EnumerateClasses and EnumerateClassNames on
 * the classes of classes.c.  Every other intrinsic is
 * CIM_ERR_NOT_SUPPORTED.
 *
 * In: parameters are typed by the method table, not by the request
 * (wbemcli sends no PARAMTYPE); a PARAMTYPE, if given, must agree.  A
 * value that does not parse as its type is ReturnValue 32776 with a
 * sentence, as over JSON; an absent in-parameter is Null.  An embedded
 * instance may come as escaped INSTANCE text or as an INSTANCE element
 * inside VALUE; it becomes the JSON object the methods read ("__CLASS"
 * and properties typed by classes.c).
 *
 * Out: what wbemcli 1.6.3 reads (its parser is strict): only the
 * attributes it allows, no self-closing element but NAMESPACE,
 * CLASSNAME and ERROR, RETURNVALUE first, an out-parameter whose value
 * is Null left out (wbemcli crashes on an empty PARAMVALUE), embedded
 * instances as escaped INSTANCE text, the Job as a LOCALINSTANCEPATH.
 * A failed call's ErrorDescription travels as one more PARAMVALUE of
 * that name.
 *
 * Hostile input: the body is capped by http.c; libxml2 parses it
 * without network access, without entity substitution and without
 * DTD loading, and any DOCTYPE stops the parse at once (libxml2 2.9.14
 * has no option to refuse one; a stopped parse returns a document with
 * no root, which is refused too); elements nest at most MAX_DEPTH deep.
 * A request that is not well-formed XML, or not CIM-XML, is answered
 * with a CIM error (HTTP 200, ERROR CODE 4 and a description) so that
 * wbemcli prints the reason; header errors follow DSP0200 (400 or 501
 * with a CIMError header).
 *
 * No state of its own: each request has its own parser and buffers.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include "vhdkitd.h"

#define MAX_DEPTH 32             /* the deepest request we read is 10 */
#define MAX_KEYS 16
#define MAX_IPARAMS 16

enum {
  CIM_ERR_FAILED = 1, CIM_ERR_INVALID_NAMESPACE = 3, CIM_ERR_INVALID_PARAMETER = 4,
  CIM_ERR_INVALID_CLASS = 5, CIM_ERR_NOT_FOUND = 6, CIM_ERR_NOT_SUPPORTED = 7,
  CIM_ERR_METHOD_NOT_FOUND = 17,
};

static const char *
cim_err_name (int code)
{
  switch (code) {
  case CIM_ERR_FAILED: return "CIM_ERR_FAILED";
  case CIM_ERR_INVALID_NAMESPACE: return "CIM_ERR_INVALID_NAMESPACE";
  case CIM_ERR_INVALID_PARAMETER: return "CIM_ERR_INVALID_PARAMETER";
  case CIM_ERR_INVALID_CLASS: return "CIM_ERR_INVALID_CLASS";
  case CIM_ERR_NOT_FOUND: return "CIM_ERR_NOT_FOUND";
  case CIM_ERR_NOT_SUPPORTED: return "CIM_ERR_NOT_SUPPORTED";
  case CIM_ERR_METHOD_NOT_FOUND: return "CIM_ERR_METHOD_NOT_FOUND";
  }
  return "CIM_ERR_FAILED";
}

/* ---- output buffer ---- */

struct sb {
  char *p;
  size_t n, cap;
  bool oom;
};

static void
sb_put (struct sb *b, const char *s, size_t n)
{
  if (b->oom) return;
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + n + 1) cap *= 2;
    char *p = realloc (b->p, cap);
    if (!p) { b->oom = true; return; }
    b->p = p;
    b->cap = cap;
  }
  memcpy (b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
}

static void sb_s (struct sb *b, const char *s) { sb_put (b, s, strlen (s)); }

static void sb_f (struct sb *b, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
static void
sb_f (struct sb *b, const char *fmt, ...)
{
  char buf[512];
  va_list ap;
  va_start (ap, fmt);
  int n = vsnprintf (buf, sizeof buf, fmt, ap);
  va_end (ap);
  if (n < 0) return;
  if ((size_t) n < sizeof buf) { sb_put (b, buf, (size_t) n); return; }
  char *big = malloc ((size_t) n + 1);
  if (!big) { b->oom = true; return; }
  va_start (ap, fmt);
  vsnprintf (big, (size_t) n + 1, fmt, ap);
  va_end (ap);
  sb_put (b, big, (size_t) n);
  free (big);
}

/* Text or attribute value: the five XML specials as entities (the only
 * ones wbemcli decodes), and control characters XML 1.0 cannot carry
 * as U+FFFD. */
static void
sb_esc (struct sb *b, const char *s)
{
  const char *run = s;
  for (; *s; s++) {
    const char *rep = NULL;
    switch (*s) {
    case '&': rep = "&amp;"; break;
    case '<': rep = "&lt;"; break;
    case '>': rep = "&gt;"; break;
    case '"': rep = "&quot;"; break;
    case '\'': rep = "&apos;"; break;
    default:
      if ((unsigned char) *s < 0x20 && *s != '\t' && *s != '\n' && *s != '\r') rep = "\xef\xbf\xbd";
    }
    if (rep) {
      sb_put (b, run, (size_t) (s - run));
      sb_s (b, rep);
      run = s + 1;
    }
  }
  sb_put (b, run, (size_t) (s - run));
}

/* ---- a request ---- */

struct rq {
  const char *msgid;
  struct sb out;
  int code;                      /* a CIM error, 0 if none */
  char desc[1024];
  unsigned http;                 /* non-zero: an HTTP-level error */
  const char *cimerror;
  struct kept *keep;              /* libxml2 strings and documents */
  size_t nkeep, capkeep;
};

struct kept {
  void *p;
  bool doc;
};

/* Free P (a string, or with DOC a document) when the request ends. */
static void
keep (struct rq *r, void *p, bool doc)
{
  if (!p) return;
  if (r->nkeep == r->capkeep) {
    size_t cap = r->capkeep ? 2 * r->capkeep : 32;
    struct kept *k = realloc (r->keep, cap * sizeof *k);
    if (!k) {
      if (doc) xmlFreeDoc (p);
      else xmlFree (p);
      r->out.oom = true;
      return;
    }
    r->keep = k;
    r->capkeep = cap;
  }
  r->keep[r->nkeep++] = (struct kept) { p, doc };
}

/* The first error of a request wins: fail (a CIM return code) and
 * http_fail (an HTTP status and CIMError) keep its sentence. */
static int fail (struct rq *r, int code, const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));
static int
fail (struct rq *r, int code, const char *fmt, ...)
{
  if (r->code || r->http) return -1;
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (r->desc, sizeof r->desc, fmt, ap);
  va_end (ap);
  r->code = code;
  return -1;
}

static int http_fail (struct rq *r, unsigned status, const char *cimerror, const char *fmt, ...)
  __attribute__ ((format (printf, 4, 5)));
static int
http_fail (struct rq *r, unsigned status, const char *cimerror, const char *fmt, ...)
{
  if (r->code || r->http) return -1;
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (r->desc, sizeof r->desc, fmt, ap);
  va_end (ap);
  r->http = status;
  r->cimerror = cimerror;
  return -1;
}

/* ---- reading the tree ---- */

static bool
is (xmlNodePtr n, const char *name)
{
  return n && n->type == XML_ELEMENT_NODE && strcmp ((const char *) n->name, name) == 0;
}

static xmlNodePtr
next_el (xmlNodePtr n)
{
  while (n && n->type != XML_ELEMENT_NODE) n = n->next;
  return n;
}

static xmlNodePtr first_el (xmlNodePtr n) { return n ? next_el (n->children) : NULL; }
static xmlNodePtr after_el (xmlNodePtr n) { return n ? next_el (n->next) : NULL; }

/* An attribute, its name matched in any case (EmbeddedObject is also
 * spelled EMBEDDEDOBJECT); NULL if absent. */
static const char *
attr (struct rq *r, xmlNodePtr n, const char *name)
{
  for (xmlAttrPtr a = n ? n->properties : NULL; a; a = a->next)
    if (xmlStrcasecmp (a->name, (const xmlChar *) name) == 0) {
      xmlChar *v = xmlNodeListGetString (n->doc, a->children, 1);
      if (!v) return "";
      keep (r, v, false);
      return (const char *) v;
    }
  return NULL;
}

/* The text inside N (its descendants' text, entities decoded). */
static const char *
text (struct rq *r, xmlNodePtr n)
{
  xmlChar *v = xmlNodeGetContent (n);
  if (!v) return "";
  keep (r, v, false);
  return (const char *) v;
}

static void
quiet (void *ctx, const xmlError *e)
{
  (void) ctx; (void) e;
}

/* What one parse saw (the parser context's _private). */
struct parse_state {
  bool dtd;
  bool error;                    /* FIRST holds the first error */
  char first[256];
  int line, column;
};

static void
on_dtd (void *ctx, const xmlChar *name, const xmlChar *ext, const xmlChar *sys)
{
  (void) name; (void) ext; (void) sys;
  xmlParserCtxtPtr c = ctx;
  ((struct parse_state *) c->_private)->dtd = true;
  xmlStopParser (c);
}

/* The first error is the one that names the cause (the parser goes on
 * and reports its consequences after it). */
static void
on_error (void *ctx, xmlErrorPtr e)
{
  xmlParserCtxtPtr c = ctx;
  struct parse_state *st = c ? c->_private : NULL;
  if (!st || st->error || !e || e->level < XML_ERR_ERROR) return;
  st->error = true;
  if (e->code == XML_ERR_INTERNAL_ERROR && e->message && strstr (e->message, "Excessive depth"))
    snprintf (st->first, sizeof st->first, "elements nest deeper than %d", MAX_DEPTH);
  else
    snprintf (st->first, sizeof st->first, "%s", e->message ? e->message : "error");
  st->first[strcspn (st->first, "\r\n")] = 0;
  st->line = e->line;
  st->column = e->int2;
}

/* Parse BUF with every door shut: no network, no entities, no DTD.
 * The root element, or NULL with the reason in WHY. */
static xmlNodePtr
parse (struct rq *r, const char *buf, size_t len, char *why, size_t n)
{
  xmlSetStructuredErrorFunc (NULL, (xmlStructuredErrorFunc) quiet);
  xmlParserCtxtPtr c = xmlNewParserCtxt ();
  if (!c) {
    snprintf (why, n, "out of memory");
    return NULL;
  }
  struct parse_state st = { 0 };
  c->_private = &st;
  c->sax->internalSubset = on_dtd;
  c->sax->externalSubset = on_dtd;
  c->sax->serror = on_error;
  xmlDocPtr d = NULL;
  if (len <= (size_t) INT32_MAX)
    d = xmlCtxtReadMemory (c, buf, (int) len, "cimom.xml", NULL,
                           XML_PARSE_NONET | XML_PARSE_NOCDATA | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  xmlNodePtr root = d ? xmlDocGetRootElement (d) : NULL;
  if (st.dtd || (d && d->intSubset))
    snprintf (why, n, "a DOCTYPE is not accepted (no DTD, no entities)");
  else if (!d || !c->wellFormed || !root || st.error) {
    if (st.error && st.line)
      snprintf (why, n, "it is not well-formed XML (line %d, column %d: %s)", st.line, st.column, st.first);
    else
      snprintf (why, n, "it is not well-formed XML (%s)", st.error ? st.first : len ? "no root element" : "the body is empty");
    root = NULL;
  }
  xmlFreeParserCtxt (c);
  if (!root) {
    if (d) xmlFreeDoc (d);
    return NULL;
  }
  keep (r, d, true);
  return root;
}

/* ---- types ---- */

static const char *
type_text (enum cim_type t)
{
  switch (t) {
  case CIM_STRING: return "string";
  case CIM_BOOLEAN: return "boolean";
  case CIM_UINT16: return "uint16";
  case CIM_UINT32: return "uint32";
  case CIM_UINT64: return "uint64";
  case CIM_DATETIME: return "datetime";
  case CIM_REFERENCE: return "reference";
  }
  return "string";
}

static bool
type_from_text (const char *s, enum cim_type *t)
{
  static const enum cim_type all[] = { CIM_STRING, CIM_BOOLEAN, CIM_UINT16, CIM_UINT32, CIM_UINT64,
                                       CIM_DATETIME, CIM_REFERENCE };
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    if (strcasecmp (s, type_text (all[i])) == 0) { *t = all[i]; return true; }
  return false;
}

/* A return code's Values text. */
static const char *
code_text (uint32_t rc)
{
  return rc == 4097 ? "Invalid State Transition" : rc_description (rc);
}

/* Why a conversion failed: the return code and a sentence. */
struct conv {
  uint32_t rc;
  char why[512];
};

static json_t *conv_fail (struct conv *cv, uint32_t rc, const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));
static json_t *
conv_fail (struct conv *cv, uint32_t rc, const char *fmt, ...)
{
  if (cv->rc) return NULL;
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (cv->why, sizeof cv->why, fmt, ap);
  va_end (ap);
  cv->rc = rc;
  return NULL;
}

/* TEXT as a value of type T; NULL with CV set on failure. */
static json_t *
scalar_in (enum cim_type t, const char *text, const char *what, struct conv *cv)
{
  const char *s = text;
  switch (t) {
  case CIM_STRING:
  case CIM_DATETIME: {
    if (t == CIM_DATETIME && !*s) return json_null ();
    json_t *v = json_string (s);
    return v ? v : conv_fail (cv, VHDKIT_RC_INCORRECT_TYPE, "%s is not UTF-8 text", what);
  }
  case CIM_BOOLEAN:
    while (isspace ((unsigned char) *s)) s++;
    if (strncasecmp (s, "true", 4) == 0 && !s[4 + strspn (s + 4, " \t\r\n")]) return json_true ();
    if (strncasecmp (s, "false", 5) == 0 && !s[5 + strspn (s + 5, " \t\r\n")]) return json_false ();
    return conv_fail (cv, VHDKIT_RC_INCORRECT_TYPE, "%s: \"%.60s\" is not a boolean (TRUE or FALSE)", what, text);
  case CIM_UINT16:
  case CIM_UINT32:
  case CIM_UINT64: {
    while (isspace ((unsigned char) *s)) s++;
    if (*s == '+') s++;
    int base = 10;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) { base = 16; s += 2; }
    uint64_t v = 0;
    bool digits = false, over = false;
    for (; *s && !isspace ((unsigned char) *s); s++) {
      int d = isdigit ((unsigned char) *s) ? *s - '0'
        : base == 16 && isxdigit ((unsigned char) *s) ? tolower ((unsigned char) *s) - 'a' + 10 : -1;
      if (d < 0) { digits = false; break; }
      if (v > (UINT64_MAX - (uint64_t) d) / (uint64_t) base) over = true;
      v = v * (uint64_t) base + (uint64_t) d;
      digits = true;
    }
    while (isspace ((unsigned char) *s)) s++;
    uint64_t max = t == CIM_UINT16 ? 65535 : t == CIM_UINT32 ? 4294967295u : UINT64_MAX;
    if (!digits || *s)
      return conv_fail (cv, VHDKIT_RC_INCORRECT_TYPE, "%s: \"%.60s\" is not a %s", what, text, type_text (t));
    if (over || v > max)
      return conv_fail (cv, VHDKIT_RC_INCORRECT_TYPE, "%s: %.60s is beyond the largest %s", what, text, type_text (t));
    if (v > (uint64_t) INT64_MAX)
      return conv_fail (cv, VHDKIT_RC_INVALID_PARAMETER, "%s: %.60s is beyond 9223372036854775807, the largest "
                        "value vhdkitd takes", what, text);
    return json_integer ((json_int_t) v);
  }
  case CIM_REFERENCE:
    return conv_fail (cv, VHDKIT_RC_INCORRECT_TYPE, "%s is a reference: give a VALUE.REFERENCE", what);
  }
  return NULL;
}

static json_t *instance_in (struct rq *r, xmlNodePtr inst, const char *what, struct conv *cv);

/* A VALUE element of type T (KLASS: an embedded instance's class). */
static json_t *
value_in (struct rq *r, xmlNodePtr value, enum cim_type t, const char *klass, const char *what, struct conv *cv)
{
  xmlNodePtr child = first_el (value);
  if (child) {
    if (klass && is (child, "INSTANCE") && !after_el (child)) return instance_in (r, child, what, cv);
    return conv_fail (cv, VHDKIT_RC_INCORRECT_TYPE, "%s: a VALUE holds text%s, not <%.40s>", what,
                      klass ? " or one INSTANCE" : "", (const char *) child->name);
  }
  const char *s = text (r, value);
  if (!klass) return scalar_in (t, s, what, cv);
  /* Escaped INSTANCE text: parsed as carefully as the request. */
  if (!*s) return json_null ();
  char why[400];
  xmlNodePtr root = parse (r, s, strlen (s), why, sizeof why);
  if (!root)
    return conv_fail (cv, VHDKIT_RC_INCORRECT_TYPE, "%s is not an embedded instance: %s", what, why);
  if (!is (root, "INSTANCE"))
    return conv_fail (cv, VHDKIT_RC_INCORRECT_TYPE, "%s: an embedded instance is an INSTANCE element, not <%.40s>",
                      what, (const char *) root->name);
  return instance_in (r, root, what, cv);
}

/* VALUE.ARRAY into a JSON array.  wbemcli sends "p=" as one empty
 * VALUE: that is an empty array. */
static json_t *
array_in (struct rq *r, xmlNodePtr va, enum cim_type t, const char *klass, const char *what, struct conv *cv)
{
  json_t *a = json_array ();
  xmlNodePtr e = first_el (va);
  if (e && !after_el (e) && is (e, "VALUE") && !first_el (e) && !*text (r, e)) return a;
  for (size_t i = 0; e; e = after_el (e), i++) {
    char w[300];
    snprintf (w, sizeof w, "%s[%zu]", what, i);
    json_t *v = is (e, "VALUE.NULL") ? json_null ()
      : is (e, "VALUE") ? value_in (r, e, t, klass, w, cv)
      : conv_fail (cv, VHDKIT_RC_INCORRECT_TYPE, "%s: a VALUE.ARRAY holds VALUE or VALUE.NULL, not <%.40s>", w,
                   (const char *) e->name);
    if (!v) { json_decref (a); return NULL; }
    json_array_append_new (a, v);
  }
  return a;
}

/* An INSTANCE element into the JSON object the methods read: "__CLASS"
 * and its properties, named and typed as classes.c says when it knows
 * the class, else as the element says. */
static json_t *
instance_in (struct rq *r, xmlNodePtr inst, const char *what, struct conv *cv)
{
  const char *cn = attr (r, inst, "CLASSNAME");
  if (!cn || !*cn) return conv_fail (cv, VHDKIT_RC_INCORRECT_TYPE, "%s: the INSTANCE has no CLASSNAME", what);
  const struct cim_class *k = classes_find (cn);
  json_t *o = json_object ();
  json_object_set_new (o, "__CLASS", json_string (k ? k->name : cn));
  for (xmlNodePtr p = first_el (inst); p; p = after_el (p)) {
    if (is (p, "QUALIFIER")) continue;
    bool arr = is (p, "PROPERTY.ARRAY");
    if (!arr && !is (p, "PROPERTY")) {
      json_decref (o);
      return conv_fail (cv, VHDKIT_RC_INCORRECT_TYPE, "%s: an INSTANCE holds PROPERTY and PROPERTY.ARRAY, not <%.40s>",
                        what, (const char *) p->name);
    }
    const char *pn = attr (r, p, "NAME"), *ty = attr (r, p, "TYPE");
    char w[300];
    snprintf (w, sizeof w, "%s property %.80s", what, pn ? pn : "?");
    const struct cim_prop *cp = k && pn ? classes_prop (k, pn) : NULL;
    enum cim_type t = CIM_STRING, tt;
    if (ty && !type_from_text (ty, &tt)) {
      json_decref (o);
      return conv_fail (cv, VHDKIT_RC_INCORRECT_TYPE, "%s: unknown TYPE \"%.40s\"", w, ty);
    }
    if (cp) {
      t = cp->type;
      if ((ty && tt != t) || arr != !!(cp->flags & CP_ARRAY)) {
        json_decref (o);
        return conv_fail (cv, VHDKIT_RC_INCORRECT_TYPE, "%s is %s %s, not %s %s", w,
                          cp->flags & CP_ARRAY ? "an array of" : "a", type_text (cp->type),
                          arr ? "an array of" : "a", ty ? ty : "scalar");
      }
    }
    else if (ty) t = tt;
    if (!pn || !*pn || json_object_get (o, cp ? cp->name : pn)) {
      json_decref (o);
      return conv_fail (cv, VHDKIT_RC_INVALID_PARAMETER, "%s: a property without NAME, or given twice", w);
    }
    xmlNodePtr v = first_el (p);
    while (is (v, "QUALIFIER")) v = after_el (v);
    json_t *jv = !v || is (v, "VALUE.NULL") ? json_null ()
      : arr && is (v, "VALUE.ARRAY") ? array_in (r, v, t, NULL, w, cv)
      : !arr && is (v, "VALUE") ? value_in (r, v, t, NULL, w, cv)
      : conv_fail (cv, VHDKIT_RC_INCORRECT_TYPE, "%s: unexpected <%.40s>", w, (const char *) v->name);
    if (!jv) { json_decref (o); return NULL; }
    json_object_set_new (o, cp ? cp->name : pn, jv);
  }
  return o;
}

/* ---- paths ---- */

static int
check_namespace (struct rq *r, xmlNodePtr lnp)
{
  if (!is (lnp, "LOCALNAMESPACEPATH")) return fail (r, CIM_ERR_INVALID_PARAMETER, "expected a LOCALNAMESPACEPATH");
  char ns[512] = "";
  size_t l = 0;
  for (xmlNodePtr n = first_el (lnp); n; n = after_el (n)) {
    if (!is (n, "NAMESPACE")) return fail (r, CIM_ERR_INVALID_PARAMETER, "a LOCALNAMESPACEPATH holds NAMESPACE elements");
    const char *name = attr (r, n, "NAME");
    l += (size_t) snprintf (ns + l, l < sizeof ns ? sizeof ns - l : 0, "%s%s", l ? "/" : "", name ? name : "");
    if (l >= sizeof ns) break;
  }
  if (strcasecmp (ns, VHDKITD_NAMESPACE) != 0)
    return fail (r, CIM_ERR_INVALID_NAMESPACE, "no namespace \"%.200s\": vhdkitd serves " VHDKITD_NAMESPACE, ns);
  return 0;
}

struct keys {
  size_t n;
  const char *name[MAX_KEYS], *value[MAX_KEYS];
};

/* An INSTANCENAME's class and keys (a lone KEYVALUE gets NAME NULL). */
static int
instancename_in (struct rq *r, xmlNodePtr in, const char **cn, struct keys *ks)
{
  if (!is (in, "INSTANCENAME")) return fail (r, CIM_ERR_INVALID_PARAMETER, "expected an INSTANCENAME");
  *cn = attr (r, in, "CLASSNAME");
  if (!*cn || !**cn) return fail (r, CIM_ERR_INVALID_PARAMETER, "the INSTANCENAME has no CLASSNAME");
  ks->n = 0;
  for (xmlNodePtr kb = first_el (in); kb; kb = after_el (kb)) {
    if (ks->n == MAX_KEYS) return fail (r, CIM_ERR_INVALID_PARAMETER, "more than %d keys", MAX_KEYS);
    if (is (kb, "KEYVALUE")) {
      ks->name[ks->n] = NULL;
      ks->value[ks->n++] = text (r, kb);
      continue;
    }
    if (!is (kb, "KEYBINDING"))
      return fail (r, CIM_ERR_INVALID_PARAMETER, "an INSTANCENAME holds KEYBINDING elements, not <%.40s>",
                   (const char *) kb->name);
    const char *kn = attr (r, kb, "NAME");
    xmlNodePtr kv = first_el (kb);
    if (!kn || !*kn || !is (kv, "KEYVALUE"))
      return fail (r, CIM_ERR_INVALID_PARAMETER, "a KEYBINDING needs a NAME and a KEYVALUE (references are not keys here)");
    for (size_t i = 0; i < ks->n; i++)
      if (ks->name[i] && strcasecmp (ks->name[i], kn) == 0)
        return fail (r, CIM_ERR_INVALID_PARAMETER, "the key %.80s is given twice", kn);
    ks->name[ks->n] = kn;
    ks->value[ks->n++] = text (r, kv);
  }
  return 0;
}

static const char *
key_get (const struct keys *ks, const char *name)
{
  for (size_t i = 0; i < ks->n; i++)
    if (ks->name[i] && strcasecmp (ks->name[i], name) == 0) return ks->value[i];
  return NULL;
}

/* The instance of K that KS names, as JSON (the caller owns it), or
 * NULL with a CIM error. */
static json_t *
find_instance (struct rq *r, const struct cim_class *k, struct keys *ks)
{
  size_t nkeys = 0;
  const struct cim_prop *only = NULL;
  for (const struct cim_prop *p = k->props; p->name; p++)
    if (p->flags & CP_KEY) { nkeys++; only = p; }
  if (nkeys == 0) {
    fail (r, CIM_ERR_NOT_FOUND, "%s has no instances of its own: they are embedded in method answers", k->name);
    return NULL;
  }
  if (ks->n == 1 && !ks->name[0] && nkeys == 1) ks->name[0] = only->name;
  for (size_t i = 0; i < ks->n; i++) {
    const struct cim_prop *p = ks->name[i] ? classes_prop (k, ks->name[i]) : NULL;
    if (!p || !(p->flags & CP_KEY)) {
      fail (r, CIM_ERR_INVALID_PARAMETER, "%.80s is not a key of %s", ks->name[i] ? ks->name[i] : "a KEYVALUE without name",
            k->name);
      return NULL;
    }
  }
  for (const struct cim_prop *p = k->props; p->name; p++)
    if ((p->flags & CP_KEY) && !key_get (ks, p->name)) {
      fail (r, CIM_ERR_INVALID_PARAMETER, "the instance path of %s lacks the key %s", k->name, p->name);
      return NULL;
    }
  if (k->service_name) {
    json_t *inst = classes_service_instance (k);
    for (const struct cim_prop *p = k->props; p->name; p++) {
      if (!(p->flags & CP_KEY)) continue;
      const char *want = json_string_value (json_object_get (inst, p->name)), *got = key_get (ks, p->name);
      if (!want || strcasecmp (want, got) != 0) {
        fail (r, CIM_ERR_NOT_FOUND, "no such instance: %s is \"%.100s\", not \"%.100s\"", p->name, want ? want : "",
              got);
        json_decref (inst);
        return NULL;
      }
    }
    return inst;
  }
  if (strcmp (k->name, "Msvm_ConcreteJob") == 0) {
    const char *id = key_get (ks, "InstanceID");
    json_t *j = jobs_get (id);
    if (!j) fail (r, CIM_ERR_NOT_FOUND, "no job %.100s (finished jobs are kept for 5 minutes)", id);
    return j;
  }
  fail (r, CIM_ERR_NOT_FOUND, "%s has no instances", k->name);
  return NULL;
}

/* ---- writing ---- */

static void
qual_bool (struct sb *b, const char *name, bool v)
{
  sb_f (b, "<QUALIFIER NAME=\"%s\" TYPE=\"boolean\"><VALUE>%s</VALUE></QUALIFIER>", name, v ? "true" : "false");
}

static void
qual_str (struct sb *b, const char *name, const char *v)
{
  sb_f (b, "<QUALIFIER NAME=\"%s\" TYPE=\"string\"><VALUE>", name);
  sb_esc (b, v);
  sb_s (b, "</VALUE></QUALIFIER>");
}

/* ValueMap and Values from "2=Enabled,3=Disabled". */
static void
qual_values (struct sb *b, const char *spec)
{
  for (int pass = 0; pass < 2; pass++) {
    sb_f (b, "<QUALIFIER NAME=\"%s\" TYPE=\"string\"><VALUE.ARRAY>", pass ? "Values" : "ValueMap");
    for (const char *s = spec; *s; ) {
      size_t l = strcspn (s, ","), eq = strcspn (s, "=");
      char item[128];
      if (eq > l) eq = l;
      snprintf (item, sizeof item, "%.*s", pass ? (int) (l - eq - (eq < l)) : (int) eq, pass ? s + eq + (eq < l) : s);
      sb_s (b, "<VALUE>");
      sb_esc (b, item);
      sb_s (b, "</VALUE>");
      s += l + (s[l] == ',');
    }
    sb_s (b, "</VALUE.ARRAY></QUALIFIER>");
  }
}

static bool
listed (json_t *proplist, const char *name)
{
  if (!proplist) return true;
  size_t i;
  json_t *v;
  json_array_foreach (proplist, i, v)
    if (strcasecmp (json_string_value (v), name) == 0) return true;
  return false;
}

static void
class_out (struct sb *b, const struct cim_class *k, bool quals, bool origin, json_t *proplist)
{
  sb_f (b, "<CLASS NAME=\"%s\">", k->name);
  if (quals && k->doc) qual_str (b, "Description", k->doc);
  for (const struct cim_prop *p = k->props; p->name; p++) {
    if (!listed (proplist, p->name)) continue;
    const char *el = p->flags & CP_ARRAY ? "PROPERTY.ARRAY" : "PROPERTY";
    sb_f (b, "<%s NAME=\"%s\" TYPE=\"%s\"", el, p->name, type_text (p->type));
    if (origin) sb_f (b, " CLASSORIGIN=\"%s\" PROPAGATED=\"false\"", k->name);
    sb_s (b, ">");
    if (quals) {
      if (p->flags & CP_KEY)
        sb_s (b, "<QUALIFIER NAME=\"Key\" TYPE=\"boolean\" OVERRIDABLE=\"false\"><VALUE>true</VALUE></QUALIFIER>");
      if (p->doc) qual_str (b, "Description", p->doc);
      if (p->values) qual_values (b, p->values);
    }
    sb_f (b, "</%s>", el);
  }
  for (size_t i = 0; i < vhdkitd_nmethods; i++) {
    const struct method *m = &vhdkitd_methods[i];
    if (strcmp (m->klass, k->name) != 0) continue;
    sb_f (b, "<METHOD NAME=\"%s\" TYPE=\"uint32\"", m->name);
    if (origin) sb_f (b, " CLASSORIGIN=\"%s\" PROPAGATED=\"false\"", k->name);
    sb_s (b, ">");
    if (quals) {
      qual_str (b, "Description", m->doc);
      for (int pass = 0; pass < 2; pass++) {
        sb_f (b, "<QUALIFIER NAME=\"%s\" TYPE=\"string\"><VALUE.ARRAY>", pass ? "Values" : "ValueMap");
        for (const uint32_t *rc = m->codes; rc == m->codes || *rc; rc++) {
          sb_s (b, "<VALUE>");
          if (pass) sb_esc (b, code_text (*rc));
          else sb_f (b, "%" PRIu32, *rc);
          sb_s (b, "</VALUE>");
        }
        sb_s (b, "</VALUE.ARRAY></QUALIFIER>");
      }
    }
    for (const struct param *p = m->params; p->name; p++) {
      /* A key of the class is the instance the method is called on. */
      const struct cim_prop *cp = classes_prop (k, p->name);
      if (cp && (cp->flags & CP_KEY)) continue;
      const char *el;
      if (p->type == CIM_REFERENCE) {
        el = p->flags & P_ARRAY ? "PARAMETER.REFARRAY" : "PARAMETER.REFERENCE";
        sb_f (b, "<%s NAME=\"%s\" REFERENCECLASS=\"%s\">", el, p->name, p->klass ? p->klass : "CIM_ManagedElement");
      }
      else {
        el = p->flags & P_ARRAY ? "PARAMETER.ARRAY" : "PARAMETER";
        sb_f (b, "<%s NAME=\"%s\" TYPE=\"%s\">", el, p->name, type_text (p->type));
      }
      if (quals) {
        qual_bool (b, "In", p->flags & P_IN);
        if (p->flags & P_OUT) qual_bool (b, "Out", true);
        if (p->klass && p->type == CIM_STRING) qual_str (b, "EmbeddedInstance", p->klass);
        if (p->doc) qual_str (b, "Description", p->doc);
      }
      sb_f (b, "</%s>", el);
    }
    sb_s (b, "</METHOD>");
  }
  sb_s (b, "</CLASS>");
}

/* Report, once each, what an instance or answer carries that the class
 * table or the method table does not declare (a drift between the JSON
 * side and classes.c). */
static void
drift (const char *where, const char *name)
{
  static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  static char seen[64][160];
  static size_t nseen;
  char key[160];
  snprintf (key, sizeof key, "%s.%s", where, name);
  pthread_mutex_lock (&lock);
  bool known = false;
  for (size_t i = 0; i < nseen && !known; i++) known = strcmp (seen[i], key) == 0;
  if (!known && nseen < 64) snprintf (seen[nseen++], sizeof seen[0], "%s", key);
  pthread_mutex_unlock (&lock);
  if (!known) vlog ("class table: %s has %s, which daemon/classes.c does not declare; the CIM-XML door leaves it out",
                    where, name);
}

/* The text of a JSON value as CIM type T; false if it is not one. */
static bool
scalar_out (struct sb *b, enum cim_type t, json_t *v)
{
  char num[32];
  switch (json_typeof (v)) {
  case JSON_STRING:
    if (t == CIM_BOOLEAN) return false;
    sb_esc (b, json_string_value (v));
    return true;
  case JSON_INTEGER:
    if (t == CIM_BOOLEAN) return false;
    snprintf (num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value (v));
    sb_s (b, num);
    return true;
  case JSON_TRUE:
  case JSON_FALSE:
    if (t != CIM_BOOLEAN && t != CIM_STRING) return false;
    sb_s (b, json_is_true (v) ? "true" : "false");
    return true;
  default:
    return false;
  }
}

/* A JSON value that the class says is null in CIM terms. */
static bool
is_null (enum cim_type t, json_t *v)
{
  return !v || json_is_null (v) || (t == CIM_DATETIME && json_is_string (v) && !*json_string_value (v));
}

static void
instance_out (struct sb *b, const struct cim_class *k, json_t *inst, json_t *proplist)
{
  sb_f (b, "<INSTANCE CLASSNAME=\"%s\">", k->name);
  for (const struct cim_prop *p = k->props; p->name; p++) {
    if (!listed (proplist, p->name)) continue;
    json_t *v = json_object_get (inst, p->name);
    const char *el = p->flags & CP_ARRAY ? "PROPERTY.ARRAY" : "PROPERTY";
    sb_f (b, "<%s NAME=\"%s\" TYPE=\"%s\">", el, p->name, type_text (p->type));
    if (is_null (p->type, v)) {
    }
    else if (p->flags & CP_ARRAY) {
      if (!json_is_array (v)) drift (k->name, p->name);
      else {
        sb_s (b, "<VALUE.ARRAY>");
        size_t i;
        json_t *e;
        json_array_foreach (v, i, e) {
          if (is_null (p->type, e)) { sb_s (b, "<VALUE.NULL></VALUE.NULL>"); continue; }
          sb_s (b, "<VALUE>");
          if (!scalar_out (b, p->type, e)) drift (k->name, p->name);
          sb_s (b, "</VALUE>");
        }
        sb_s (b, "</VALUE.ARRAY>");
      }
    }
    else {
      struct sb t = { 0 };
      if (scalar_out (&t, p->type, v) && !t.oom) {
        sb_s (b, "<VALUE>");
        sb_put (b, t.p ? t.p : "", t.n);
        sb_s (b, "</VALUE>");
      }
      else drift (k->name, p->name);
      free (t.p);
    }
    sb_f (b, "</%s>", el);
  }
  const char *key;
  json_t *v;
  json_object_foreach (inst, key, v) {
    /* The result a job carries is for the JSON door. */
    if (strcmp (key, "__CLASS") == 0 || (strcmp (k->name, "Msvm_ConcreteJob") == 0 && strcmp (key, "OutParameters") == 0))
      continue;
    const struct cim_prop *p;
    for (p = k->props; p->name && strcmp (p->name, key) != 0; p++)
      ;
    if (!p->name) drift (k->name, key);
  }
  sb_s (b, "</INSTANCE>");
}

static void
keyvalue_out (struct sb *b, enum cim_type t, const char *v)
{
  sb_f (b, "<KEYVALUE VALUETYPE=\"%s\">", t == CIM_BOOLEAN ? "boolean" : t == CIM_STRING || t == CIM_DATETIME
        ? "string" : "numeric");
  sb_esc (b, v);
  sb_s (b, "</KEYVALUE>");
}

static void
instancename_out (struct sb *b, const struct cim_class *k, json_t *inst)
{
  sb_f (b, "<INSTANCENAME CLASSNAME=\"%s\">", k->name);
  for (const struct cim_prop *p = k->props; p->name; p++) {
    if (!(p->flags & CP_KEY)) continue;
    struct sb t = { 0 };
    json_t *v = json_object_get (inst, p->name);
    if (v) scalar_out (&t, p->type, v);
    sb_f (b, "<KEYBINDING NAME=\"%s\">", p->name);
    /* scalar_out escaped already: write the text as is. */
    sb_f (b, "<KEYVALUE VALUETYPE=\"%s\">", p->type == CIM_BOOLEAN ? "boolean" : p->type == CIM_STRING ? "string" : "numeric");
    sb_put (b, t.p ? t.p : "", t.n);
    sb_s (b, "</KEYVALUE></KEYBINDING>");
    free (t.p);
  }
  sb_s (b, "</INSTANCENAME>");
}

static void
localnamespace_out (struct sb *b, const char *ns, size_t len)
{
  sb_s (b, "<LOCALNAMESPACEPATH>");
  for (size_t i = 0; i < len; ) {
    size_t l = strcspn (ns + i, "/");
    if (l > len - i) l = len - i;
    char part[128];
    snprintf (part, sizeof part, "%.*s", (int) l, ns + i);
    sb_s (b, "<NAMESPACE NAME=\"");
    sb_esc (b, part);
    sb_s (b, "\"/>");
    i += l + 1;
  }
  sb_s (b, "</LOCALNAMESPACEPATH>");
}

/* An object path of ours ("ns:Class.Key=\"v\",...", as jobs_start
 * writes it) as a VALUE.REFERENCE; false if it is not one. */
static bool
reference_out (struct sb *b, const char *path)
{
  const char *colon = strchr (path, ':'), *cls = colon ? colon + 1 : path;
  const char *dot = strchr (cls, '.');
  if (!dot || dot == cls) return false;
  struct sb t = { 0 };
  char kclass[256];
  snprintf (kclass, sizeof kclass, "%.*s", (int) (dot - cls), cls);
  sb_s (&t, "<VALUE.REFERENCE><LOCALINSTANCEPATH>");
  if (colon) localnamespace_out (&t, path, (size_t) (colon - path));
  else localnamespace_out (&t, VHDKITD_NAMESPACE, strlen (VHDKITD_NAMESPACE));
  sb_s (&t, "<INSTANCENAME CLASSNAME=\"");
  sb_esc (&t, kclass);
  sb_s (&t, "\">");
  bool ok = true;
  for (const char *s = dot + 1; ok && *s; ) {
    const char *eq = strchr (s, '=');
    if (!eq || eq == s) { ok = false; break; }
    char name[128], val[1024];
    snprintf (name, sizeof name, "%.*s", (int) (eq - s), s);
    size_t vl = 0;
    bool quoted = eq[1] == '"';
    s = eq + 1 + quoted;
    for (; *s && (quoted ? *s != '"' : *s != ','); s++) {
      if (quoted && *s == '\\' && s[1]) s++;
      if (vl + 1 < sizeof val) val[vl++] = *s;
    }
    val[vl] = 0;
    if (quoted) {
      if (*s != '"') { ok = false; break; }
      s++;
    }
    if (*s == ',') s++;
    else if (*s) { ok = false; break; }
    sb_s (&t, "<KEYBINDING NAME=\"");
    sb_esc (&t, name);
    sb_s (&t, "\">");
    keyvalue_out (&t, quoted ? CIM_STRING : CIM_UINT64, val);
    sb_s (&t, "</KEYBINDING>");
  }
  sb_s (&t, "</INSTANCENAME></LOCALINSTANCEPATH></VALUE.REFERENCE>");
  if (ok && !t.oom) sb_put (b, t.p, t.n);
  free (t.p);
  return ok;
}

/* ---- framing ---- */

static void
open_response (struct rq *r)
{
  sb_s (&r->out, "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n<CIM CIMVERSION=\"2.0\" DTDVERSION=\"2.0\">"
        "<MESSAGE ID=\"");
  sb_esc (&r->out, r->msgid ? r->msgid : "0");
  sb_s (&r->out, "\" PROTOCOLVERSION=\"1.0\"><SIMPLERSP>");
}

static void
close_response (struct rq *r)
{
  sb_s (&r->out, "</SIMPLERSP></MESSAGE></CIM>\n");
}

static const char *const intrinsics[] = {
  "GetClass", "GetInstance", "EnumerateInstances", "EnumerateInstanceNames", "EnumerateClasses",
  "EnumerateClassNames", "DeleteClass", "DeleteInstance", "CreateClass", "CreateInstance", "ModifyClass",
  "ModifyInstance", "ExecQuery", "Associators", "AssociatorNames", "References", "ReferenceNames", "GetProperty",
  "SetProperty", "GetQualifier", "SetQualifier", "DeleteQualifier", "EnumerateQualifiers",
  "OpenEnumerateInstances", "OpenEnumerateInstancePaths", "OpenAssociatorInstances", "OpenAssociatorInstancePaths",
  "OpenReferenceInstances", "OpenReferenceInstancePaths", "OpenQueryInstances", "PullInstancesWithPath",
  "PullInstancePaths", "PullInstances", "EnumerationCount", "CloseEnumeration",
};

static bool
intrinsic_name (const char *name)
{
  for (size_t i = 0; name && i < sizeof intrinsics / sizeof intrinsics[0]; i++)
    if (strcasecmp (intrinsics[i], name) == 0) return true;
  return false;
}

/* The CIM error as the answer, in the wrapper the client expects. */
static void
error_response (struct rq *r, bool intrinsic, const char *name)
{
  r->out.n = 0;
  if (r->out.p) r->out.p[0] = 0;
  open_response (r);
  const char *el = intrinsic ? "IMETHODRESPONSE" : "METHODRESPONSE";
  sb_f (&r->out, "<%s NAME=\"", el);
  sb_esc (&r->out, name && *name ? name : "unknown");
  sb_f (&r->out, "\"><ERROR CODE=\"%d\" DESCRIPTION=\"", r->code);
  char d[1200];
  snprintf (d, sizeof d, "%s: %s", cim_err_name (r->code), r->desc);
  sb_esc (&r->out, d);
  sb_f (&r->out, "\"/></%s>", el);
  close_response (r);
}

/* ---- intrinsic methods ---- */

struct iparams {
  size_t n;
  const char *name[MAX_IPARAMS];
  xmlNodePtr node[MAX_IPARAMS];
};

static bool
iparam_given (struct iparams *ip, const char *name)
{
  for (size_t i = 0; i < ip->n; i++)
    if (strcasecmp (ip->name[i], name) == 0) return true;
  return false;
}

/* An IPARAMVALUE's element (NULL when it is absent or empty: Null). */
static xmlNodePtr
iparam_value (struct iparams *ip, const char *name)
{
  for (size_t i = 0; i < ip->n; i++)
    if (strcasecmp (ip->name[i], name) == 0) return ip->node[i];
  return NULL;
}

static int
iparam_bool (struct rq *r, struct iparams *ip, const char *name, bool def, bool *out)
{
  xmlNodePtr v = iparam_value (ip, name);
  *out = def;
  if (!v || is (v, "VALUE.NULL")) return 0;
  struct conv cv = { 0 };
  json_t *j = is (v, "VALUE") ? scalar_in (CIM_BOOLEAN, text (r, v), name, &cv) : NULL;
  if (!j) return fail (r, CIM_ERR_INVALID_PARAMETER, "%s must be a boolean VALUE (TRUE or FALSE)", name);
  *out = json_is_true (j);
  json_decref (j);
  return 0;
}

static int
iparam_classname (struct rq *r, struct iparams *ip, bool required, const char **cn)
{
  xmlNodePtr v = iparam_value (ip, "ClassName");
  *cn = NULL;
  if (!v) return required ? fail (r, CIM_ERR_INVALID_PARAMETER, "the ClassName parameter is missing") : 0;
  if (!is (v, "CLASSNAME") || !(*cn = attr (r, v, "NAME")) || !**cn)
    return fail (r, CIM_ERR_INVALID_PARAMETER, "ClassName must be a CLASSNAME element with a NAME");
  return 0;
}

/* PropertyList: NULL (all) or an array of names. */
static int
iparam_proplist (struct rq *r, struct iparams *ip, json_t **out)
{
  xmlNodePtr v = iparam_value (ip, "PropertyList");
  *out = NULL;
  if (!v || is (v, "VALUE.NULL")) return 0;
  if (!is (v, "VALUE.ARRAY")) return fail (r, CIM_ERR_INVALID_PARAMETER, "PropertyList must be a VALUE.ARRAY");
  struct conv cv = { 0 };
  *out = array_in (r, v, CIM_STRING, NULL, "PropertyList", &cv);
  if (!*out) return fail (r, CIM_ERR_INVALID_PARAMETER, "%s", cv.why);
  size_t i;
  json_t *e;
  json_array_foreach (*out, i, e)
    if (!json_is_string (e)) {
      json_decref (*out);
      *out = NULL;
      return fail (r, CIM_ERR_INVALID_PARAMETER, "PropertyList[%zu] is null", i);
    }
  return 0;
}

static const struct cim_class *
class_or_fail (struct rq *r, const char *cn, int code)
{
  const struct cim_class *k = classes_find (cn);
  if (!k) fail (r, code, "no class %.100s in " VHDKITD_NAMESPACE, cn);
  return k;
}

/* All instances of K (a JSON array). */
static json_t *
instances (const struct cim_class *k)
{
  if (k->service_name) return json_pack ("[o]", classes_service_instance (k));
  if (strcmp (k->name, "Msvm_ConcreteJob") == 0) return jobs_list ();
  return json_array ();
}

static int
intrinsic (struct rq *r, xmlNodePtr call, const char *op)
{
  static const struct {
    const char *op, *params;
  } allowed[] = {
    { "GetClass", "ClassName,LocalOnly,IncludeQualifiers,IncludeClassOrigin,PropertyList," },
    { "GetInstance", "InstanceName,LocalOnly,IncludeQualifiers,IncludeClassOrigin,PropertyList," },
    { "EnumerateInstances", "ClassName,DeepInheritance,LocalOnly,IncludeQualifiers,IncludeClassOrigin,PropertyList," },
    { "EnumerateInstanceNames", "ClassName," },
    { "EnumerateClasses", "ClassName,DeepInheritance,LocalOnly,IncludeQualifiers,IncludeClassOrigin," },
    { "EnumerateClassNames", "ClassName,DeepInheritance," },
  };
  const char *params = NULL;
  for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
    if (strcasecmp (allowed[i].op, op) == 0) { params = allowed[i].params; op = allowed[i].op; }
  xmlNodePtr n = first_el (call);
  if (check_namespace (r, n) == -1) return -1;
  if (!params)
    return fail (r, CIM_ERR_NOT_SUPPORTED, "%.80s is not supported (vhdkitd serves GetClass, GetInstance, "
                 "EnumerateInstances, EnumerateInstanceNames, EnumerateClasses, EnumerateClassNames and the "
                 "methods of its classes)", op);
  struct iparams ip = { 0 };
  for (n = after_el (n); n; n = after_el (n)) {
    if (!is (n, "IPARAMVALUE"))
      return fail (r, CIM_ERR_INVALID_PARAMETER, "an IMETHODCALL holds IPARAMVALUE elements, not <%.40s>",
                   (const char *) n->name);
    const char *name = attr (r, n, "NAME");
    if (!name || !*name) return fail (r, CIM_ERR_INVALID_PARAMETER, "an IPARAMVALUE has no NAME");
    char probe[80];
    snprintf (probe, sizeof probe, "%.70s,", name);
    bool ok = false;
    for (const char *s = params; *s && !ok; s += strcspn (s, ",") + 1)
      ok = strncasecmp (s, probe, strlen (probe)) == 0;
    if (!ok || strchr (name, ',')) return fail (r, CIM_ERR_INVALID_PARAMETER, "%s has no parameter %.80s", op, name);
    if (iparam_given (&ip, name)) return fail (r, CIM_ERR_INVALID_PARAMETER, "the parameter %.80s is given twice", name);
    if (ip.n == MAX_IPARAMS) return fail (r, CIM_ERR_INVALID_PARAMETER, "too many parameters");
    ip.name[ip.n] = name;
    ip.node[ip.n++] = first_el (n);
  }
  bool quals, origin, dummy;
  json_t *proplist = NULL;
  const char *cn;
  const struct cim_class *k;
  struct sb body = { 0 };
  int rv = -1;
  if (strcmp (op, "GetClass") == 0) {
    if (iparam_classname (r, &ip, true, &cn) == -1 || iparam_bool (r, &ip, "LocalOnly", true, &dummy) == -1 ||
        iparam_bool (r, &ip, "IncludeQualifiers", true, &quals) == -1 ||
        iparam_bool (r, &ip, "IncludeClassOrigin", false, &origin) == -1 || iparam_proplist (r, &ip, &proplist) == -1 ||
        !(k = class_or_fail (r, cn, CIM_ERR_NOT_FOUND)))
      goto out;
    class_out (&body, k, quals, origin, proplist);
  }
  else if (strcmp (op, "EnumerateClasses") == 0 || strcmp (op, "EnumerateClassNames") == 0) {
    bool names = strcmp (op, "EnumerateClassNames") == 0;
    if (iparam_classname (r, &ip, false, &cn) == -1 || iparam_bool (r, &ip, "DeepInheritance", false, &dummy) == -1 ||
        iparam_bool (r, &ip, "LocalOnly", true, &dummy) == -1 ||
        iparam_bool (r, &ip, "IncludeQualifiers", true, &quals) == -1 ||
        iparam_bool (r, &ip, "IncludeClassOrigin", false, &origin) == -1)
      goto out;
    /* Our classes have no subclasses: below a class there is nothing. */
    if (cn && !class_or_fail (r, cn, CIM_ERR_INVALID_CLASS)) goto out;
    for (size_t i = 0; !cn && i < classes_count (); i++) {
      if (names) sb_f (&body, "<CLASSNAME NAME=\"%s\"/>", classes_at (i)->name);
      else class_out (&body, classes_at (i), quals, origin, NULL);
    }
  }
  else if (strcmp (op, "GetInstance") == 0) {
    xmlNodePtr in = iparam_value (&ip, "InstanceName");
    struct keys ks;
    json_t *inst;
    if (!in) { fail (r, CIM_ERR_INVALID_PARAMETER, "the InstanceName parameter is missing"); goto out; }
    if (instancename_in (r, in, &cn, &ks) == -1 || iparam_proplist (r, &ip, &proplist) == -1 ||
        iparam_bool (r, &ip, "LocalOnly", true, &dummy) == -1 ||
        iparam_bool (r, &ip, "IncludeQualifiers", false, &dummy) == -1 ||
        iparam_bool (r, &ip, "IncludeClassOrigin", false, &dummy) == -1 ||
        !(k = class_or_fail (r, cn, CIM_ERR_INVALID_CLASS)) || !(inst = find_instance (r, k, &ks)))
      goto out;
    instance_out (&body, k, inst, proplist);
    json_decref (inst);
  }
  else {
    bool names = strcmp (op, "EnumerateInstanceNames") == 0;
    if (iparam_classname (r, &ip, true, &cn) == -1 || iparam_proplist (r, &ip, &proplist) == -1 ||
        iparam_bool (r, &ip, "DeepInheritance", true, &dummy) == -1 ||
        iparam_bool (r, &ip, "LocalOnly", true, &dummy) == -1 ||
        iparam_bool (r, &ip, "IncludeQualifiers", false, &dummy) == -1 ||
        iparam_bool (r, &ip, "IncludeClassOrigin", false, &dummy) == -1 ||
        !(k = class_or_fail (r, cn, CIM_ERR_INVALID_CLASS)))
      goto out;
    json_t *all = instances (k);
    size_t i;
    json_t *inst;
    json_array_foreach (all, i, inst) {
      if (!names) sb_s (&body, "<VALUE.NAMEDINSTANCE>");
      instancename_out (&body, k, inst);
      if (!names) {
        instance_out (&body, k, inst, proplist);
        sb_s (&body, "</VALUE.NAMEDINSTANCE>");
      }
    }
    json_decref (all);
  }
  if (body.oom) { fail (r, CIM_ERR_FAILED, "out of memory"); goto out; }
  open_response (r);
  sb_f (&r->out, "<IMETHODRESPONSE NAME=\"%s\"><IRETURNVALUE>", op);
  sb_put (&r->out, body.p ? body.p : "", body.n);
  sb_s (&r->out, "</IRETURNVALUE></IMETHODRESPONSE>");
  close_response (r);
  rv = 0;
out:
  json_decref (proplist);
  free (body.p);
  return rv;
}

/* ---- extrinsic methods ---- */

static const struct method *
method_lookup (const char *klass, const char *name)
{
  for (size_t i = 0; i < vhdkitd_nmethods; i++)
    if (strcmp (vhdkitd_methods[i].klass, klass) == 0 && strcasecmp (vhdkitd_methods[i].name, name) == 0)
      return &vhdkitd_methods[i];
  return NULL;
}

/* A VALUE.REFERENCE as the object path string the methods take. */
static json_t *
reference_in (struct rq *r, xmlNodePtr ref, const char *what, struct conv *cv)
{
  xmlNodePtr p = first_el (ref), in = NULL;
  if (is (p, "INSTANCEPATH")) in = after_el (first_el (p));
  else if (is (p, "LOCALINSTANCEPATH")) in = after_el (first_el (p));
  else if (is (p, "INSTANCENAME")) in = p;
  const char *cn;
  struct keys ks;
  if (!in) return conv_fail (cv, VHDKIT_RC_INVALID_PARAMETER, "%s: a reference is an instance path", what);
  if (instancename_in (r, in, &cn, &ks) == -1) return NULL;   /* a CIM error, set */
  struct sb b = { 0 };
  sb_f (&b, VHDKITD_NAMESPACE ":%s", cn);
  for (size_t i = 0; i < ks.n; i++) {
    sb_f (&b, "%c%s=\"", i ? ',' : '.', ks.name[i] ? ks.name[i] : "");
    for (const char *s = ks.value[i]; *s; s++) {
      if (*s == '"' || *s == '\\') sb_s (&b, "\\");
      sb_put (&b, s, 1);
    }
    sb_s (&b, "\"");
  }
  json_t *v = b.oom ? NULL : json_string (b.p);
  free (b.p);
  return v ? v : conv_fail (cv, VHDKIT_RC_OUT_OF_MEMORY, "out of memory");
}

/* A PARAMVALUE of P into JSON (Null for an empty one). */
static json_t *
paramvalue_in (struct rq *r, const struct method *m, const struct param *p, xmlNodePtr pv, struct conv *cv)
{
  char what[200];
  snprintf (what, sizeof what, "%s.%s: %s", m->klass, m->name, p->name);
  const char *pt = attr (r, pv, "PARAMTYPE"), *eo = attr (r, pv, "EmbeddedObject");
  enum cim_type t;
  if (pt) {
    bool embedded_ok = p->klass && p->type == CIM_STRING && (strcasecmp (pt, "instance") == 0 ||
                                                             strcasecmp (pt, "object") == 0);
    if (!embedded_ok && (!type_from_text (pt, &t) || t != p->type))
      return conv_fail (cv, VHDKIT_RC_INCORRECT_TYPE, "%s is %s%s%s, not PARAMTYPE=\"%.40s\"", what,
                        p->flags & P_ARRAY ? "an array of " : "a ", type_text (p->type),
                        p->klass && p->type == CIM_STRING ? " (an embedded instance)" : "", pt);
  }
  if (eo && !(p->klass && p->type == CIM_STRING))
    return conv_fail (cv, VHDKIT_RC_INCORRECT_TYPE, "%s is not an embedded object (EmbeddedObject=\"%.40s\")", what, eo);
  const char *klass = p->type == CIM_STRING ? p->klass : NULL;
  xmlNodePtr v = first_el (pv);
  if (!v || is (v, "VALUE.NULL")) return json_null ();
  if (after_el (v))
    return conv_fail (cv, VHDKIT_RC_INCORRECT_TYPE, "%s: a PARAMVALUE holds one value", what);
  if (is (v, "VALUE.ARRAY")) {
    if (!(p->flags & P_ARRAY)) return conv_fail (cv, VHDKIT_RC_INCORRECT_TYPE, "%s is not an array", what);
    return array_in (r, v, p->type, klass, what, cv);
  }
  if (is (v, "VALUE.REFERENCE")) {
    if (p->type != CIM_REFERENCE || (p->flags & P_ARRAY))
      return conv_fail (cv, VHDKIT_RC_INCORRECT_TYPE, "%s is a %s, not a reference", what, type_text (p->type));
    return reference_in (r, v, what, cv);
  }
  if (is (v, "INSTANCE") && klass && !(p->flags & P_ARRAY)) return instance_in (r, v, what, cv);
  if (is (v, "VALUE")) {
    if (p->type == CIM_REFERENCE)
      return conv_fail (cv, VHDKIT_RC_INCORRECT_TYPE, "%s is a reference: give a VALUE.REFERENCE", what);
    json_t *one = value_in (r, v, p->type, klass, what, cv);
    if (!one || !(p->flags & P_ARRAY)) return one;
    return json_pack ("[o]", one);
  }
  return conv_fail (cv, VHDKIT_RC_INCORRECT_TYPE, "%s: unexpected <%.40s> in a PARAMVALUE", what, (const char *) v->name);
}

/* A JSON value as the PARAMVALUE of out-parameter P (nothing if Null). */
static void
paramvalue_out (struct sb *b, const struct method *m, const struct param *p, json_t *v)
{
  if (!v || json_is_null (v)) return;
  struct sb t = { 0 };
  bool ok = true;
  const struct cim_class *k = p->klass && p->type == CIM_STRING ? classes_find (p->klass) : NULL;
  size_t n = json_is_array (v) ? json_array_size (v) : 1;
  if (!!(p->flags & P_ARRAY) != json_is_array (v)) ok = false;
  if (p->type == CIM_REFERENCE && ok) {
    ok = !(p->flags & P_ARRAY) && json_is_string (v) && reference_out (&t, json_string_value (v));
  }
  else if (ok) {
    if (p->flags & P_ARRAY) sb_s (&t, "<VALUE.ARRAY>");
    for (size_t i = 0; i < n && ok; i++) {
      json_t *e = json_is_array (v) ? json_array_get (v, i) : v;
      if (is_null (p->type, e)) { sb_s (&t, "<VALUE.NULL></VALUE.NULL>"); continue; }
      sb_s (&t, "<VALUE>");
      if (k) {
        /* An embedded instance: its CIM-XML text, escaped. */
        struct sb inst = { 0 };
        if (!json_is_object (e)) ok = false;
        else instance_out (&inst, k, e, NULL);
        if (ok && !inst.oom) sb_esc (&t, inst.p);
        free (inst.p);
      }
      else if (p->klass && p->type == CIM_STRING) ok = false;   /* no class entry: classes_check said so */
      else ok = scalar_out (&t, p->type, e);
      sb_s (&t, "</VALUE>");
    }
    if (p->flags & P_ARRAY) sb_s (&t, "</VALUE.ARRAY>");
  }
  if (ok && !t.oom) {
    sb_f (b, "<PARAMVALUE NAME=\"%s\" PARAMTYPE=\"%s\"%s>", p->name, type_text (p->type),
          k ? " EmbeddedObject=\"instance\"" : "");
    sb_put (b, t.p, t.n);
    sb_s (b, "</PARAMVALUE>");
  }
  else {
    char where[160];
    snprintf (where, sizeof where, "the answer of %s.%s", m->klass, m->name);
    drift (where, p->name);
  }
  free (t.p);
}

static int
extrinsic (struct rq *r, xmlNodePtr call, const char *name)
{
  xmlNodePtr path = first_el (call), n;
  const char *cn;
  struct keys ks = { 0 };
  bool at_instance = is (path, "LOCALINSTANCEPATH");
  if (!at_instance && !is (path, "LOCALCLASSPATH"))
    return fail (r, CIM_ERR_INVALID_PARAMETER, "a METHODCALL starts with a LOCALINSTANCEPATH or LOCALCLASSPATH");
  if (check_namespace (r, first_el (path)) == -1) return -1;
  n = after_el (first_el (path));
  if (at_instance) {
    if (instancename_in (r, n, &cn, &ks) == -1) return -1;
  }
  else if (!is (n, "CLASSNAME") || !(cn = attr (r, n, "NAME")) || !*cn)
    return fail (r, CIM_ERR_INVALID_PARAMETER, "a LOCALCLASSPATH holds a CLASSNAME with a NAME");
  const struct cim_class *k = class_or_fail (r, cn, CIM_ERR_INVALID_CLASS);
  if (!k) return -1;
  const struct method *m = method_lookup (k->name, name);
  if (!m) return fail (r, CIM_ERR_METHOD_NOT_FOUND, "%s has no method %.80s", k->name, name);

  json_t *in = json_object(), *res = NULL;
  struct conv cv = { 0 };
  if (at_instance) {
    json_t *inst = find_instance (r, k, &ks);
    if (!inst) goto fail;
    /* The keys that the method takes as in-parameters (InstanceID). */
    for (const struct param *p = m->params; p->name; p++) {
      const struct cim_prop *cp = classes_prop (k, p->name);
      if ((p->flags & P_IN) && cp && (cp->flags & CP_KEY))
        json_object_set (in, p->name, json_object_get (inst, cp->name));
    }
    json_decref (inst);
  }
  else if (!k->service_name) {
    fail (r, CIM_ERR_INVALID_PARAMETER, "%s.%s is called on an instance: %s.InstanceID=\"<id>\"", k->name, m->name,
          k->name);
    goto fail;
  }
  for (n = after_el (path); n; n = after_el (n)) {
    if (!is (n, "PARAMVALUE")) {
      fail (r, CIM_ERR_INVALID_PARAMETER, "a METHODCALL holds PARAMVALUE elements, not <%.40s>", (const char *) n->name);
      goto fail;
    }
    const char *pn = attr (r, n, "NAME");
    if (!pn || !*pn) { fail (r, CIM_ERR_INVALID_PARAMETER, "a PARAMVALUE has no NAME"); goto fail; }
    const struct param *p;
    for (p = m->params; p->name; p++)
      if ((p->flags & P_IN) && strcasecmp (p->name, pn) == 0) break;
    const struct cim_prop *cp = p->name ? classes_prop (k, p->name) : NULL;
    if (cp && (cp->flags & CP_KEY)) {
      fail (r, CIM_ERR_INVALID_PARAMETER, "%s comes from the instance path, not from a PARAMVALUE", cp->name);
      goto fail;
    }
    const char *key = p->name ? p->name : pn;
    if (json_object_get (in, key)) {
      fail (r, CIM_ERR_INVALID_PARAMETER, "the parameter %.80s is given twice", pn);
      goto fail;
    }
    json_t *v;
    if (p->name) v = paramvalue_in (r, m, p, n, &cv);
    else {
      /* Not an in-parameter: the table's check names it (32773). */
      xmlNodePtr e = first_el (n);
      v = is (e, "VALUE") && !first_el (e) ? json_string (text (r, e)) : json_null ();
    }
    if (!v) break;
    json_object_set_new (in, key, v);
  }
  if (r->code) goto fail;
  if (cv.rc) {
    res = json_pack ("{s:i, s:n, s:s}", "ReturnValue", (int) cv.rc, "Job", "ErrorDescription", cv.why);
  }
  else {
    /* An in-parameter that is not given is Null. */
    for (const struct param *p = m->params; p->name; p++)
      if ((p->flags & P_IN) && !json_object_get (in, p->name)) json_object_set_new (in, p->name, json_null ());
    res = dispatch (m, in);
  }
  if (!res) { fail (r, CIM_ERR_FAILED, "out of memory"); goto fail; }

  open_response (r);
  sb_f (&r->out, "<METHODRESPONSE NAME=\"%s\"><RETURNVALUE PARAMTYPE=\"uint32\"><VALUE>%" JSON_INTEGER_FORMAT
        "</VALUE></RETURNVALUE>", m->name, json_integer_value (json_object_get (res, "ReturnValue")));
  for (const struct param *p = m->params; p->name; p++)
    if (p->flags & P_OUT) paramvalue_out (&r->out, m, p, json_object_get (res, p->name));
  const char *ed = json_string_value (json_object_get (res, "ErrorDescription"));
  if (ed && *ed) {
    sb_s (&r->out, "<PARAMVALUE NAME=\"ErrorDescription\" PARAMTYPE=\"string\"><VALUE>");
    sb_esc (&r->out, ed);
    sb_s (&r->out, "</VALUE></PARAMVALUE>");
  }
  sb_s (&r->out, "</METHODRESPONSE>");
  close_response (r);
  const char *key;
  json_t *v;
  json_object_foreach (res, key, v) {
    const struct param *p;
    for (p = m->params; p->name && !((p->flags & P_OUT) && strcmp (p->name, key) == 0); p++)
      ;
    if (!p->name && strcmp (key, "ReturnValue") != 0 && strcmp (key, "Job") != 0 &&
        strcmp (key, "ErrorDescription") != 0) {
      char where[160];
      snprintf (where, sizeof where, "the answer of %s.%s", m->klass, m->name);
      drift (where, key);
    }
  }
  json_decref (res);
  json_decref (in);
  return 0;
fail:
  json_decref (in);
  return -1;
}

/* ---- the request ---- */

static bool
version_ok (const char *v, char major)
{
  return v && v[0] == major && (v[1] == '.' || v[1] == 0);
}

void
cimxml_init (void)
{
  xmlInitParser ();
  /* Bounds every parse in this process (only this door parses XML). */
  xmlParserMaxDepth = MAX_DEPTH;
}

void
cimxml_serve (struct cimxml_exchange *x)
{
  struct rq r = { 0 };
  const char *name = x->method;
  bool intr = intrinsic_name (name);
  xmlNodePtr root = NULL, msg, req, call;
  char why[512];

  if (!x->operation || strcasecmp (x->operation, "MethodCall") != 0)
    http_fail (&r, 400, "unsupported-operation",
               "the CIMOperation header must be MethodCall (it is %s%.40s%s)", x->operation ? "\"" : "",
               x->operation ? x->operation : "missing", x->operation ? "\"" : "");
  else if (x->batch)
    http_fail (&r, 501, "multiple-requests-unsupported", "batched requests (CIMBatch) are not supported");
  else if (x->protocol_version && !version_ok (x->protocol_version, '1'))
    http_fail (&r, 501, "unsupported-protocol-version", "CIMProtocolVersion %.20s: vhdkitd speaks 1.x",
               x->protocol_version);
  else if (!name || !*name)
    http_fail (&r, 400, "header-mismatch", "the CIMMethod header is missing");
  else if (!(root = parse (&r, x->body, x->len, why, sizeof why)))
    fail (&r, CIM_ERR_INVALID_PARAMETER, "the request is refused: %s%s", why,
          strstr (why, "Entity") || strstr (why, "Tag") || strstr (why, "'<'")
          ? "; a value with & < or > must be written &amp; &lt; &gt; (wbemcli does not escape them)" : "");
  else if (!is (root, "CIM"))
    fail (&r, CIM_ERR_INVALID_PARAMETER, "the document is not CIM-XML: its root is <%.40s>, not <CIM>",
          (const char *) root->name);
  else if (!version_ok (attr (&r, root, "CIMVERSION"), '2'))
    http_fail (&r, 501, "unsupported-cim-version", "CIMVERSION %.20s: vhdkitd speaks 2.x",
               attr (&r, root, "CIMVERSION") ? attr (&r, root, "CIMVERSION") : "(missing)");
  else if (!version_ok (attr (&r, root, "DTDVERSION"), '2'))
    http_fail (&r, 501, "unsupported-dtd-version", "DTDVERSION %.20s: vhdkitd reads 2.x",
               attr (&r, root, "DTDVERSION") ? attr (&r, root, "DTDVERSION") : "(missing)");
  else if (!is (msg = first_el (root), "MESSAGE") || !(r.msgid = attr (&r, msg, "ID")) || !*r.msgid)
    fail (&r, CIM_ERR_INVALID_PARAMETER, "<CIM> must hold a MESSAGE with an ID");
  else if (!version_ok (attr (&r, msg, "PROTOCOLVERSION"), '1'))
    http_fail (&r, 501, "unsupported-protocol-version", "PROTOCOLVERSION %.20s: vhdkitd speaks 1.x",
               attr (&r, msg, "PROTOCOLVERSION") ? attr (&r, msg, "PROTOCOLVERSION") : "(missing)");
  else if (is (req = first_el (msg), "MULTIREQ"))
    http_fail (&r, 501, "multiple-requests-unsupported", "batched requests (MULTIREQ) are not supported");
  else if (!is (req, "SIMPLEREQ"))
    fail (&r, CIM_ERR_INVALID_PARAMETER, "a MESSAGE holds a SIMPLEREQ");
  else {
    call = first_el (req);
    while (is (call, "CORRELATOR")) call = after_el (call);
    const char *cname = call ? attr (&r, call, "NAME") : NULL;
    bool im = is (call, "IMETHODCALL");
    if (!im && !is (call, "METHODCALL"))
      fail (&r, CIM_ERR_INVALID_PARAMETER, "a SIMPLEREQ holds an IMETHODCALL or a METHODCALL");
    else if (!cname || !*cname)
      fail (&r, CIM_ERR_INVALID_PARAMETER, "the %s has no NAME", im ? "IMETHODCALL" : "METHODCALL");
    else if (strcasecmp (cname, name) != 0)
      http_fail (&r, 400, "header-mismatch", "the CIMMethod header (%.80s) and the body's method (%.80s) differ",
                 name, cname);
    else if (after_el (call))
      fail (&r, CIM_ERR_INVALID_PARAMETER, "a SIMPLEREQ holds one call");
    else {
      intr = im;
      name = cname;
      if (im) intrinsic (&r, call, cname);
      else extrinsic (&r, call, cname);
    }
  }

  if (r.http) {
    r.out.n = 0;
    sb_f (&r.out, "vhdkitd: %s\n", r.desc);
    x->status = r.http;
    x->cimerror = r.cimerror;
    x->content_type = "text/plain; charset=utf-8";
  }
  else {
    if (r.code) error_response (&r, intr, name);
    x->status = 200;
    x->cimerror = NULL;
    x->content_type = "application/xml; charset=\"utf-8\"";
  }
  if (r.out.oom) {
    free (r.out.p);
    r.out.p = NULL;
  }
  x->reply = r.out.p;
  x->reply_len = r.out.n;
  /* Strings first: some belong to the documents' trees. */
  for (size_t i = 0; i < r.nkeep; i++)
    if (!r.keep[i].doc) xmlFree (r.keep[i].p);
  for (size_t i = 0; i < r.nkeep; i++)
    if (r.keep[i].doc) xmlFreeDoc (r.keep[i].p);
  free (r.keep);
}
