/* Unit tests of common/: CRC-32C against published check values, GUID
 * text and byte order against a VHDX constant, UTF-16LE round trips and
 * rejections. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include "crc32c.h"
#include "guid.h"
#include "utf16.h"
#include "endian.h"

static int failures;
#define CHECK(cond) do { if (!(cond)) { \
      fprintf (stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++; } } while (0)

int
main (void)
{
  /* RFC 3720 B.4 test vectors and the "123456789" check value. */
  CHECK (crc32c (0, "123456789", 9) == 0xE3069283);
  uint8_t zeros[32] = { 0 }, ones[32], inc[32];
  memset (ones, 0xff, sizeof ones);
  for (int i = 0; i < 32; i++) inc[i] = (uint8_t) i;
  CHECK (crc32c (0, zeros, 32) == 0x8A9136AA);
  CHECK (crc32c (0, ones, 32) == 0x62A8AB43);
  CHECK (crc32c (0, inc, 32) == 0x46DD794E);
  /* Incremental == one shot, at every split. */
  for (size_t k = 0; k <= 32; k++)
    CHECK (crc32c (crc32c (0, inc, k), inc + k, 32 - k) == 0x46DD794E);
  /* crc32c_skip treats the 4 bytes at the offset as zero. */
  uint8_t buf[64];
  memcpy (buf, inc, 32); memcpy (buf + 32, inc, 32);
  uint32_t want;
  buf[4] = buf[5] = buf[6] = buf[7] = 0;
  want = crc32c (0, buf, 64);
  buf[4] = 0xde; buf[5] = 0xad;
  CHECK (crc32c_skip (buf, 64, 4) == want);

  /* The BAT region GUID as MS-VHDX prints it and as it is stored. */
  struct guid g;
  CHECK (guid_from_text (&g, "2DC27766-F623-4200-9D64-115E9BFD4A08") == 0);
  static const uint8_t stored[16] = { 0x66,0x77,0xc2,0x2d,0x23,0xf6,0x00,0x42,
                                      0x9d,0x64,0x11,0x5e,0x9b,0xfd,0x4a,0x08 };
  CHECK (memcmp (g.b, stored, 16) == 0);
  char t[40];
  guid_to_text (&g, t);
  CHECK (strcmp (t, "2dc27766-f623-4200-9d64-115e9bfd4a08") == 0);
  CHECK (guid_from_text (&g, "{2dc27766-f623-4200-9d64-115e9bfd4a08}") == 0);
  CHECK (guid_from_text (&g, "2dc27766-f623-4200-9d64-115e9bfd4a0") == -1);
  CHECK (guid_from_text (&g, "2dc27766-f623-4200-9d64-115e9bfd4a0x") == -1);
  CHECK (guid_from_text (&g, "2dc27766:f623-4200-9d64-115e9bfd4a08") == -1);
  CHECK (guid_from_text (&g, "{2dc27766-f623-4200-9d64-115e9bfd4a08") == -1);
  struct guid a, b;
  CHECK (guid_generate (&a) == 0 && guid_generate (&b) == 0);
  CHECK (!guid_eq (&a, &b) && !guid_is_zero (&a));
  CHECK ((a.b[7] >> 4) == 4 && (a.b[8] & 0xc0) == 0x80);

  /* UTF-16LE */
  size_t len;
  uint8_t *u = utf8_to_utf16le ("..\\dir\\p\xc3\xa9re\xf0\x9f\x98\x80.vhdx", &len);
  CHECK (u != NULL);
  char *back = utf16le_to_utf8 (u, len);
  CHECK (back && strcmp (back, "..\\dir\\p\xc3\xa9re\xf0\x9f\x98\x80.vhdx") == 0);
  free (u); free (back);
  static const uint8_t lone_surrogate[] = { 0x00, 0xd8, 0x41, 0x00 };
  CHECK (utf16le_to_utf8 (lone_surrogate, 4) == NULL && errno == EILSEQ);
  static const uint8_t odd[] = { 0x41, 0x00, 0x42 };
  CHECK (utf16le_to_utf8 (odd, 3) == NULL);
  static const uint8_t nul[] = { 0x41, 0x00, 0x00, 0x00 };
  CHECK (utf16le_to_utf8 (nul, 4) == NULL);
  CHECK (utf8_to_utf16le ("\xc3", &len) == NULL);
  CHECK (utf8_to_utf16le ("\xed\xa0\x80", &len) == NULL);   /* encoded surrogate */

  /* endian */
  uint8_t e[8];
  put_le64 (e, UINT64_C (0x0102030405060708));
  CHECK (e[0] == 8 && e[7] == 1 && get_le64 (e) == UINT64_C (0x0102030405060708));
  put_le16 (e, 0xabcd);
  CHECK (get_le16 (e) == 0xabcd && e[0] == 0xcd);

  if (failures) { fprintf (stderr, "%d checks failed\n", failures); return 1; }
  return 0;
}
