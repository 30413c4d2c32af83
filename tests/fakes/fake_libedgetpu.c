/* A stand-in for libedgetpu's device-listing C API (edgetpu_c.h):
 *   struct edgetpu_device* edgetpu_list_devices(size_t* num_devices);
 *   void edgetpu_free_devices(struct edgetpu_device* dev);
 * Devices come from $FAKE_EDGETPU_DEVICES, e.g. "usb:/sys/bus/usb/devices/2-1,pci:/dev/apex_0".
 * No delegate is implemented: tests pair it with a fake load_delegate. */
#include <stdlib.h>
#include <string.h>

enum edgetpu_device_type { EDGETPU_APEX_PCI = 0, EDGETPU_APEX_USB = 1 };
struct edgetpu_device { enum edgetpu_device_type type; const char* path; };

static char* copy_str(const char* s, size_t n) {
  char* p = (char*)malloc(n + 1);
  memcpy(p, s, n);
  p[n] = 0;
  return p;
}

struct edgetpu_device* edgetpu_list_devices(size_t* num_devices) {
  const char* spec = getenv("FAKE_EDGETPU_DEVICES");
  *num_devices = 0;
  if (!spec || !*spec) return NULL;
  size_t count = 1;
  for (const char* c = spec; *c; ++c) if (*c == ',') ++count;
  struct edgetpu_device* devs = (struct edgetpu_device*)calloc(count, sizeof(struct edgetpu_device));
  const char* p = spec;
  size_t i = 0;
  while (*p && i < count) {
    const char* end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    const char* colon = memchr(p, ':', len);
    if (colon) {
      devs[i].type = (strncmp(p, "pci", 3) == 0) ? EDGETPU_APEX_PCI : EDGETPU_APEX_USB;
      devs[i].path = copy_str(colon + 1, len - (size_t)(colon + 1 - p));
      ++i;
    }
    p = end ? end + 1 : p + len;
  }
  *num_devices = i;
  return devs;
}

void edgetpu_free_devices(struct edgetpu_device* dev) {
  /* Paths are leaked on purpose: the count is not passed back (as in the real API, one block). */
  free(dev);
}
