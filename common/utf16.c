/* UTF-16LE conversion (see utf16.h).  Strict: anything malformed is
 * rejected rather than replaced, because these strings name files. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "utf16.h"

char *
utf16le_to_utf8 (const uint8_t *in, size_t len)
{
  if (len % 2) { errno = EILSEQ; return NULL; }
  char *out = malloc (len / 2 * 3 + 1), *p = out;
  if (!out) return NULL;
  for (size_t i = 0; i < len; i += 2) {
    uint32_t c = (uint32_t) in[i] | (uint32_t) in[i + 1] << 8;
    if (c >= 0xd800 && c < 0xdc00) {
      if (i + 3 >= len) goto bad;
      uint32_t c2 = (uint32_t) in[i + 2] | (uint32_t) in[i + 3] << 8;
      if (c2 < 0xdc00 || c2 >= 0xe000) goto bad;
      c = 0x10000 + ((c - 0xd800) << 10) + (c2 - 0xdc00);
      i += 2;
    }
    else if (c >= 0xdc00 && c < 0xe000)
      goto bad;
    if (c == 0) goto bad;
    if (c < 0x80) *p++ = (char) c;
    else if (c < 0x800) {
      *p++ = (char) (0xc0 | c >> 6);
      *p++ = (char) (0x80 | (c & 0x3f));
    }
    else if (c < 0x10000) {
      *p++ = (char) (0xe0 | c >> 12);
      *p++ = (char) (0x80 | ((c >> 6) & 0x3f));
      *p++ = (char) (0x80 | (c & 0x3f));
    }
    else {
      *p++ = (char) (0xf0 | c >> 18);
      *p++ = (char) (0x80 | ((c >> 12) & 0x3f));
      *p++ = (char) (0x80 | ((c >> 6) & 0x3f));
      *p++ = (char) (0x80 | (c & 0x3f));
    }
  }
  *p = '\0';
  return out;
 bad:
  free (out);
  errno = EILSEQ;
  return NULL;
}

uint8_t *
utf8_to_utf16le (const char *in, size_t *outlen)
{
  size_t n = strlen (in);
  uint8_t *out = malloc (n * 4 + 2), *p = out;
  if (!out) return NULL;
  const unsigned char *s = (const unsigned char *) in;
  while (*s) {
    uint32_t c;
    int extra;
    if (*s < 0x80) { c = *s; extra = 0; }
    else if ((*s & 0xe0) == 0xc0) { c = *s & 0x1f; extra = 1; }
    else if ((*s & 0xf0) == 0xe0) { c = *s & 0x0f; extra = 2; }
    else if ((*s & 0xf8) == 0xf0) { c = *s & 0x07; extra = 3; }
    else goto bad;
    s++;
    for (int k = 0; k < extra; k++, s++) {
      if ((*s & 0xc0) != 0x80) goto bad;
      c = c << 6 | (*s & 0x3f);
    }
    if (c > 0x10ffff || (c >= 0xd800 && c < 0xe000)) goto bad;
    if (c >= 0x10000) {
      c -= 0x10000;
      uint32_t hi = 0xd800 + (c >> 10), lo = 0xdc00 + (c & 0x3ff);
      *p++ = (uint8_t) hi; *p++ = (uint8_t) (hi >> 8);
      *p++ = (uint8_t) lo; *p++ = (uint8_t) (lo >> 8);
    }
    else {
      *p++ = (uint8_t) c; *p++ = (uint8_t) (c >> 8);
    }
  }
  *outlen = (size_t) (p - out);
  return out;
 bad:
  free (out);
  errno = EILSEQ;
  return NULL;
}
