/* The allowed roots (vhdkitd.h).
 *
 * Each root is opened once at start (an O_PATH descriptor of its real
 * folder).  A request's path must be absolute, contain no "." or ".."
 * component and start with a root's real path; the rest is then
 * resolved by the kernel below that root's descriptor (openat2 with
 * RESOLVE_BENEATH: a symlink or ".." that would leave the root fails),
 * and the real path read back from the descriptor is what the library
 * gets.  That path has no symlink in it; the registry checks again
 * after the library opened it that it still resolves to itself
 * (registry.c).  A folder swapped for a symlink in the instant between
 * the library's open and that check is the one race left (docs/vhdkitd.8.md,
 * "Allowed roots").
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "vhdkitd.h"

#define MAX_ROOTS 64

static struct { char *path; int fd; } roots[MAX_ROOTS];
static size_t nroots;

int
roots_add (const char *dir)
{
  char real[PATH_MAX];
  struct stat st;
  if (nroots == MAX_ROOTS) {
    vlog ("too many --root options (at most %d)", MAX_ROOTS);
    return -1;
  }
  if (!realpath (dir, real) || stat (real, &st) == -1) {
    vlog ("root %s: %s", dir, strerror (errno));
    return -1;
  }
  if (!S_ISDIR (st.st_mode)) {
    vlog ("root %s is not a folder", dir);
    return -1;
  }
  int fd = open (real, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd == -1) {
    vlog ("root %s: %s", real, strerror (errno));
    return -1;
  }
  roots[nroots].path = strdup (real);
  roots[nroots].fd = fd;
  nroots++;
  return 0;
}

size_t roots_count (void) { return nroots; }
const char *roots_get (size_t i) { return i < nroots ? roots[i].path : NULL; }

static int
openat2_beneath (int dirfd, const char *rel, int flags)
{
  struct open_how how = { .flags = (uint64_t) flags | O_CLOEXEC,
                          .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS };
  return (int) syscall (SYS_openat2, dirfd, rel, &how, sizeof how);
}

static bool
bad_components (const char *p)
{
  for (const char *s = p; *s; ) {
    while (*s == '/') s++;
    size_t n = strcspn (s, "/");
    if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) return true;
    s += n;
  }
  return false;
}

uint32_t
roots_resolve (struct call *c, const char *param, const char *path, bool must_exist,
               char *real, size_t n)
{
  if (!path)
    return call_fail (c, VHDKIT_RC_INVALID_PARAMETER, "%s is missing", param);
  if (path[0] != '/')
    return call_fail (c, VHDKIT_RC_INVALID_PARAMETER, "%s: \"%.200s\" is not an absolute path", param, path);
  if (strlen (path) >= PATH_MAX)
    return call_fail (c, VHDKIT_RC_INVALID_PARAMETER, "%s: the path is longer than %d bytes", param, PATH_MAX - 1);
  if (bad_components (path))
    return call_fail (c, VHDKIT_RC_ACCESS_DENIED, "%s: \"%.200s\" has a \".\" or \"..\" component", param, path);
  for (size_t i = 0; i < nroots; i++) {
    size_t rl = strlen (roots[i].path);
    if (strncmp (path, roots[i].path, rl) != 0 ||
        (path[rl] != '/' && path[rl] != 0 && !(rl == 1 && path[0] == '/')))
      continue;
    const char *rel = path + rl;
    while (*rel == '/') rel++;
    char dirpart[PATH_MAX], *base = NULL;
    const char *target = rel;
    if (!must_exist) {
      /* The folder must exist below the root; the file name is new. */
      snprintf (dirpart, sizeof dirpart, "%s", rel);
      char *slash = strrchr (dirpart, '/');
      if (slash) { *slash = 0; base = slash + 1; target = dirpart; }
      else { base = dirpart; target = "."; }
      if (!*base)
        return call_fail (c, VHDKIT_RC_INVALID_PARAMETER, "%s: \"%.200s\" names a folder, not a file", param, path);
    }
    if (!*target) target = ".";
    int fd = openat2_beneath (roots[i].fd, target, O_PATH);
    if (fd == -1) {
      if (errno == EXDEV || errno == ELOOP)
        return call_fail (c, VHDKIT_RC_ACCESS_DENIED, "%s: %.200s leads outside the allowed root %s", param, path,
                          roots[i].path);
      if (errno == ENAMETOOLONG)
        return call_fail (c, VHDKIT_RC_INVALID_PARAMETER, "%s: %.200s: a name in it is too long", param, path);
      if (errno == ENOENT || errno == ENOTDIR)
        return call_fail (c, VHDKIT_RC_FILE_NOT_FOUND, "%s: %.200s: %s", param, path,
                          must_exist ? "no such file" : "its folder does not exist");
      return call_fail (c, VHDKIT_RC_ACCESS_DENIED, "%s: %.200s: %s", param, path, strerror (errno));
    }
    char link[64], buf[PATH_MAX];
    snprintf (link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t l = readlink (link, buf, sizeof buf - 1);
    struct stat st;
    int se = fstat (fd, &st);
    close (fd);
    if (l <= 0 || se == -1)
      return call_fail (c, VHDKIT_RC_FAILED, "%s: %.200s: cannot read back the resolved path", param, path);
    buf[l] = 0;
    if (must_exist && !S_ISREG (st.st_mode))
      return call_fail (c, VHDKIT_RC_INVALID_PARAMETER, "%s: %.200s is not a regular file", param, path);
    if (!must_exist && !S_ISDIR (st.st_mode))
      return call_fail (c, VHDKIT_RC_FILE_NOT_FOUND, "%s: %.200s: its folder is not a folder", param, path);
    int w = must_exist ? snprintf (real, n, "%s", buf) : snprintf (real, n, "%s/%s", buf, base);
    if (w < 0 || (size_t) w >= n)
      return call_fail (c, VHDKIT_RC_INVALID_PARAMETER, "%s: the resolved path is too long", param);
    /* Belt and braces: the kernel kept it below the root. */
    size_t rl2 = strlen (roots[i].path);
    if (strncmp (real, roots[i].path, rl2) != 0 || (real[rl2] != '/' && real[rl2] != 0))
      return call_fail (c, VHDKIT_RC_ACCESS_DENIED, "%s: %.200s resolves outside the allowed root %s", param, path,
                        roots[i].path);
    return 0;
  }
  return call_fail (c, VHDKIT_RC_ACCESS_DENIED, "%s: %.200s is not inside an allowed root (%s%s)", param, path,
                    nroots ? roots[0].path : "none configured", nroots > 1 ? ", ..." : "");
}
