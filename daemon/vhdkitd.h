/* vhdkitd: the image management service (docs/vhdkitd.8.md).
 *
 * Pieces, each in its own file:
 *   methods.c   the method table (every method, its parameters and
 *               their CIM types, sync or job, return codes, doc text)
 *               and the implementations, on libvhdkit;
 *   params.c    checking a call's in-parameters against the table;
 *   roots.c     the allowed roots: every path a request names resolves
 *               inside one of them, at the moment of use;
 *   registry.c  the open disks: one read-write handle per image, shared
 *               by every request, closed when idle;
 *   jobs.c      Msvm_ConcreteJob: a bounded worker pool, job states,
 *               cancellation, persistence in the state directory;
 *   http.c      the HTTP doors: JSON, on a Unix socket and (--listen)
 *               on TCP, where /cimom leads to CIM-XML;
 *   auth.c      the TCP door's credentials (yescrypt hashes, tokens);
 *   classes.c   the CIM classes: service classes from the method table,
 *               the property lists of the others;
 *   cimxml.c    the CIM-XML door (DSP0200/DSP0201, libxml2);
 *   main.c      options, configuration file, signals, start and stop.
 *
 * Values cross the doors as jansson values, typed by the table: a CIM
 * string is a JSON string, an integer a JSON integer, a boolean a JSON
 * boolean, an array a JSON array, an embedded instance a JSON object
 * with its class in "__CLASS", a reference a string (the object path).
 *
 * Threads: libmicrohttpd's pool answers requests; sync methods run in
 * the answering thread, job methods on the job workers.  Shared state
 * (registry, jobs) has one mutex each, never held across disk I/O.
 */
#ifndef VHDKITD_H
#define VHDKITD_H

#include <stdarg.h>
#include <stdio.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "vhdkit.h"

#define VHDKITD_NAMESPACE "root/virtualization/v2"

/* A JSON string from any C string (bytes that are not UTF-8 become '?'). */
json_t *json_text (const char *s);

/* ---- logging (stderr, one line each) ---- */
void vlog (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

/* ---- the method table ---- */

enum cim_type {
  CIM_STRING, CIM_BOOLEAN, CIM_UINT16, CIM_UINT32, CIM_UINT64, CIM_DATETIME,
  CIM_REFERENCE,
};

#define P_IN    1u
#define P_OUT   2u
#define P_ARRAY 4u

struct param {
  const char *name;
  enum cim_type type;
  unsigned flags;                /* P_IN / P_OUT / P_ARRAY */
  const char *klass;             /* embedded instance class (strings) or
                                    the referenced class (references) */
  const char *doc;
};

struct call;
typedef uint32_t (*method_fn) (struct call *c, json_t *in, json_t *out);

struct method {
  const char *klass;
  const char *name;
  const struct param *params;    /* terminated by a NULL name */
  bool job;                      /* runs as a job (4096 + Job) */
  const uint32_t *codes;         /* return codes it can give, 0-terminated
                                    after the leading 0 */
  const char *doc;
  method_fn fn;
  unsigned deadline_ms;          /* sync, but a job if slower than this */
};

extern const struct method vhdkitd_methods[];
extern const size_t vhdkitd_nmethods;
const struct method *method_find (const char *klass, const char *name);
bool class_known (const char *klass);
const char *rc_description (uint32_t rc);

/* The context of one call: where errors go, progress, cancellation. */
struct job;
struct call {
  const struct method *m;
  struct job *job;               /* NULL for a sync call */
  char error[1024];              /* ErrorDescription */
  int *cancel;                   /* atomic; non-zero: stop (jobs only) */
};

/* Set c->error from a format; returns RC for "return call_fail (...)". */
uint32_t call_fail (struct call *c, uint32_t rc, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));
/* Fill c->error from the library's thread-local error; returns its code. */
uint32_t call_lib_fail (struct call *c);
/* For long calls: a progress callback that updates the job and stops
 * when the job is cancelled. */
int call_progress (void *opaque, uint64_t done, uint64_t total);

/* params.c: check IN against M's in-parameters.  0, or a return code
 * with c->error naming the parameter. */
uint32_t params_check (struct call *c, json_t *in);
/* Before a job starts: its paths and embedded settings (params.c). */
uint32_t params_precheck (struct call *c, json_t *in);
/* methods.c: is SD (an embedded Msvm_VirtualHardDiskSettingData) a disk
 * that can be created (CONVERT: as a conversion's target)? */
uint32_t settings_check (struct call *c, json_t *sd, const char *param, bool convert);

/* ---- allowed roots (roots.c) ---- */
int roots_add (const char *dir);            /* 0 or -1 with a message */
size_t roots_count (void);
const char *roots_get (size_t i);
/* Resolve PATH (absolute) inside a root.  MUST_EXIST: the file must
 * exist (else 32779); otherwise its folder must exist and the file name
 * may be new.  REAL gets the path with no symlink and no "..".  0, or a
 * return code with c->error set. */
uint32_t roots_resolve (struct call *c, const char *param, const char *path,
                        bool must_exist, char *real, size_t n);

/* ---- open disks (registry.c) ---- */
struct reg_disk {
  struct vhdkit_disk *d;
  char *path;                    /* real path, the key */
};
/* Get the shared handle of the image at REAL (opened read-write, or
 * read-only when the file cannot be written).  0 or a return code with
 * c->error set.  Pair with reg_put. */
