/* vhdkit set: VHD Sets (docs/VHD-SETS.md).  One verb with sub-verbs,
 * each a struct cli_verb named "set SUB" (as vhdkit rct does), named
 * after the service methods they back:
 *
 *   convert    ConvertVirtualHardDiskToVHDSet
 *   snapshot   (take a snapshot)
 *   info       GetVHDSetInformation        (Msvm_VHDSetInformation)
 *   snapshots  GetVHDSnapshotInformation   (Msvm_VHDSnapshotInformation)
 *   delete     DeleteVHDSnapshot
 *   apply      (apply a snapshot to the leaf)
 *   optimize   OptimizeVHDSet
 *   set-info   SetVHDSnapshotInformation
 *
 * Disk verbs (read, write, info, check, rct, changes) take SET.vhds for
 * the leaf and SET.vhds@ID for a snapshot; nothing here is needed for
 * those.
 *
 * Through vhdkitd (--connect) each sub-verb calls the method it is named
 * after (snapshot and apply: Vhdkit_VHDSetService.TakeSnapshot and
 * ApplySnapshot) and prints what it prints locally; the options the
 * service has no parameter for (convert --output, --granularity and
 * --no-tracking, snapshot --id) are refused.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vhdkit.h"
#include "cli.h"
#include "remote.h"
#include "cimtime.h"

/* ISO 8601 UTC with microseconds. */
static void
format_time (int64_t ns, char *out, size_t n)
{
  time_t t = (time_t) (ns / 1000000000);
  struct tm tm;
  gmtime_r (&t, &tm);
  size_t k = strftime (out, n, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf (out + k, n - k, ".%06dZ", (int) ((ns % 1000000000) / 1000));
}

/* Nanoseconds since 1970, or "YYYY-MM-DDTHH:MM:SS[.frac]Z". */
static int
parse_time (const char *s, int64_t *ns)
{
  uint64_t v;
  if (cli_parse_number (s, INT64_MAX, &v) == 0) { *ns = (int64_t) v; return 0; }
  struct tm tm;
  memset (&tm, 0, sizeof tm);
  const char *p = strptime (s, "%Y-%m-%dT%H:%M:%S", &tm);
  if (!p) return -1;
  int64_t frac = 0, scale = 1000000000;
  if (*p == '.') {
    for (p++; *p >= '0' && *p <= '9'; p++) {
      if (scale > 1) { scale /= 10; frac += (*p - '0') * scale; }
    }
  }
  if (strcmp (p, "Z") != 0 && *p) return -1;
  time_t t = timegm (&tm);
  if (t < 0) return -1;
  *ns = (int64_t) t * 1000000000 + frac;
  return 0;
}

/* The strings of the JSON array A, pointing into A, in *OUT (an array
 * to free).  0, or -1 if A is no array of strings. */
static int
strings_of (json_t *a, char ***out, size_t *n)
{
  size_t i;
  json_t *v;

  *out = NULL;
  *n = 0;
  if (!json_is_array (a))
    return -1;
  *out = calloc (json_array_size (a) + 1, sizeof **out);
  if (*out == NULL)
    return -1;
  json_array_foreach (a, i, v) {
    if (!json_is_string (v))
      return -1;
    (*out)[i] = (char *) json_string_value (v);
  }
  *n = json_array_size (a);
  return 0;
}

static int
print_json_strings (char **a, size_t n)
{
  putchar ('[');
  for (size_t i = 0; i < n; i++) {
    if (i) putchar (',');
    cli_json_string (stdout, a[i]);
  }
  putchar (']');
  return 0;
}

/* ---- set convert ---- */

static const struct cli_verb verb_convert;

static int
run_convert (int argc, char **argv)
{
  const char *output = NULL;
  uint32_t granularity = 0;
  int no_tracking = 0;
  char **ops;
  struct cli_opt opts[] = {
    CLI_ARG ("output", CLI_OPT_STRING, &output, "SET.vhds",
             "the set file (default: IMAGE with the extension .vhds)"),
    CLI_ARG ("granularity", CLI_OPT_U32, &granularity, "SIZE",
             "tracking granularity if the image is not tracked yet (default 64K)"),
    CLI_FLAG ("no-tracking", &no_tracking, 1,
              "do not enable change tracking (snapshots then have no RCT ID)"),
    CLI_END,
  };
  int r = cli_parse_args (&verb_convert, opts, argc, argv, &ops);
  if (r != CLI_CONTINUE) return r;
  if (no_tracking && cli_given (opts, "granularity"))
    return cli_usage ("--granularity and --no-tracking exclude each other");
  if (remote_socket ()) {
    static const char *const local_only[] = {
      "output", "granularity", "no-tracking",
    };
    json_t *p, *out;

    for (size_t i = 0; i < sizeof local_only / sizeof local_only[0]; i++) {
      if (cli_given (opts, local_only[i])) {
        char what[32];
        snprintf (what, sizeof what, "--%s", local_only[i]);
        return remote_unsupported (what, "the service makes IMAGE.vhds "
                                   "beside the image, with tracking at "
                                   "the default granularity");
      }
    }
    if ((p = remote_path (ops[0])) == NULL)
      return CLI_EXIT_FAILURE;
    if (remote_run (REMOTE_IMS, "ConvertVirtualHardDiskToVHDSet",
                    json_pack ("{s:o}", "VirtualHardDiskPath", p), 0, &out))
      return CLI_EXIT_FAILURE;
    json_decref (out);
    return CLI_EXIT_OK;
  }
  if (vhdkit_set_convert (ops[0], output, no_tracking ? UINT32_MAX : granularity) == -1)
    return cli_lib_error ();
  return CLI_EXIT_OK;
}

static const struct cli_verb verb_convert = {
  "set convert", "IMAGE", 1, "[--output SET.vhds] [--granularity SIZE | --no-tracking]",
  "Make a VHDX image the base of a new VHD Set", run_convert,
};

/* ---- set snapshot ---- */

static const struct cli_verb verb_snapshot;

static int
run_snapshot (int argc, char **argv)
{
  const char *id = NULL;
  char out[VHDKIT_GUID_STR];
  char **ops;
  struct cli_opt opts[] = {
    CLI_ARG ("id", CLI_OPT_STRING, &id, "GUID", "the snapshot ID (default: a random GUID)"),
    CLI_FLAG ("json", &cli_json, 1, "print {\"ReturnValue\":0,\"SnapshotId\":...}"),
    CLI_END,
  };
  int r = cli_parse_args (&verb_snapshot, opts, argc, argv, &ops);
  if (r != CLI_CONTINUE) return r;
  if (remote_socket ()) {
    json_t *p, *res;
    const char *sid;

    if (id)
      return remote_unsupported ("--id", "the service chooses the "
                                 "snapshot's ID");
    if ((p = remote_path (ops[0])) == NULL)
      return CLI_EXIT_FAILURE;
    if (remote_run (REMOTE_VSS, "TakeSnapshot",
                    json_pack ("{s:o}", "VHDSetPath", p), 0, &res))
      return CLI_EXIT_FAILURE;
    r = remote_unpack (res, "TakeSnapshot", "{s:s}", "SnapshotId", &sid);
    if (r == CLI_EXIT_OK)
      snprintf (out, sizeof out, "%s", sid);
    json_decref (res);
    if (r != CLI_EXIT_OK)
      return r;
  }
  else if (vhdkit_set_snapshot (ops[0], id, out) == -1)
    return cli_lib_error ();
  if (cli_json) {
    printf ("{\"ReturnValue\":0,\"SnapshotId\":");
    cli_json_string (stdout, out);
    printf ("}\n");
  }
  else
    printf ("%s\n", out);
  return CLI_EXIT_OK;
}

static const struct cli_verb verb_snapshot = {
  "set snapshot", "SET.vhds", 1, "[--id GUID] [--json]",
  "Take a snapshot: freeze the leaf, print the snapshot ID", run_snapshot,
};

/* ---- set info ---- */

static const struct cli_verb verb_info;

static void
print_info (const struct vhdkit_set_info *ip)
{
  struct vhdkit_set_info i = *ip;

  if (cli_json) {
    printf ("{\"ReturnValue\":0,\"Path\":");
    cli_json_string (stdout, i.path);
    printf (",\"SnapshotIdList\":");
    print_json_strings (i.snapshot_ids, i.n_snapshot_ids);
    printf (",\"AllPaths\":");
    print_json_strings (i.all_paths, i.n_all_paths);
    printf (",\"LeafPath\":");
    cli_json_string (stdout, i.leaf_path);
    printf ("}\n");
  }
  else {
    printf ("Path:           %s\n", i.path);
    printf ("Leaf:           %s\n", i.leaf_path);
    printf ("SnapshotIdList:%s\n", i.n_snapshot_ids ? "" : " (none)");
    for (size_t k = 0; k < i.n_snapshot_ids; k++) printf ("  %s\n", i.snapshot_ids[k]);
    printf ("AllPaths:\n");
    for (size_t k = 0; k < i.n_all_paths; k++) printf ("  %s\n", i.all_paths[k]);
  }
}

/* GetVHDSetInformation with AllPaths; the leaf is the first of them. */
static int
remote_info (const char *set)
{
  struct vhdkit_set_info i = VHDKIT_SET_INFO_INIT;
  json_t *p = remote_path (set), *out, *ids, *all;
  const char *path;
  int r;

  if (p == NULL)
    return CLI_EXIT_FAILURE;
  if (remote_run (REMOTE_IMS, "GetVHDSetInformation",
                  json_pack ("{s:o, s:[i]}", "VHDSetPath", p,
                             "AdditionalInformation", 2), 0, &out))
    return CLI_EXIT_FAILURE;
  r = remote_unpack (out, "GetVHDSetInformation", "{s:{s:s, s:o, s:o}}",
                     "Information", "Path", &path, "SnapshotIdList", &ids,
                     "AllPaths", &all);
  if (r == CLI_EXIT_OK &&
      (strings_of (ids, &i.snapshot_ids, &i.n_snapshot_ids) == -1 ||
       strings_of (all, &i.all_paths, &i.n_all_paths) == -1))
    r = cli_error (VHDKIT_RC_FAILED, "%s: vhdkitd answered "
                   "GetVHDSetInformation with lists that are not strings",
                   set);
  if (r == CLI_EXIT_OK) {
    i.path = (char *) path;
    i.leaf_path = i.n_all_paths ? i.all_paths[0] : (char *) "";
    print_info (&i);
  }
  free (i.snapshot_ids);
  free (i.all_paths);
  json_decref (out);
  return r;
}

static int
run_info (int argc, char **argv)
{
  char **ops;
  struct cli_opt opts[] = {
    CLI_FLAG ("json", &cli_json, 1, "print Msvm_VHDSetInformation as JSON"),
    CLI_END,
  };
  int r = cli_parse_args (&verb_info, opts, argc, argv, &ops);
  if (r != CLI_CONTINUE) return r;
  if (remote_socket ())
    return remote_info (ops[0]);
  struct vhdkit_set_info i = VHDKIT_SET_INFO_INIT;
  if (vhdkit_set_get_info (ops[0], &i) == -1)
    return cli_lib_error ();
  print_info (&i);
  vhdkit_set_info_free (&i);
  return CLI_EXIT_OK;
}

static const struct cli_verb verb_info = {
  "set info", "SET.vhds", 1, "[--json]",
  "Show the set: its path, snapshot IDs and files", run_info,
};

/* ---- set snapshots ---- */

static const struct cli_verb verb_snapshots;
static void print_snapshots (struct vhdkit_snapshot_info **s, size_t n,
                             int parents);
static int remote_snapshots (const char *set, const char **ids, size_t nids,
                             int parents);

static int
run_snapshots (int argc, char **argv)
{
  const char *idlist = NULL;
  int parents = 0;
  char **ops;
  struct cli_opt opts[] = {
    CLI_ARG ("id", CLI_OPT_STRING, &idlist, "GUID[,GUID...]", "only these snapshots (default: all)"),
    CLI_FLAG ("parents", &parents, 1, "include ParentPathsList"),
    CLI_FLAG ("json", &cli_json, 1, "print Msvm_VHDSnapshotInformation records as JSON"),
    CLI_END,
  };
  int r = cli_parse_args (&verb_snapshots, opts, argc, argv, &ops);
  if (r != CLI_CONTINUE) return r;
  const char *ids[256];
  size_t nids = 0;
  char *copy = idlist ? strdup (idlist) : NULL;
  if (idlist && !copy) return cli_error (VHDKIT_RC_OUT_OF_MEMORY, "out of memory");
  for (char *sv = NULL, *t = copy ? strtok_r (copy, ",", &sv) : NULL; t; t = strtok_r (NULL, ",", &sv)) {
    if (nids == sizeof ids / sizeof ids[0]) { free (copy); return cli_usage ("at most 256 IDs in --id"); }
    ids[nids++] = t;
  }
  if (idlist && nids == 0) { free (copy); return cli_usage ("--id needs at least one GUID"); }
  struct vhdkit_snapshot_info **s;
  size_t n;
  if (remote_socket ()) {
    r = remote_snapshots (ops[0], ids, nids, parents);
    free (copy);
    return r;
  }
  if (vhdkit_set_get_snapshots (ops[0], ids, nids, parents, &s, &n) == -1) {
    free (copy);
    return cli_lib_error ();
  }
  free (copy);
  print_snapshots (s, n, parents);
  vhdkit_snapshots_free (s, n);
  return CLI_EXIT_OK;
}

static void
print_snapshots (struct vhdkit_snapshot_info **s, size_t n, int parents)
{
  if (cli_json) printf ("{\"ReturnValue\":0,\"Snapshots\":[");
  for (size_t k = 0; k < n; k++) {
    char tm[64];
    format_time (s[k]->creation_time_ns, tm, sizeof tm);
    if (cli_json) {
      printf ("%s{\"FilePath\":", k ? "," : "");
      cli_json_string (stdout, s[k]->file_path);
      printf (",\"SnapshotId\":");
      cli_json_string (stdout, s[k]->snapshot_id);
      printf (",\"SnapshotPath\":");
      cli_json_string (stdout, s[k]->snapshot_path);
      printf (",\"ParentPathsList\":");
      print_json_strings (s[k]->parent_paths, s[k]->n_parent_paths);
      printf (",\"CreationTime\":\"%s\",\"ResilientChangeTrackingId\":", tm);
      cli_json_string (stdout, s[k]->rct_id);
      printf ("}");
    }
    else {
      printf ("%sSnapshotId:                %s\n", k ? "\n" : "", s[k]->snapshot_id);
      printf ("SnapshotPath:              %s\n", s[k]->snapshot_path[0] ? s[k]->snapshot_path : "(reference point)");
      printf ("CreationTime:              %s\n", tm);
      printf ("ResilientChangeTrackingId: %s\n", s[k]->rct_id[0] ? s[k]->rct_id : "(none)");
      if (parents) {
        printf ("ParentPathsList:\n");
        for (size_t j = 0; j < s[k]->n_parent_paths; j++) printf ("  %s\n", s[k]->parent_paths[j]);
      }
    }
  }
  if (cli_json) printf ("]}\n");
}

/* GetVHDSnapshotInformation: the records, as the library gives them. */
static int
remote_snapshots (const char *set, const char **ids, size_t nids,
                  int parents)
{
  static const char method[] = "GetVHDSnapshotInformation";
  json_t *p = remote_path (set), *idv = NULL, *out, *list, *v;
  struct vhdkit_snapshot_info *recs = NULL, **s = NULL;
  size_t n = 0, k;
  int r;

  if (p == NULL)
    return CLI_EXIT_FAILURE;
  if (nids && (idv = json_array ()) != NULL)
    for (k = 0; k < nids; k++)
      json_array_append_new (idv, json_string (ids[k]));
  if (remote_run (REMOTE_IMS, method,
                  json_pack ("{s:o, s:o?, s:o?}", "VHDSetPath", p,
                             "SnapshotIds", idv, "AdditionalInformation",
                             parents ? json_pack ("[i]", 2) : NULL),
                  0, &out))
    return CLI_EXIT_FAILURE;
  r = remote_unpack (out, method, "{s:o}", "SnapshotInformation", &list);
  if (r == CLI_EXIT_OK && !json_is_array (list))
    r = cli_error (VHDKIT_RC_FAILED, "%s: vhdkitd answered %s without a "
                   "list of records", set, method);
  n = r == CLI_EXIT_OK ? json_array_size (list) : 0;
  if (r == CLI_EXIT_OK && ((recs = calloc (n + 1, sizeof *recs)) == NULL ||
                           (s = calloc (n + 1, sizeof *s)) == NULL))
    r = cli_error (VHDKIT_RC_OUT_OF_MEMORY, "out of memory");
  json_array_foreach (r == CLI_EXIT_OK ? list : NULL, k, v) {
    const char *fp, *sid, *sp, *ct, *rct;
    json_t *pp;

    r = remote_unpack (v, method, "{s:s, s:s, s:s, s:o, s:s, s:s}",
                       "FilePath", &fp, "SnapshotId", &sid,
                       "SnapshotPath", &sp, "ParentPathsList", &pp,
                       "CreationTime", &ct,
                       "ResilientChangeTrackingId", &rct);
    if (r != CLI_EXIT_OK)
      break;
    s[k] = &recs[k];
    recs[k].file_path = (char *) fp;
    recs[k].snapshot_path = (char *) sp;
    snprintf (recs[k].snapshot_id, sizeof recs[k].snapshot_id, "%s", sid);
    snprintf (recs[k].rct_id, sizeof recs[k].rct_id, "%s", rct);
    if (cim_datetime_parse (ct, &recs[k].creation_time_ns) == -1 ||
        strings_of (pp, &recs[k].parent_paths, &recs[k].n_parent_paths) == -1) {
      r = cli_error (VHDKIT_RC_FAILED, "%s: vhdkitd answered %s with a "
                     "record whose CreationTime or ParentPathsList is not "
                     "as expected", set, method);
      break;
    }
  }
  if (r == CLI_EXIT_OK)
    print_snapshots (s, n, parents);
  for (k = 0; recs && k < n; k++)
    free (recs[k].parent_paths);
  free (recs);
  free (s);
  json_decref (out);
  return r;
}

static const struct cli_verb verb_snapshots = {
  "set snapshots", "SET.vhds", 1, "[--id GUID[,GUID...]] [--parents] [--json]",
  "Show snapshot records", run_snapshots,
};

/* ---- set delete / optimize (progress of merges) ---- */

static const struct cli_verb verb_delete;

static int
run_delete (int argc, char **argv)
{
  int persist = 0, progress = -1;
  char **ops;
  struct cli_opt opts[] = {
    CLI_FLAG ("persist-reference", &persist, 1,
              "keep a reference point: the ID stays usable as a LimitId"),
    CLI_OPTS_PROGRESS (&progress),
    CLI_END,
  };
  int r = cli_parse_args (&verb_delete, opts, argc, argv, &ops);
  if (r != CLI_CONTINUE) return r;
  if (remote_socket ()) {
    json_t *p = remote_path (ops[0]), *out;
    if (p == NULL
        || remote_run (REMOTE_IMS, "DeleteVHDSnapshot",
                       json_pack ("{s:o, s:s, s:b}", "VHDSetPath", p,
                                  "SnapshotId", ops[1],
                                  "PersistReferenceSnapshot", persist),
                       progress, &out))
      return CLI_EXIT_FAILURE;
    json_decref (out);
    return CLI_EXIT_OK;
  }
  struct cli_progress prog;
  cli_progress_begin (&prog, progress);
  r = vhdkit_set_delete_snapshot (ops[0], ops[1], persist, cli_progress_update, &prog);
  cli_progress_end (&prog);
  return r == -1 ? cli_lib_error () : CLI_EXIT_OK;
}

static const struct cli_verb verb_delete = {
  "set delete", "SET.vhds ID", 2, "[--persist-reference] [--progress|--no-progress]",
  "Delete a snapshot (merging away its image when nothing else needs it)", run_delete,
};

static const struct cli_verb verb_optimize;

static int
run_optimize (int argc, char **argv)
{
  int progress = -1;
  char **ops;
  struct cli_opt opts[] = { CLI_OPTS_PROGRESS (&progress), CLI_END };
  int r = cli_parse_args (&verb_optimize, opts, argc, argv, &ops);
  if (r != CLI_CONTINUE) return r;
  if (remote_socket ()) {
    json_t *p = remote_path (ops[0]), *out;
    if (p == NULL
        || remote_run (REMOTE_IMS, "OptimizeVHDSet",
                       json_pack ("{s:o}", "VHDSetPath", p), progress, &out))
      return CLI_EXIT_FAILURE;
    json_decref (out);
    return CLI_EXIT_OK;
  }
  struct cli_progress prog;
  cli_progress_begin (&prog, progress);
  r = vhdkit_set_optimize (ops[0], cli_progress_update, &prog);
  cli_progress_end (&prog);
  return r == -1 ? cli_lib_error () : CLI_EXIT_OK;
}

static const struct cli_verb verb_optimize = {
  "set optimize", "SET.vhds", 1, "[--progress|--no-progress]",
  "Finish interrupted work, merge away unneeded images, remove stray files", run_optimize,
};

/* ---- set apply ---- */

static const struct cli_verb verb_apply;

static int
run_apply (int argc, char **argv)
{
  char **ops;
  struct cli_opt opts[] = { CLI_END };
  int r = cli_parse_args (&verb_apply, opts, argc, argv, &ops);
  if (r != CLI_CONTINUE) return r;
  if (remote_socket ()) {
    json_t *p = remote_path (ops[0]), *out;
    if (p == NULL
        || remote_run (REMOTE_VSS, "ApplySnapshot",
                       json_pack ("{s:o, s:s}", "VHDSetPath", p,
                                  "SnapshotId", ops[1]), 0, &out))
      return CLI_EXIT_FAILURE;
    json_decref (out);
    return CLI_EXIT_OK;
  }
  return vhdkit_set_apply_snapshot (ops[0], ops[1]) == -1 ? cli_lib_error () : CLI_EXIT_OK;
}

static const struct cli_verb verb_apply = {
  "set apply", "SET.vhds ID", 2, "",
  "Revert the leaf to a snapshot (the current leaf is discarded)", run_apply,
};

/* ---- set set-info ---- */

static const struct cli_verb verb_setinfo;

/* SetVHDSnapshotInformation with the record INFO of SET. */
static int
remote_setinfo (const char *set, const struct vhdkit_snapshot_info *info,
                bool has_time)
{
  json_t *p = remote_path (set), *sp = NULL, *out;
  char ct[40] = "";

  if (p == NULL)
    return CLI_EXIT_FAILURE;
  if (info->snapshot_path && (sp = remote_path (info->snapshot_path)) == NULL) {
    json_decref (p);
    return CLI_EXIT_FAILURE;
  }
  if (has_time)
    cim_datetime_format (info->creation_time_ns, ct, sizeof ct);
  if (remote_run (REMOTE_IMS, "SetVHDSnapshotInformation",
                  json_pack ("{s:{s:s, s:o, s:s, s:o, s:s, s:s}}",
                             "Information",
                             "__CLASS", "Msvm_VHDSnapshotInformation",
                             "FilePath", p, "SnapshotId", info->snapshot_id,
                             "SnapshotPath", sp ? sp : json_string (""),
                             "ResilientChangeTrackingId", info->rct_id,
                             "CreationTime", ct), 0, &out))
    return CLI_EXIT_FAILURE;
  json_decref (out);
  return CLI_EXIT_OK;
}

static int
run_setinfo (int argc, char **argv)
{
  const char *id = NULL, *path = NULL, *rct = NULL, *ctime = NULL;
  char **ops;
  struct cli_opt opts[] = {
    CLI_ARG ("id", CLI_OPT_STRING, &id, "GUID", "the record to change or add (required)"),
    CLI_ARG ("path", CLI_OPT_STRING, &path, "FILE", "new record: an image of the set for its content"),
    CLI_ARG ("rct-id", CLI_OPT_STRING, &rct, "ID", "the record's ResilientChangeTrackingId"),
    CLI_ARG ("creation-time", CLI_OPT_STRING, &ctime, "TIME",
             "YYYY-MM-DDTHH:MM:SS[.frac]Z or nanoseconds since 1970"),
    CLI_END,
  };
  int r = cli_parse_args (&verb_setinfo, opts, argc, argv, &ops);
  if (r != CLI_CONTINUE) return r;
  if (!id) return cli_usage ("--id is required");
  struct vhdkit_snapshot_info info;
  memset (&info, 0, sizeof info);
  info.struct_size = sizeof info;
  snprintf (info.snapshot_id, sizeof info.snapshot_id, "%s", id);
  if (strlen (id) >= sizeof info.snapshot_id && strlen (id) != 38)
    return cli_error (VHDKIT_RC_INVALID_PARAMETER, "%s: \"%s\" is not a snapshot ID (a GUID)", ops[0], id);
  if (strlen (id) == 38) snprintf (info.snapshot_id, sizeof info.snapshot_id, "%.36s", id + 1);
  info.snapshot_path = (char *) path;
  if (rct) {
    if (strlen (rct) >= sizeof info.rct_id)
      return cli_error (VHDKIT_RC_INVALID_PARAMETER, "%s: \"%s\" is not an RCT ID", ops[0], rct);
    snprintf (info.rct_id, sizeof info.rct_id, "%s", rct);
  }
  if (ctime && parse_time (ctime, &info.creation_time_ns) == -1)
    return cli_usage ("--creation-time: '%s' is not YYYY-MM-DDTHH:MM:SS[.frac]Z or a number", ctime);
  if (remote_socket ())
    return remote_setinfo (ops[0], &info, ctime != NULL);
  return vhdkit_set_set_snapshot_info (ops[0], &info) == -1 ? cli_lib_error () : CLI_EXIT_OK;
}

static const struct cli_verb verb_setinfo = {
  "set set-info", "SET.vhds", 1, "--id GUID [--path FILE] [--rct-id ID] [--creation-time TIME]",
  "Change or add a snapshot record", run_setinfo,
};

/* ---- set: pick the sub-verb ---- */

static const struct cli_verb *const subverbs[] = {
  &verb_convert, &verb_snapshot, &verb_info, &verb_snapshots,
  &verb_delete, &verb_apply, &verb_optimize, &verb_setinfo,
};
#define NSUBVERBS (sizeof subverbs / sizeof subverbs[0])

static void
print_help (void)
{
  printf ("Usage: vhdkit set SUBVERB [OPTIONS] SET.vhds ...\n"
          "%s.\n"
          "\n"
          "Sub-verbs:\n", cli_verb_set.summary);
  for (size_t i = 0; i < NSUBVERBS; i++)
    printf ("  %-12s %s\n", subverbs[i]->name + 4, subverbs[i]->summary);
  printf ("\n"
          "Disk verbs take SET.vhds (the leaf) and SET.vhds@SNAPSHOT-ID (a snapshot,\n"
          "read-only); 'vhdkit changes SET.vhds --limit-id ID --target-snapshot-id ID'\n"
          "compares two snapshots.\n"
          "Run 'vhdkit set SUBVERB --help' for the options of a sub-verb.\n");
}

static int
run (int argc, char **argv)
{
  const char *arg = argc > 1 ? argv[1] : NULL;
  if (arg == NULL)
    return cli_usage ("missing sub-verb (convert, snapshot, info, snapshots, delete, apply, optimize or set-info)");
  if (strcmp (arg, "-h") == 0 || strcmp (arg, "--help") == 0) {
    print_help ();
    return CLI_EXIT_OK;
  }
  if (arg[0] == '-')
    return cli_usage ("expected a sub-verb before option '%s'", arg);
  for (size_t i = 0; i < NSUBVERBS; i++)
    if (strcmp (arg, subverbs[i]->name + 4) == 0) {
      cli_verb_name = subverbs[i]->name;
      return subverbs[i]->run (argc - 1, argv + 1);
    }
  return cli_usage ("unknown sub-verb '%s'", arg);
}

const struct cli_verb cli_verb_set = {
  "set", "SUBVERB", 1, "[OPTIONS] SET.vhds ...",
  "VHD Sets: convert, snapshot, inspect, delete, apply, optimize", run,
};