uint32_t reg_get (struct call *c, const char *real, struct reg_disk **out);
void reg_put (struct reg_disk *rd);
/* Close REAL's handle if no call uses it (before operations that open
 * the file themselves): 0, or 32774 with c->error set. */
uint32_t reg_evict (struct call *c, const char *real);
void reg_set_idle_seconds (unsigned s);
unsigned reg_idle_seconds (void);
uint64_t reg_now_ms (void);               /* CLOCK_MONOTONIC */
void reg_close_idle (void);                 /* from the housekeeping thread */
int reg_close_all (void);                   /* at shutdown: flush and close */
size_t reg_count (void);
/* The real paths of the open disks, a JSON array of strings. */
json_t *reg_paths (void);

/* ---- jobs (jobs.c) ---- */
int jobs_init (const char *state_dir, unsigned workers);
/* Start M as a job with IN; fills the job's object path into JOBPATH. */
uint32_t jobs_start (struct call *c, json_t *in, char *jobpath, size_t n);
/* Run C's method now; if it ends within MS milliseconds that is the
 * call's answer (OUT filled), otherwise it goes on as a job (4096 and
 * JOBPATH) whose instance carries the out-parameters when it completes. */
uint32_t jobs_run_deadline (struct call *c, json_t *in, json_t *out, unsigned ms, char *jobpath, size_t n);
/* JSON of one job (NULL if none) or of all jobs. */
json_t *jobs_get (const char *instance_id);
json_t *jobs_list (void);
/* RequestStateChange: 0 or a return code with *err set. */
uint32_t jobs_request_state (const char *instance_id, unsigned state, char *err, size_t n);
void jobs_set_percent (struct job *j, unsigned pct);
void jobs_shutdown (unsigned deadline_seconds);
bool jobs_stopping (void);

/* ---- CIM classes (classes.c) ---- */
#define CP_KEY   1u
#define CP_ARRAY 2u

struct cim_prop {
  const char *name;
  enum cim_type type;
  unsigned flags;                /* CP_KEY / CP_ARRAY */
  const char *values;            /* "2=Enabled,3=Disabled": ValueMap and
                                    Values qualifiers, or NULL */
  const char *doc;
};

struct cim_class {
  const char *name;
  const char *doc;
  const struct cim_prop *props;  /* terminated by a NULL name */
  const char *service_name;      /* a service class (one instance, this
                                    Name); NULL for the others */
};

void classes_init (void);                   /* before the doors open */
int classes_check (void);                   /* problems logged, counted */
size_t classes_count (void);
const struct cim_class *classes_at (size_t i);
const struct cim_class *classes_find (const char *name);   /* any case */
const struct cim_prop *classes_prop (const struct cim_class *k, const char *name);
json_t *classes_service_instance (const struct cim_class *k);
const char *classes_hostname (void);

/* ---- credentials of the TCP door (auth.c) ---- */
#define AUTH_BASIC  1u
#define AUTH_BEARER 2u
/* Load (or, on SIGHUP, replace) the credentials file: 0, or -1 with a
 * sentence logged and the previous table kept. */
int auth_load (const char *path);
/* Incremented by every successful auth_load (per-connection caches). */
unsigned auth_generation (void);
/* Check an Authorization header value against the schemes in KINDS.
 * true, or false with WHY (a sentence for the 401 answer). */
bool auth_check (const char *header, unsigned kinds, char *why, size_t n);
/* The helper modes: print an entry for the credentials file.  Exit
 * status. */
int auth_hash_password (const char *name);
int auth_new_token (const char *name);

/* ---- the CIM-XML door (cimxml.c) ---- */
struct cimxml_exchange {
  /* in: the HTTP request's headers (NULL when absent) and body */
  const char *operation, *method, *batch, *protocol_version;
  const char *body;
  size_t len;
  /* out: the answer (body malloc'ed) */
  unsigned status;
  const char *cimerror;          /* the CIMError header, or NULL */
  const char *content_type;
  char *reply;
  size_t reply_len;
};
void cimxml_init (void);
void cimxml_serve (struct cimxml_exchange *x);

/* ---- doors ---- */
/* Run one call of M with IN (already decoded); fills OUT with the out
 * parameters, ReturnValue, Job and ErrorDescription. */
json_t *dispatch (const struct method *m, json_t *in);
int http_start_unix (const char *path, unsigned mode, unsigned threads);
/* --listen: parse SPEC ("ADDR:PORT", "[ADDR]:PORT"); 0, or -1 with a
 * sentence logged.  *LOOPBACK tells whether the address is a loopback one. */
int http_listen_check (const char *spec, bool *loopback);
/* The TLS pair (PEM text) loads and matches: 0, or -1 with a sentence. */
int http_tls_check (const char *cert, const char *key, const char *cert_path, const char *key_path);
/* Start the TCP door (both doors on one port); CERT and KEY are PEM
 * text (both NULL: plain HTTP).  0 or -1 with a sentence logged; the
 * address actually bound (port 0 picks one) goes to BOUND. */
int http_start_tcp (const char *spec, const char *cert, const char *key, unsigned threads,
                    char *bound, size_t n);
void http_stop (void);
/* Peer access to the Unix socket: uid/gid allowed? */
bool access_peer_ok (unsigned uid, unsigned gid);

/* The API reference (docs/API.md), from the table. */
void api_doc_print (FILE *f);

#endif
